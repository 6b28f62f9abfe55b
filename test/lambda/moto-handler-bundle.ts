/**
 * The shipped handler bundle (assets/lambda/bake-image/index/index.js), as the moto tests and the benchmarks load it:
 * refused when missing or older than its sources, with the AWS SDK pointed at the moto proxy through the environment
 * (its EC2Client is created at module load), and the environment given back afterwards.
 */
import * as fs from 'fs';
import * as path from 'path';
import { HANDLER_ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY } from './moto-http';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest, OnEventResponse } from '../../lambda/bake-image/types';

/** The bake-image handler module as bundled (assets/lambda/bake-image/index/index.js). */
export interface BakeImageHandler {
  onEvent(event: OnEventRequest): Promise<OnEventResponse>;
  isComplete(event: IsCompleteRequest): Promise<IsCompleteResponse>;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const HANDLER_BUNDLE = path.join(REPO_ROOT, 'assets', 'lambda', 'bake-image', 'index', 'index.js');
/** What the bundle is built from: the handlers, and the contract (src/private/contract/) they share with the construct. */
const HANDLER_SOURCES = [path.join(REPO_ROOT, 'lambda', 'bake-image'), path.join(REPO_ROOT, 'src', 'private', 'contract')];

function newestSource(): { file: string; mtimeMs: number } | undefined {
  let newest: { file: string; mtimeMs: number } | undefined;
  const visit = (file: string) => {
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    if (stat?.isDirectory()) {
      fs.readdirSync(file).forEach((entry) => visit(path.join(file, entry)));
    } else if (stat && file.endsWith('.ts') && (!newest || stat.mtimeMs > newest.mtimeMs)) {
      newest = { file, mtimeMs: stat.mtimeMs };
    }
  };
  HANDLER_SOURCES.forEach(visit);
  return newest;
}

const ENV_KEYS = [
  'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_EC2', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS',
  'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_EC2_METADATA_DISABLED',
  // The handler's retry behaviour is part of what the tests check: a developer's own settings must not change it.
  'AWS_RETRY_MODE', 'AWS_MAX_ATTEMPTS', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE',
] as const;

/** The AWS settings of the environment before {@link loadHandlerBundle} changed them. */
export type SavedEnvironment = Partial<Record<(typeof ENV_KEYS)[number], string>>;

/** Fails when the bundle is missing or older than its sources. */
export function checkHandlerBundle(): void {
  if (!fs.existsSync(HANDLER_BUNDLE)) {
    throw new Error(`The handler bundle ${path.relative(REPO_ROOT, HANDLER_BUNDLE)} is missing: run npx projen bundle`);
  }
  const source = newestSource();
  if (source && source.mtimeMs > fs.statSync(HANDLER_BUNDLE).mtimeMs) {
    throw new Error(
      `The handler bundle ${path.relative(REPO_ROOT, HANDLER_BUNDLE)} is older than ${path.relative(REPO_ROOT, source.file)}: ` +
      'run npx projen bundle',
    );
  }
}

/** The AWS settings of the environment now, for {@link restoreEnvironment}. */
export function saveEnvironment(): SavedEnvironment {
  const saved: SavedEnvironment = {};
  for (const key of ENV_KEYS) {
    saved[key] = process.env[key];
  }
  return saved;
}

/** Gives the environment back the AWS settings it had when saved. */
export function restoreEnvironment(saved: SavedEnvironment): void {
  for (const key of ENV_KEYS) {
    const value = saved[key];
    if (value === undefined) {
      delete process.env[key];
    } else {
      process.env[key] = value;
    }
  }
}

/**
 * Points the AWS SDK at `endpoint` (the proxy) through the environment, signing as the handler's role
 * (HANDLER_ACCESS_KEY_ID), and loads the bundle ({@link checkHandlerBundle} first). Inside `jest.isolateModules` each
 * call gives a fresh module, and so a fresh EC2Client (with a full retry quota).
 */
export function loadHandlerBundle(endpoint: string): BakeImageHandler {
  for (const key of ENV_KEYS) {
    delete process.env[key];
  }
  process.env.AWS_REGION = REGION;
  process.env.AWS_ENDPOINT_URL = endpoint;
  process.env.AWS_ACCESS_KEY_ID = HANDLER_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = SECRET_ACCESS_KEY;
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  // No shared config: a developer's ~/.aws/config (retry_mode, max_attempts, region) must not leak into the tests.
  process.env.AWS_CONFIG_FILE = path.join(REPO_ROOT, 'test', 'lambda', 'no-such-aws-config');
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(REPO_ROOT, 'test', 'lambda', 'no-such-aws-credentials');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const handler = require(HANDLER_BUNDLE) as Partial<BakeImageHandler>;
  if (typeof handler.onEvent !== 'function' || typeof handler.isComplete !== 'function') {
    throw new Error(`${HANDLER_BUNDLE} does not export onEvent and isComplete`);
  }
  return handler as BakeImageHandler;
}
