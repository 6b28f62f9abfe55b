/**
 * Handler benchmark: size of the shipped bundle (raw and gzip) and its cold module-load time in a fresh
 * node process, next to loading @aws-sdk/client-ec2 alone (which Lambda's Node.js runtime provides), and,
 * for comparison, a variant with the SDK bundled in.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { buildSync } from 'esbuild';
import { median } from './stats';
import { HANDLER_BUNDLE } from '../test/lambda/moto-handler-bundle';

export const REPO_ROOT = path.resolve(__dirname, '..');

export interface BundleSize {
  readonly file: string;
  readonly rawBytes: number;
  readonly gzipBytes: number;
  /** The handler functions this one bundle exports (one bundle serves both handlers). */
  readonly exports: string[];
}

export function bundleSize(): BundleSize {
  if (!fs.existsSync(HANDLER_BUNDLE)) {
    throw new Error(`The handler bundle ${path.relative(REPO_ROOT, HANDLER_BUNDLE)} is missing: run npx projen bundle first`);
  }
  const content = fs.readFileSync(HANDLER_BUNDLE);
  // Listed by a child process: loading the bundle here would create its EC2 client before the moto harness
  // points the SDK at moto.
  const listing = spawnSync(process.execPath, ['-e', `console.log(JSON.stringify(Object.keys(require(${JSON.stringify(HANDLER_BUNDLE)}))))`], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: childEnv(),
  });
  if (listing.status !== 0) {
    throw new Error(`Could not load ${HANDLER_BUNDLE}: ${listing.stderr}`);
  }
  const exported = (JSON.parse(listing.stdout) as string[]).filter((name) => name === 'onEvent' || name === 'isComplete');
  return {
    file: path.relative(REPO_ROOT, HANDLER_BUNDLE),
    rawBytes: content.length,
    gzipBytes: zlib.gzipSync(content, { level: zlib.constants.Z_BEST_COMPRESSION }).length,
    exports: exported,
  };
}

export interface LoadTiming {
  readonly bundleMs: number[];
  readonly sdkMs: number[];
  readonly bundleMedian: number;
  readonly sdkMedian: number;
  /** Median of the bundle's load minus the SDK's: what the bundle itself costs where the runtime has the SDK. */
  readonly ownMedian: number;
  /** For comparison only: the same handlers with the SDK bundled in (tree-shaken, minified). */
  readonly sdkBundled: { readonly rawBytes: number; readonly gzipBytes: number; readonly ms: number[]; readonly median: number };
}

/** A clean environment for the child processes; like Lambda, a Region is configured. */
function childEnv(): NodeJS.ProcessEnv {
  // NODE_NO_WARNINGS: node 20 makes the SDK print a support warning that Lambda's node 24 does not.
  return { PATH: process.env.PATH, HOME: process.env.HOME, AWS_REGION: 'us-east-1', NODE_NO_WARNINGS: '1' };
}

/** The time `require(what)` takes in a fresh node process, as printed by the child itself. */
function loadOnce(what: string): number {
  const script = 'const t=process.hrtime.bigint();'
    + `require(${JSON.stringify(what)});`
    + 'console.log(Number(process.hrtime.bigint()-t)/1e6)';
  const child = spawnSync(process.execPath, ['-e', script], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: childEnv(),
    timeout: 30_000,
  });
  const value = Number(child.stdout.trim());
  if (child.status !== 0 || !Number.isFinite(value)) {
    throw new Error(`node -e require(${what}) failed (status ${child.status}): ${child.stderr || child.error?.message}`);
  }
  return value;
}

/**
 * Bundles the handler source with @aws-sdk/client-ec2 included (ESM entry points, so esbuild can drop the
 * commands the handlers do not use), minified, into `dir`. Not what ships: a comparison point only.
 */
function bundleWithSdk(dir: string): string {
  const outfile = path.join(dir, 'index.js');
  buildSync({
    entryPoints: [path.join(REPO_ROOT, 'lambda', 'bake-image', 'index.ts')],
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: true,
    mainFields: ['module', 'main'],
    outfile,
    logLevel: 'silent',
  });
  return outfile;
}

/**
 * Loads the shipped bundle, the SDK alone and the SDK-bundled variant in turn (the order rotates every
 * round), `runs` times each, after one warm-up of each (page cache).
 */
export function timeColdLoads(runs: number): LoadTiming {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sdk-bundled-'));
  try {
    const withSdk = bundleWithSdk(dir);
    const content = fs.readFileSync(withSdk);
    const targets = [HANDLER_BUNDLE, '@aws-sdk/client-ec2', withSdk];
    const times: number[][] = targets.map(() => []);
    targets.forEach(loadOnce);
    for (let run = 0; run < runs; run++) {
      for (let k = 0; k < targets.length; k++) {
        const index = (run + k) % targets.length;
        times[index].push(loadOnce(targets[index]));
      }
    }
    const [bundleMs, sdkMs, sdkBundledMs] = times;
    const bundleMedian = median(bundleMs);
    const sdkMedian = median(sdkMs);
    return {
      bundleMs,
      sdkMs,
      bundleMedian,
      sdkMedian,
      ownMedian: bundleMedian - sdkMedian,
      sdkBundled: {
        rawBytes: content.length,
        gzipBytes: zlib.gzipSync(content, { level: zlib.constants.Z_BEST_COMPRESSION }).length,
        ms: sdkBundledMs,
        median: median(sdkBundledMs),
      },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
