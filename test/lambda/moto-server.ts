/**
 * Test harness: a real EC2 API emulator (moto_server) behind a small HTTP proxy that fills the gaps
 * between moto 5.2.1 and real EC2 that matter to the bake-image handlers.
 *
 * The handlers talk to the proxy (AWS_ENDPOINT_URL); tests assert against moto directly ({@link MotoHarness.ec2}, or
 * {@link MotoHarness.ec2In} for another region).
 *
 * Every SDK client uses the same endpoint, the proxy: the region of a request is only in its SigV4 signature
 * (`Credential=AKID/DATE/REGION/ec2/aws4_request`), and moto keeps one backend per region by it. The proxy's own side
 * calls (the duplicate-name check, the snapshots of an image, DeleteSnapshot's in-use check, the lifecycle calls,
 * StopInstances' state check) go to the backend of the region the request is signed for.
 *
 * Gaps the proxy emulates (product code is never changed for them):
 * - CreateImage with a `snapshot` TagSpecification answers HTTP 500 in moto. The proxy strips it, forwards
 *   the rest and applies those tags to the new image's snapshots with CreateTags, like EC2.
 * - moto accepts a duplicate AMI name. The proxy answers `InvalidAMIName.Duplicate` like EC2 (names are unique per
 *   account and region). CreateImage and CopyImage requests are handled one at a time per region, so the check is atomic.
 * - moto's CopyImage (made in the backend of the region the request is signed for, the destination) ignores
 *   `TagSpecification.N`, `Encrypted`, `KmsKeyId` and `ClientToken`. The proxy strips the `image` and `snapshot` tag
 *   specifications, forwards the rest and applies those tags to the copy and its snapshots with CreateTags, like EC2.
 *   It records what the request asked ({@link Ec2Proxy.copyRequest}): moto's copies are never encrypted. A CopyImage
 *   repeated with the same ClientToken in the same region answers the first copy's id, as EC2's idempotency does (and
 *   `IdempotentParameterMismatch` when the other parameters differ).
 * - moto's RegisterImage ignores BlockDeviceMappings, so an image registered from an existing snapshot does
 *   not keep that snapshot in use. The proxy records the snapshots such images reference and answers
 *   DeleteSnapshot with `InvalidSnapshot.InUse` while one of them is still registered.
 * - moto's DeregisterImage ignores DeleteAssociatedSnapshots. The proxy deletes the image's snapshots
 *   after a successful DeregisterImage that asks for it.
 * - moto's StopInstances "stops" a terminated instance. The proxy answers `IncorrectInstanceState` like EC2.
 * - moto's images are `available` at once. Tests hold an image `pending` with {@link Ec2Proxy.holdPending} (asked for by id)
 *   or {@link Ec2Proxy.holdPendingByName} (looked up by name, as the handler finds its copies).
 * - Every moto AMI has exactly one snapshot (nothing to emulate; noted because real AMIs may have several).
 * - moto's instances run nothing, and its GetConsoleOutput answers a fixed sample text. A RunInstances whose UserData
 *   is the construct's image validation script (it contains the line {@link VALIDATION_MARKER}) runs that script on
 *   this machine for each new instance, as the instance would: `bash` in a fresh temporary directory (also its
 *   TMPDIR), `/dev/console` replaced by a pipe whose output the proxy keeps, and `shutdown`, `poweroff`, `halt` and
 *   `reboot` replaced by stand-ins that only record their arguments, also when called by their absolute path (this
 *   machine is never shut down; a script that powers off otherwise, `systemctl poweroff` or `init 0`, is not run and is
 *   reported as a proxy error). GetConsoleOutput answers what the script wrote so far (the last 64 KB; no `output` at
 *   all while it wrote nothing, like EC2), TerminateInstances kills the script and everything it started;
 *   {@link Ec2Proxy.validationInstances}.
 * - moto never throttles, never fails an image and never loses an answer. Tests inject those faults:
 *   {@link Ec2Proxy.failNext} answers the next requests of an Action with an EC2 error (XML body and HTTP status
 *   as EC2 sends them) without forwarding them; {@link Ec2Proxy.loseResponses} forwards a request, lets moto
 *   carry it out, and then answers an error or resets the connection instead of moto's answer;
 *   {@link Ec2Proxy.failImage} (by id) and {@link Ec2Proxy.failImageByName} (by name) report an image as `failed` with a StateReason.
 *
 * The proxy records, per request, when it arrived and the SDK's retry headers (`amz-sdk-invocation-id`, the same for
 * every attempt of one SDK call, and `amz-sdk-request: attempt=N; max=M`), so tests can tell SDK retries from calls.
 */
import { type ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
  RunInstancesCommand,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest, OnEventResponse } from '../../lambda/bake-image/types';

export const REGION = 'us-east-1';
const ACCESS_KEY_ID = 'testing';
const SECRET_ACCESS_KEY = 'testing';
const STARTUP_TIMEOUT_MS = 20_000;

// ---------------------------------------------------------------------------------------------------------
// Small HTTP helpers
// ---------------------------------------------------------------------------------------------------------

interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

function readBody(stream: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function httpRequest(options: http.RequestOptions, body?: Buffer): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = http.request(options, (response) => {
      readBody(response).then(
        (data) => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: data }),
        reject,
      );
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('Could not find a free port'))));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------------------
// moto_server
// ---------------------------------------------------------------------------------------------------------

function findOnPath(executable: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    const candidate = path.join(dir, executable);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export class MotoServer {
  /** Starts moto_server on 127.0.0.1 and waits until it answers HTTP. Throws if it is not installed. */
  static async start(): Promise<MotoServer> {
    const executable = findOnPath('moto_server');
    if (!executable) {
      throw new Error(
        'moto_server is required by the moto integration tests but was not found on PATH. ' +
        "Install it with: pip install 'moto[server]' (tested with moto 5.2.1).",
      );
    }
    const port = await freePort();
    const child = spawn(executable, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new MotoServer(child, port);
    await server.waitUntilReady();
    return server;
  }

  readonly endpoint: string;
  private output = '';
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private spawnError: Error | undefined;

  private constructor(private readonly child: ChildProcess, readonly port: number) {
    this.endpoint = `http://127.0.0.1:${port}`;
    // Keep draining the logs (moto logs every request) and keep the tail for error messages.
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
    child.on('error', (error) => {
      this.spawnError = error;
    });
  }

  private async waitUntilReady(): Promise<void> {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.spawnError) {
        throw new Error(`moto_server could not be started: ${this.spawnError.message}`);
      }
      if (this.exited) {
        throw new Error(`moto_server exited during startup (code ${this.exited.code}, signal ${this.exited.signal}):\n${this.output}`);
      }
      try {
        const response = await httpRequest({ host: '127.0.0.1', port: this.port, method: 'GET', path: '/moto-api/', timeout: 1000 });
        if (response.status > 0) {
          return;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`moto_server did not answer on ${this.endpoint} within ${STARTUP_TIMEOUT_MS / 1000} s:\n${this.output}`);
  }

  /** Forgets every resource (POST /moto-api/reset). */
  async reset(): Promise<void> {
    const response = await httpRequest({ host: '127.0.0.1', port: this.port, method: 'POST', path: '/moto-api/reset' });
    if (response.status !== 200) {
      throw new Error(`moto reset answered HTTP ${response.status}: ${response.body.toString()}`);
    }
  }

  async stop(): Promise<void> {
    if (this.exited || this.child.pid === undefined) {
      return;
    }
    const exit = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      exit.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 5000);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped && !this.exited) {
      this.child.kill('SIGKILL');
      await exit;
    }
  }
}

/**
 * An EC2 client for the given endpoint and region (moto's backend of that region): static test credentials, no retries
 * (a failure is a failure).
 */
export function ec2ClientFor(endpoint: string, region: string = REGION): EC2Client {
  return new EC2Client({
    region,
    endpoint,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });
}

// ---------------------------------------------------------------------------------------------------------
// The proxy in front of moto
// ---------------------------------------------------------------------------------------------------------

/** One request the proxy answered. */
export interface ProxiedRequest {
  readonly action: string;
  readonly params: URLSearchParams;
  /** The region the request is signed for (REGION when its Authorization header names none). */
  readonly region: string;
  /** When the request arrived (performance.now(), milliseconds). */
  readonly at: number;
  /** The SDK's `amz-sdk-invocation-id`: one value for all attempts of one SDK call. */
  readonly invocationId?: string;
  /** The SDK's attempt number of this request (`amz-sdk-request: attempt=N; max=M`). */
  readonly attempt?: number;
  /** The SDK's maximum number of attempts for this call (the `max` of `amz-sdk-request`). */
  readonly maxAttempts?: number;
  /** HTTP status of the answer; 0 when the proxy reset the connection instead. */
  status?: number;
  /** EC2 error code of the answer, if it was an error (`ECONNRESET` for a reset connection). */
  errorCode?: string;
  /**
   * Set when a fault was injected: `fault` (answered an error, moto never saw the request) or `response-lost`
   * (moto carried the request out, the client got an error or a reset connection instead of the answer).
   */
  injected?: 'fault' | 'response-lost';
}

/** Chooses the requests of an Action that something applies to, by their query parameters. */
export type RequestMatcher = (params: URLSearchParams) => boolean;

/** An EC2 error answer: HTTP status and the `<Code>` and `<Message>` of EC2's XML error body. */
export interface Ec2Fault {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

/** The faults EC2 answers under load, with the HTTP status EC2 uses for each. */
export const EC2_FAULTS = {
  /** Account/Region API rate limit: the SDK classifies it as throttling. */
  throttling: { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' },
  internalError: { status: 500, code: 'InternalError', message: 'An internal error has occurred.' },
  unavailable: { status: 503, code: 'Unavailable', message: 'The server is overloaded and can\'t handle the request.' },
} as const satisfies Record<string, Ec2Fault>;

/** How the answer of a request that moto carried out gets lost: an error answer, or the connection reset. */
export type LostResponse = Ec2Fault | 'connection-reset';

/** DescribeImages that looks an image up by name (Filter name=name): the handler's adopt-before-create lookup. */
export const describeImagesByName: RequestMatcher = (params) => numberedValues(params, 'Filter', '.Name').includes('name');

/** DescribeImages by ImageId.N, for the given image or for any. */
export function describeImagesById(imageId?: string): RequestMatcher {
  return (params) => {
    const ids = numberedValues(params, 'ImageId');
    return imageId === undefined ? ids.length > 0 : ids.includes(imageId);
  };
}

/** Rewrites the body of a moto response; `applies` picks the requests it is for. */
interface ResponseRewrite {
  readonly action: string;
  readonly applies: (params: URLSearchParams) => boolean;
  readonly rewrite: (body: string) => string;
  remaining: number;
}

interface Gate {
  readonly count: number;
  readonly waiting: Array<() => void>;
}

/** A fault to inject into the next `remaining` requests of `action` that `applies` picks. */
interface Injection<T> {
  readonly action: string;
  readonly applies: RequestMatcher;
  readonly what: T;
  remaining: number;
}

function takeInjection<T>(injections: Array<Injection<T>>, action: string, params: URLSearchParams): T | undefined {
  const injection = injections.find((candidate) => candidate.remaining > 0 && candidate.action === action && candidate.applies(params));
  if (!injection) {
    return undefined;
  }
  injection.remaining--;
  return injection.what;
}

/** `attempt=2; max=6` -> { attempt: 2, max: 6 } */
function parseSdkRequestHeader(value: string | string[] | undefined): { attempt?: number; max?: number } {
  const text = Array.isArray(value) ? value[0] : value;
  const attempt = /attempt=(\d+)/.exec(text ?? '')?.[1];
  const max = /max=(\d+)/.exec(text ?? '')?.[1];
  return { attempt: attempt ? Number(attempt) : undefined, max: max ? Number(max) : undefined };
}

function ec2ErrorXml(code: string, message: string): string {
  const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    + `<Response><Errors><Error><Code>${escape(code)}</Code><Message>${escape(message)}</Message></Error></Errors>`
    + `<RequestID>moto-proxy-${Date.now().toString(16)}</RequestID></Response>`;
}

function errorCodeOf(body: string): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
}

/** Values of numbered query parameters: `prefix.1.suffix`, `prefix.2.suffix`, ... */
function numberedValues(params: URLSearchParams, prefix: string, suffix = ''): string[] {
  const values: Array<[number, string]> = [];
  const pattern = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)${suffix.replace(/\./g, '\\.')}$`);
  for (const [key, value] of params) {
    const match = pattern.exec(key);
    if (match) {
      values.push([Number(match[1]), value]);
    }
  }
  return values.sort((a, b) => a[0] - b[0]).map(([, value]) => value);
}

/** Values of the `Filter.N` whose `Filter.N.Name` is `name`: `Filter.N.Value.1`, `Filter.N.Value.2`, ... */
function filterValues(params: URLSearchParams, name: string): string[] {
  const values: string[] = [];
  for (const [key, value] of params) {
    const match = /^Filter\.(\d+)\.Name$/.exec(key);
    if (match && value === name) {
      values.push(...numberedValues(params, `Filter.${match[1]}.Value`));
    }
  }
  return values;
}

/**
 * The region a request is signed for: every client talks to the same endpoint, so the region is only in the SigV4
 * `Authorization` header (`Credential=AKID/20261122/us-west-2/ec2/aws4_request`). REGION when there is none.
 */
function regionOf(request: http.IncomingMessage): string {
  const header = request.headers.authorization;
  const authorization = Array.isArray(header) ? header[0] : header;
  return /Credential=[^/,\s]+\/\d{8}\/([^/,\s]+)\//.exec(authorization ?? '')?.[1] ?? REGION;
}

function xmlResult(xml: string): HttpResult {
  return { status: 200, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(xml, 'utf8') };
}

/** A string as one single-quoted shell word. */
function shellQuote(text: string): string {
  return `'${text.replace(/'/g, '\'\\\'\'')}'`;
}

/**
 * Removes the TagSpecification.N groups for one resource type, renumbering the others.
 * Returns the rewritten parameters and the tags of the removed groups.
 */
export function stripTagSpecifications(params: URLSearchParams, resourceType: string): { params: URLSearchParams; stripped: Tag[] } {
  const groups = new Map<number, Array<[string, string]>>();
  for (const [key, value] of params) {
    const match = /^TagSpecification\.(\d+)\.(.+)$/.exec(key);
    if (match) {
      const index = Number(match[1]);
      groups.set(index, [...(groups.get(index) ?? []), [match[2], value]]);
    }
  }
  const stripped: Tag[] = [];
  const renumbered = new Map<number, number>();
  let next = 1;
  for (const index of [...groups.keys()].sort((a, b) => a - b)) {
    const fields = new Map(groups.get(index));
    if (fields.get('ResourceType') === resourceType) {
      const tags = new Map<number, Tag>();
      for (const [field, value] of fields) {
        const tagMatch = /^Tag\.(\d+)\.(Key|Value)$/.exec(field);
        if (tagMatch) {
          const tagIndex = Number(tagMatch[1]);
          tags.set(tagIndex, { ...tags.get(tagIndex), [tagMatch[2]]: value });
        }
      }
      stripped.push(...[...tags.entries()].sort((a, b) => a[0] - b[0]).map(([, tag]) => tag));
    } else {
      renumbered.set(index, next++);
    }
  }
  const result = new URLSearchParams();
  for (const [key, value] of params) {
    const match = /^TagSpecification\.(\d+)\.(.+)$/.exec(key);
    if (!match) {
      result.append(key, value);
      continue;
    }
    const newIndex = renumbered.get(Number(match[1]));
    if (newIndex !== undefined) {
      result.append(`TagSpecification.${newIndex}.${match[2]}`, value);
    }
  }
  return { params: result, stripped };
}

/** A DescribeImages rewrite: every image of the answer `failed`, with this StateReason. */
function failedImages(reason: { code: string; message: string }): (body: string) => string {
  const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return (body) => body.replace(
    /<imageState>[^<]*<\/imageState>/g,
    `<imageState>failed</imageState><stateReason><code>${escape(reason.code)}</code><message>${escape(reason.message)}</message></stateReason>`,
  );
}

/** Kills a detached child and everything in its process group (still there after the child itself exited). */
function killProcessGroup(child: ChildProcess): void {
  if (child.pid === undefined) {
    return;
  }
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
      throw error;
    }
  }
}

/** What a CopyImage asked for the copy it made (moto ignores Encrypted and KmsKeyId). */
export interface CopyRequest {
  readonly sourceRegion: string;
  readonly sourceImageId: string;
  /** The `Encrypted` parameter; undefined when the request had none. */
  readonly encrypted?: boolean;
  readonly kmsKeyId?: string;
}

/** The line that makes the user data of a RunInstances an image validation script the proxy runs (see the module comment). */
export const VALIDATION_MARKER = '# cdk-baked-image: image validation';

/** EC2's GetConsoleOutput with `Latest` gives the most recent 64 KB of the console. */
const CONSOLE_OUTPUT_LIMIT = 64 * 1024;

/** The commands that would power the instance (this machine) off: the validation scripts get stand-ins. */
const POWER_COMMANDS = ['shutdown', 'poweroff', 'halt', 'reboot'] as const;

/** A validation instance: what it was launched with and what its script has done so far. */
export interface ValidationInstance {
  readonly instanceId: string;
  /** The ImageId of the RunInstances that launched it. */
  readonly imageId: string;
  /** The script, as the user data decodes (before the proxy's replacements). */
  readonly userData: string;
  /** The script has not exited yet. */
  readonly running: boolean;
  /** The script's exit status; undefined while it runs or when it was killed. */
  readonly exitCode?: number;
  /** TerminateInstances was called for the instance (and killed the script if it still ran). */
  readonly terminated: boolean;
  /** The arguments of each call of the `shutdown`, `poweroff`, `halt` and `reboot` stand-ins, one string per call. */
  readonly shutdownCalls: string[];
  /** What the script wrote to /dev/console. */
  readonly console: string;
}

/** A validation script running for an instance (see {@link Ec2Proxy.validationInstances}). */
interface ValidationRun {
  readonly instanceId: string;
  readonly imageId: string;
  readonly userData: string;
  /** The temporary directory: script, console, stand-ins, `shutdown-calls`; also the script's cwd and TMPDIR. */
  readonly dir: string;
  readonly child: ChildProcess;
  exited: boolean;
  exitCode?: number;
  terminated: boolean;
  shutdownCalls(): string[];
}

/**
 * HTTP proxy in front of moto_server: forwards EC2 query-protocol requests, emulates the EC2 behaviours
 * moto lacks (see the module comment), counts requests by Action and can rewrite responses.
 */
export class Ec2Proxy {
  static async start(motoEndpoint: string): Promise<Ec2Proxy> {
    const proxy = new Ec2Proxy(motoEndpoint);
    const port = await freePort();
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(port, '127.0.0.1', () => resolve());
    });
    proxy.port = port;
    return proxy;
  }

  /** Every request since the last {@link reset}, in arrival order. */
  readonly requests: ProxiedRequest[] = [];
  private port = 0;
  private readonly motoUrl: URL;
  /** Direct clients to moto for the proxy's own side calls (not counted), one per region: see {@link motoIn}. */
  private readonly motoClients = new Map<string, EC2Client>();
  private readonly server: http.Server;
  private readonly rewrites: ResponseRewrite[] = [];
  private readonly gates = new Map<string, Gate>();
  private readonly faults: Array<Injection<Ec2Fault>> = [];
  private readonly lostResponses: Array<Injection<LostResponse>> = [];
  /** snapshot id -> ids of images registered from it (moto's RegisterImage forgets them). */
  private readonly snapshotUsers = new Map<string, Set<string>>();
  private readonly errors: string[] = [];
  /** Per region: the CreateImage or CopyImage being handled (they check the name and create one at a time). */
  private readonly imageCreations = new Map<string, Promise<unknown>>();
  /** Copy image id -> what its CopyImage asked (moto ignores Encrypted and KmsKeyId). */
  private readonly copies = new Map<string, CopyRequest>();
  /** `region clientToken` -> the CopyImage it made: EC2 answers a repeated request with the first copy. */
  private readonly copyTokens = new Map<string, { readonly request: string; readonly imageId: string }>();
  /** Instance id -> the validation script running for it. */
  private readonly validationRuns = new Map<string, ValidationRun>();

  /**
   * The CloudFormation stack the handler asks about (DescribeStacks, DescribeStackResource) when it keeps
   * superseded images: the tests set its status and resources, as CloudFormation would during an update.
   */
  private stack?: { readonly name: string; readonly id: string; readonly status: string; readonly resources: Record<string, string> };

  /**
   * moto 5.2.1 has no image deprecation nor deregistration protection: the proxy keeps them, per image. Image ids are
   * random, so ids of different regions never collide.
   */
  private readonly lifecycle = new Map<string, { deprecateAt?: string; protection?: string }>();

  private constructor(motoEndpoint: string) {
    this.motoUrl = new URL(motoEndpoint);
    this.server = http.createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        const message = error instanceof Error ? error.stack ?? error.message : String(error);
        this.errors.push(`${request.method} ${request.url}: ${message}`);
        if (!response.headersSent) {
          response.writeHead(500, { 'content-type': 'text/plain' });
        }
        response.end(`moto proxy error: ${message}`);
      });
    });
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Number of requests with this Action since the last {@link reset}. */
  count(action: string): number {
    return this.requests.filter((request) => request.action === action).length;
  }

  /** The Actions of the requests since the last {@link reset} (or since `from`, an index into requests). */
  actions(from = 0): string[] {
    return this.requests.slice(from).map((request) => request.action);
  }

  /** Forgets the requests seen so far (counts start again from zero). */
  clearRequests(): void {
    this.requests.length = 0;
  }

  /** Forgets counts, rewrites, gates, injected faults and emulated state (call together with moto's reset). */
  /** The deprecation time and deregistration protection the proxy emulates for an image. */
  imageLifecycle(imageId: string): { deprecateAt?: string; protection?: string } {
    return { ...this.lifecycle.get(imageId) };
  }

  /** Sets what DescribeStacks and DescribeStackResource answer (logical id -> physical id). */
  setStack(stack: { name: string; id: string; status: string; resources: Record<string, string> }): void {
    this.stack = stack;
  }

  /** What the CopyImage that made this copy asked for; undefined for an image no CopyImage made. */
  copyRequest(imageId: string): CopyRequest | undefined {
    const request = this.copies.get(imageId);
    return request ? { ...request } : undefined;
  }

  /** The instances launched with a validation script since the last {@link reset}, in launch order. */
  validationInstances(): ValidationInstance[] {
    return [...this.validationRuns.values()].map((run) => ({
      instanceId: run.instanceId,
      imageId: run.imageId,
      userData: run.userData,
      running: !run.exited,
      exitCode: run.exitCode,
      terminated: run.terminated,
      shutdownCalls: run.shutdownCalls(),
      console: this.consoleOf(run).toString('utf8'),
    }));
  }

  reset(): void {
    this.stopValidationRuns();
    this.stack = undefined;
    this.lifecycle.clear();
    this.copies.clear();
    this.copyTokens.clear();
    this.requests.length = 0;
    this.rewrites.length = 0;
    this.gates.clear();
    this.snapshotUsers.clear();
    this.clearFaults();
  }

  /**
   * Answers the next `count` requests of `action` that `applies` picks with an EC2 error, without forwarding them
   * to moto: HTTP `fault.status` and EC2's XML error body
   * (`<Response><Errors><Error><Code>...</Code><Message>...</Message></Error></Errors><RequestID>...</RequestID></Response>`).
   */
  failNext(action: string, count: number, fault: Ec2Fault, applies: RequestMatcher = () => true): void {
    this.faults.push({ action, applies, what: fault, remaining: count });
  }

  /**
   * Lets moto carry out the next `count` successful requests of `action` that `applies` picks, then loses the answer:
   * the client gets `how` (an EC2 error) or a reset connection instead. The client cannot know the request took effect.
   */
  loseResponses(action: string, count: number, how: LostResponse, applies: RequestMatcher = () => true): void {
    this.lostResponses.push({ action, applies, what: how, remaining: count });
  }

  /** Faults injected with {@link failNext} or {@link loseResponses} that no request has used yet, by Action. */
  unusedFaults(): Record<string, number> {
    const unused: Record<string, number> = {};
    for (const injection of [...this.faults, ...this.lostResponses]) {
      if (injection.remaining > 0) {
        unused[injection.action] = (unused[injection.action] ?? 0) + injection.remaining;
      }
    }
    return unused;
  }

  /** Drops every fault injected with {@link failNext} or {@link loseResponses}. */
  clearFaults(): void {
    this.faults.length = 0;
    this.lostResponses.length = 0;
  }

  /**
   * Reports the image as `failed` with this StateReason to the next `polls` DescribeImages requests that ask for it by id
   * (in any region). Lookups by name are left alone: see {@link failImageByName}.
   */
  failImage(imageId: string, polls: number, reason: { code: string; message: string }): void {
    this.rewriteResponses('DescribeImages', polls, failedImages(reason), describeImagesById(imageId));
  }

  /**
   * Reports the images of this name as `failed` with this StateReason to the next `polls` DescribeImages requests that
   * look them up by name (a `Filter` `name` whose values include it, in any region): how the handler finds its copies.
   */
  failImageByName(name: string, polls: number, reason: { code: string; message: string }): void {
    this.rewriteResponses('DescribeImages', polls, failedImages(reason), (params) => filterValues(params, 'name').includes(name));
  }

  /** Problems inside the proxy itself since the last call (a test should see none). */
  takeErrors(): string[] {
    return this.errors.splice(0);
  }

  /** Rewrites the bodies of the next `times` successful responses to `action` whose request `applies`. */
  rewriteResponses(
    action: string,
    times: number,
    rewrite: (body: string) => string,
    applies: (params: URLSearchParams) => boolean = () => true,
  ): void {
    this.rewrites.push({ action, applies, rewrite, remaining: times });
  }

  /** How many responses the rewrites given so far ({@link rewriteResponses}, {@link holdPending}, {@link failImage}, ...) have yet to rewrite. */
  unusedRewrites(): number {
    return this.rewrites.reduce((sum, rewrite) => sum + rewrite.remaining, 0);
  }

  /**
   * Reports the image as `pending` to the next `polls` DescribeImages requests that ask for it by id (in any region).
   * Lookups by name are left alone: see {@link holdPendingByName}.
   */
  holdPending(imageId: string, polls: number): void {
    this.rewriteResponses(
      'DescribeImages',
      polls,
      (body) => body.replace(/<imageState>available<\/imageState>/g, '<imageState>pending</imageState>'),
      (params) => numberedValues(params, 'ImageId').includes(imageId),
    );
  }

  /**
   * Reports the images of this name as `pending` to the next `polls` DescribeImages requests that look them up by
   * name (a `Filter` `name` whose values include it, in any region): how the handler finds its copies.
   */
  holdPendingByName(name: string, polls: number): void {
    this.rewriteResponses(
      'DescribeImages',
      polls,
      (body) => body.replace(/<imageState>available<\/imageState>/g, '<imageState>pending</imageState>'),
      (params) => filterValues(params, 'name').includes(name),
    );
  }

  /**
   * Holds the next `count` requests with this Action until all of them have arrived, then lets them go
   * (CreateImage and CopyImage still one at a time per region): two invocations race deterministically.
   */
  gate(action: string, count: number): void {
    this.gates.set(action, { count, waiting: [] });
  }

  async stop(): Promise<void> {
    for (const gate of this.gates.values()) {
      gate.waiting.splice(0).forEach((release) => release());
    }
    this.stopValidationRuns();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const client of this.motoClients.values()) {
      client.destroy();
    }
    this.motoClients.clear();
  }

  /** Direct client to moto's backend of this region, for the proxy's own side calls (not counted). */
  private motoIn(region: string): EC2Client {
    let client = this.motoClients.get(region);
    if (!client) {
      client = ec2ClientFor(this.motoUrl.origin, region);
      this.motoClients.set(region, client);
    }
    return client;
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const at = performance.now();
    const body = await readBody(request);
    const params = new URLSearchParams(body.toString('utf8'));
    const sdkRequest = parseSdkRequestHeader(request.headers['amz-sdk-request']);
    const invocationId = request.headers['amz-sdk-invocation-id'];
    const region = regionOf(request);
    const record: ProxiedRequest = {
      action: params.get('Action') ?? `${request.method} ${request.url}`,
      params,
      region,
      at,
      invocationId: Array.isArray(invocationId) ? invocationId[0] : invocationId,
      attempt: sdkRequest.attempt,
      maxAttempts: sdkRequest.max,
    };
    this.requests.push(record);

    await this.passGate(record.action);

    const fault = takeInjection(this.faults, record.action, params);
    const result = fault
      ? this.errorResult(fault.status, fault.code, fault.message)
      : await this.emulate(record.action, region, request, params, body);
    if (fault) {
      record.injected = 'fault';
    }

    const lost = result.status === 200 ? takeInjection(this.lostResponses, record.action, params) : undefined;
    if (lost === 'connection-reset') {
      record.injected = 'response-lost';
      record.status = 0;
      record.errorCode = 'ECONNRESET';
      request.socket.destroy();
      return;
    }
    if (lost) {
      record.injected = 'response-lost';
      this.reply(record, params, this.errorResult(lost.status, lost.code, lost.message), response);
      return;
    }
    this.reply(record, params, result, response);
  }

  /** Forwards a request to moto, with the EC2 behaviours moto lacks (see the module comment). */
  private async emulate(
    action: string,
    region: string,
    request: http.IncomingMessage,
    params: URLSearchParams,
    body: Buffer,
  ): Promise<HttpResult> {
    switch (action) {
      case 'CreateImage':
        return this.oneImageCreationAtATime(region, () => this.createImage(region, request, params));
      case 'CopyImage':
        return this.oneImageCreationAtATime(region, () => this.copyImage(region, request, params));
      case 'RegisterImage':
        return this.registerImage(request, params, body);
      case 'DeleteSnapshot':
        return this.deleteSnapshot(region, request, params, body);
      case 'DeregisterImage':
        return this.deregisterImage(region, request, params, body);
      case 'StopInstances':
        return this.stopInstances(region, request, params, body);
      case 'RunInstances':
        return this.runInstances(request, params, body);
      case 'GetConsoleOutput':
        return this.getConsoleOutput(request, params, body);
      case 'TerminateInstances':
        return this.terminateInstances(request, params, body);
      case 'DescribeStacks':
      case 'DescribeStackResource':
        return this.cloudFormationCall(action, params);
      case 'EnableImageDeprecation':
      case 'DisableImageDeprecation':
      case 'EnableImageDeregistrationProtection':
      case 'DisableImageDeregistrationProtection':
        return this.imageLifecycleCall(region, action, params);
      default:
        return this.forward(request, body);
    }
  }

  /**
   * Runs `create` after the CreateImage and CopyImage requests of the region that came before, so that the
   * duplicate-name check and the creation are atomic, like in EC2 (AMI names are unique per region).
   */
  private oneImageCreationAtATime(region: string, create: () => Promise<HttpResult>): Promise<HttpResult> {
    const run = (this.imageCreations.get(region) ?? Promise.resolve()).then(create);
    this.imageCreations.set(region, run.catch(() => undefined));
    return run;
  }

  private reply(record: ProxiedRequest, params: URLSearchParams, result: HttpResult, response: http.ServerResponse): void {
    let text = result.body.toString('utf8');
    if (result.status === 200) {
      for (const rewrite of this.rewrites) {
        if (rewrite.remaining > 0 && rewrite.action === record.action && rewrite.applies(params)) {
          rewrite.remaining--;
          text = rewrite.rewrite(text);
        }
      }
    } else {
      record.errorCode = errorCodeOf(text);
    }
    record.status = result.status;

    const out = Buffer.from(text, 'utf8');
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(result.headers)) {
      if (!['content-length', 'transfer-encoding', 'connection', 'server', 'date'].includes(name) && value !== undefined) {
        headers[name] = value;
      }
    }
    headers['content-length'] = out.length;
    response.writeHead(result.status, headers);
    response.end(out);
  }

  private async passGate(action: string): Promise<void> {
    const gate = this.gates.get(action);
    if (!gate) {
      return;
    }
    if (gate.waiting.length + 1 >= gate.count) {
      this.gates.delete(action);
      gate.waiting.splice(0).forEach((release) => release());
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      gate.waiting.push(resolve);
      timer = setTimeout(() => {
        this.errors.push(`gate for ${action}: only ${gate.waiting.length} of ${gate.count} requests arrived within 10 s`);
        this.gates.delete(action);
        gate.waiting.splice(0).forEach((release) => release());
      }, 10_000);
    });
    clearTimeout(timer);
  }

  private forward(request: http.IncomingMessage, body: Buffer): Promise<HttpResult> {
    const headers: http.OutgoingHttpHeaders = { ...request.headers, 'content-length': body.length };
    delete headers['transfer-encoding'];
    delete headers.connection;
    return httpRequest({
      host: this.motoUrl.hostname,
      port: this.motoUrl.port,
      method: request.method,
      path: request.url,
      headers,
    }, body);
  }

  private errorResult(status: number, code: string, message: string): HttpResult {
    return { status, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(ec2ErrorXml(code, message), 'utf8') };
  }

  /** EC2's answer when an image of the region already has this name; undefined when none has. */
  private async duplicateName(region: string, name: string | null): Promise<HttpResult | undefined> {
    if (!name) {
      return undefined;
    }
    const existing = await this.motoIn(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
    const duplicate = existing.Images?.find((image) => image.Name === name);
    return duplicate
      ? this.errorResult(400, 'InvalidAMIName.Duplicate', `AMI name ${name} is already in use by AMI ${duplicate.ImageId}`)
      : undefined;
  }

  private async createImage(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    const duplicate = await this.duplicateName(region, params.get('Name'));
    if (duplicate) {
      return duplicate;
    }
    const { params: forwarded, stripped } = stripTagSpecifications(params, 'snapshot');
    const result = await this.forward(request, Buffer.from(forwarded.toString(), 'utf8'));
    if (result.status !== 200 || stripped.length === 0) {
      return result;
    }
    await this.tagSnapshots(region, this.imageIdOf('CreateImage', result), stripped);
    return result;
  }

  /**
   * CopyImage, in the destination region (the one the request is signed for): EC2's duplicate-name check, its
   * ClientToken idempotency, and the `image` and `snapshot` tag specifications moto ignores.
   */
  private async copyImage(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    const clientToken = params.get('ClientToken');
    const tokenKey = `${region} ${clientToken}`;
    const requestKey = [...params].filter(([key]) => key !== 'ClientToken').map(([key, value]) => `${key}=${value}`).sort().join('&');
    const earlier = clientToken ? this.copyTokens.get(tokenKey) : undefined;
    if (earlier) {
      return earlier.request === requestKey
        ? xmlResult('<?xml version="1.0" encoding="UTF-8"?><CopyImageResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
          + `<requestId>copy-image-${earlier.imageId}</requestId><imageId>${earlier.imageId}</imageId></CopyImageResponse>`)
        : this.errorResult(400, 'IdempotentParameterMismatch',
          `Client token ${clientToken} was already used for a CopyImage request with different parameters.`);
    }
    const duplicate = await this.duplicateName(region, params.get('Name'));
    if (duplicate) {
      return duplicate;
    }
    const { params: withoutImageTags, stripped: imageTags } = stripTagSpecifications(params, 'image');
    const { params: forwarded, stripped: snapshotTags } = stripTagSpecifications(withoutImageTags, 'snapshot');
    const result = await this.forward(request, Buffer.from(forwarded.toString(), 'utf8'));
    if (result.status !== 200) {
      return result;
    }
    const imageId = this.imageIdOf('CopyImage', result);
    const encrypted = params.get('Encrypted');
    this.copies.set(imageId, {
      sourceRegion: params.get('SourceRegion') ?? '',
      sourceImageId: params.get('SourceImageId') ?? '',
      ...(encrypted !== null ? { encrypted: encrypted === 'true' } : {}),
      ...(params.get('KmsKeyId') ? { kmsKeyId: params.get('KmsKeyId') ?? undefined } : {}),
    });
    if (clientToken) {
      this.copyTokens.set(tokenKey, { request: requestKey, imageId });
    }
    if (imageTags.length > 0) {
      await this.motoIn(region).send(new CreateTagsCommand({ Resources: [imageId], Tags: imageTags }));
    }
    if (snapshotTags.length > 0) {
      await this.tagSnapshots(region, imageId, snapshotTags);
    }
    return result;
  }

  private imageIdOf(action: string, result: HttpResult): string {
    const imageId = /<imageId>([^<]+)<\/imageId>/.exec(result.body.toString('utf8'))?.[1];
    if (!imageId) {
      throw new Error(`${action} answered without an imageId: ${result.body.toString('utf8')}`);
    }
    return imageId;
  }

  private async tagSnapshots(region: string, imageId: string, tags: Tag[]): Promise<void> {
    const snapshotIds = await this.snapshotsOf(region, imageId);
    if (snapshotIds.length === 0) {
      throw new Error(`image ${imageId} has no snapshot to tag`);
    }
    await this.motoIn(region).send(new CreateTagsCommand({ Resources: snapshotIds, Tags: tags }));
  }

  private async registerImage(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const referenced = numberedValues(params, 'BlockDeviceMapping', '.Ebs.SnapshotId');
    const result = await this.forward(request, body);
    const imageId = /<imageId>([^<]+)<\/imageId>/.exec(result.body.toString('utf8'))?.[1];
    if (result.status === 200 && imageId) {
      for (const snapshotId of referenced) {
        this.snapshotUsers.set(snapshotId, new Set([...this.snapshotUsers.get(snapshotId) ?? [], imageId]));
      }
    }
    return result;
  }

  private async deleteSnapshot(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const snapshotId = params.get('SnapshotId') ?? '';
    const users = [...this.snapshotUsers.get(snapshotId) ?? []];
    if (users.length > 0) {
      const registered = await this.motoIn(region).send(new DescribeImagesCommand({ Filters: [{ Name: 'image-id', Values: users }] }));
      const user = registered.Images?.[0]?.ImageId;
      if (user) {
        return this.errorResult(400, 'InvalidSnapshot.InUse', `The snapshot ${snapshotId} is currently in use by ${user}`);
      }
    }
    return this.forward(request, body);
  }

  /** The two CloudFormation reads of the handler, answered from {@link setStack} (query protocol, as CloudFormation). */
  private async cloudFormationCall(action: string, params: URLSearchParams): Promise<HttpResult> {
    const ns = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
    const xml = (text: string, status = 200): HttpResult => ({ status, headers: { 'content-type': 'text/xml' }, body: Buffer.from(text, 'utf8') });
    const error = (message: string) => xml(`<ErrorResponse xmlns="${ns}"><Error><Type>Sender</Type><Code>ValidationError</Code>`
      + `<Message>${message}</Message></Error><RequestId>cfn-error</RequestId></ErrorResponse>`, 400);
    const stack = this.stack;
    const asked = params.get('StackName');
    if (!stack || (asked !== stack.id && asked !== stack.name)) {
      return error(`Stack with id ${asked} does not exist`);
    }
    const meta = '<ResponseMetadata><RequestId>cfn-request</RequestId></ResponseMetadata>';
    if (action === 'DescribeStacks') {
      return xml(`<DescribeStacksResponse xmlns="${ns}"><DescribeStacksResult><Stacks><member><StackName>${stack.name}</StackName>`
        + `<StackId>${stack.id}</StackId><StackStatus>${stack.status}</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime>`
        + `</member></Stacks></DescribeStacksResult>${meta}</DescribeStacksResponse>`);
    }
    const logicalId = params.get('LogicalResourceId') ?? '';
    const physicalId = stack.resources[logicalId];
    if (!physicalId) {
      return error(`Resource ${logicalId} does not exist for stack ${stack.name}`);
    }
    return xml(`<DescribeStackResourceResponse xmlns="${ns}"><DescribeStackResourceResult><StackResourceDetail>`
      + `<StackName>${stack.name}</StackName><StackId>${stack.id}</StackId><LogicalResourceId>${logicalId}</LogicalResourceId>`
      + `<PhysicalResourceId>${physicalId}</PhysicalResourceId><ResourceType>Custom::BakedImage</ResourceType>`
      + '<LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp><ResourceStatus>UPDATE_COMPLETE</ResourceStatus>'
      + `</StackResourceDetail></DescribeStackResourceResult>${meta}</DescribeStackResourceResponse>`);
  }

  /** EC2's image deprecation and deregistration protection calls, which moto 5.2.1 lacks. */
  private async imageLifecycleCall(region: string, action: string, params: URLSearchParams): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    const found = await this.motoIn(region).send(new DescribeImagesCommand({ ImageIds: [imageId] })).catch(() => undefined);
    if (!found?.Images?.length) {
      return this.errorResult(400, 'InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    }
    const state = this.lifecycle.get(imageId) ?? {};
    switch (action) {
      case 'EnableImageDeprecation':
        state.deprecateAt = params.get('DeprecateAt') ?? undefined;
        break;
      case 'DisableImageDeprecation':
        delete state.deprecateAt;
        break;
      case 'EnableImageDeregistrationProtection':
        state.protection = params.get('WithCooldown') === 'true' ? 'enabled-with-cooldown' : 'enabled';
        break;
      default:
        delete state.protection;
    }
    this.lifecycle.set(imageId, state);
    return xmlResult(`<?xml version="1.0" encoding="UTF-8"?><${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`
      + `<requestId>${action}-${imageId}</requestId><return>true</return></${action}Response>`);
  }

  private async deregisterImage(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const protection = this.lifecycle.get(params.get('ImageId') ?? '')?.protection;
    if (protection) {
      // EC2 refuses to deregister a protected image.
      return this.errorResult(400, 'InvalidParameterValue', `Image ${params.get('ImageId')} has deregistration protection (${protection})`);
    }
    const deleteSnapshots = params.get('DeleteAssociatedSnapshots') === 'true';
    const imageId = params.get('ImageId') ?? '';
    const snapshotIds = deleteSnapshots ? await this.snapshotsOf(region, imageId).catch(() => []) : [];
    const result = await this.forward(request, body);
    if (result.status === 200) {
      for (const snapshotId of snapshotIds) {
        await this.motoIn(region).send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
      }
    }
    return result;
  }

  private async stopInstances(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const instanceIds = numberedValues(params, 'InstanceId');
    let response: DescribeInstancesCommandOutput;
    try {
      response = await this.motoIn(region).send(new DescribeInstancesCommand({ InstanceIds: instanceIds }));
    } catch {
      // An unknown instance: moto gives EC2's own answer.
      return this.forward(request, body);
    }
    for (const instance of (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? [])) {
      if (instance.State?.Name === 'terminated' || instance.State?.Name === 'shutting-down') {
        return this.errorResult(400, 'IncorrectInstanceState', `This instance '${instance.InstanceId}' is not in a state from which it can be stopped.`);
      }
    }
    return this.forward(request, body);
  }

  /** RunInstances; a validation script in the user data starts running for each new instance. */
  private async runInstances(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = await this.forward(request, body);
    const userData = Buffer.from(params.get('UserData') ?? '', 'base64').toString('utf8');
    if (result.status !== 200 || !userData.split(/\r?\n/).some((line) => line.trim() === VALIDATION_MARKER)) {
      return result;
    }
    const instanceIds = new Set([...result.body.toString('utf8').matchAll(/<instanceId>([^<]+)<\/instanceId>/g)].map((match) => match[1]));
    for (const instanceId of instanceIds) {
      this.startValidationRun(instanceId, params.get('ImageId') ?? '', userData);
    }
    return result;
  }

  /**
   * Runs the validation script of an instance on this machine, as the instance would run its user data (see the
   * module comment). The script is the process group leader (detached), so that everything it started is killed with it.
   */
  private startValidationRun(instanceId: string, imageId: string, userData: string): void {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moto-validation-'));
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    const shutdownCalls = path.join(dir, 'shutdown-calls');
    for (const command of POWER_COMMANDS) {
      fs.writeFileSync(
        path.join(bin, command),
        `#!/bin/sh\n# Stands in for ${command} in an emulated validation instance: records its arguments, powers nothing off.\n`
        + `printf '%s\\n' "$*" >> ${shellQuote(shutdownCalls)}\nexit 0\n`,
        { mode: 0o755 },
      );
    }
    // /dev/console is a device: every write appends, whatever the redirection (`>` included). A pipe behaves the same
    // (a regular file would be truncated by `>`); `cat`, in the script's process group, appends what comes out to
    // the console file, which GetConsoleOutput reads.
    const consolePipe = path.join(dir, 'console.pipe');
    const consoleFile = path.join(dir, 'console');
    execFileSync('mkfifo', [consolePipe]);
    fs.writeFileSync(consoleFile, '');
    const script = userData
      .split('/dev/console').join(consolePipe)
      // A stand-in called by its absolute path is still a stand-in.
      .replace(/(?<![\w./-])(?:\/usr)?\/s?bin\/(shutdown|poweroff|halt|reboot)\b/g, (_match, command: string) => path.join(bin, command));
    const scriptFile = path.join(dir, 'user-data.sh');
    fs.writeFileSync(scriptFile, script, { mode: 0o700 });
    if (/(?:^|[\s;&|(`/])(?:systemctl\s+(?:poweroff|halt|reboot|kexec)|telinit\s+\S|init\s+[06])\b/m.test(script)) {
      // Not run: it would power this machine off, and the stand-ins do not cover it.
      this.errors.push(`validation script of ${instanceId} powers off without shutdown/poweroff/halt/reboot; not run:\n${userData}`);
      fs.rmSync(dir, { recursive: true, force: true });
      return;
    }
    const child = spawn(
      'bash',
      ['-c', 'exec 3<>"$1"; cat <&3 >>"$2" 3<&- & exec bash "$3" 3<&-', 'validation-instance', consolePipe, consoleFile, scriptFile],
      {
        cwd: dir,
        env: { ...process.env, TMPDIR: dir, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` },
        detached: true,
        stdio: 'ignore',
      },
    );
    child.unref();
    const run: ValidationRun = {
      instanceId,
      imageId,
      userData,
      dir,
      child,
      exited: false,
      terminated: false,
      shutdownCalls: () => {
        const text = fs.existsSync(shutdownCalls) ? fs.readFileSync(shutdownCalls, 'utf8') : '';
        return text === '' ? [] : text.replace(/\n$/, '').split('\n');
      },
    };
    child.on('exit', (code) => {
      run.exited = true;
      run.exitCode = code ?? undefined;
    });
    child.on('error', (error) => {
      run.exited = true;
      this.errors.push(`validation script of ${instanceId} could not be started: ${error.message}`);
    });
    this.validationRuns.set(instanceId, run);
  }

  /** What the validation script of the instance wrote to /dev/console, at most EC2's last 64 KB. */
  private consoleOf(run: ValidationRun): Buffer {
    let content: Buffer;
    try {
      content = fs.readFileSync(path.join(run.dir, 'console'));
    } catch {
      return Buffer.alloc(0);
    }
    return content.subarray(Math.max(0, content.length - CONSOLE_OUTPUT_LIMIT));
  }

  /**
   * GetConsoleOutput of a validation instance answers what its script wrote so far. EC2 leaves `output` out while
   * an instance has no console output yet, and so does the proxy: the SDK then gives `Output: undefined`.
   */
  private async getConsoleOutput(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const instanceId = params.get('InstanceId') ?? '';
    const run = this.validationRuns.get(instanceId);
    if (!run) {
      return this.forward(request, body);
    }
    const content = this.consoleOf(run);
    return xmlResult('<?xml version="1.0" encoding="UTF-8"?><GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      + `<requestId>console-${instanceId}-${Date.now().toString(16)}</requestId><instanceId>${instanceId}</instanceId>`
      + `<timestamp>${new Date().toISOString()}</timestamp>${content.length > 0 ? `<output>${content.toString('base64')}</output>` : ''}`
      + '</GetConsoleOutputResponse>');
  }

  /** TerminateInstances; the validation scripts of the terminated instances are killed, as the instance would stop. */
  private async terminateInstances(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = await this.forward(request, body);
    if (result.status === 200) {
      for (const instanceId of numberedValues(params, 'InstanceId')) {
        const run = this.validationRuns.get(instanceId);
        if (run) {
          run.terminated = true;
          killProcessGroup(run.child);
        }
      }
    }
    return result;
  }

  /** Kills every validation script and removes their directories. */
  private stopValidationRuns(): void {
    for (const run of this.validationRuns.values()) {
      killProcessGroup(run.child);
      fs.rmSync(run.dir, { recursive: true, force: true });
    }
    this.validationRuns.clear();
  }

  private async snapshotsOf(region: string, imageId: string): Promise<string[]> {
    const response = await this.motoIn(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    const image = response.Images?.find((candidate) => candidate.ImageId === imageId);
    return (image?.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
  }
}

// ---------------------------------------------------------------------------------------------------------
// The whole harness
// ---------------------------------------------------------------------------------------------------------

/** The bake-image handler module as bundled (assets/lambda/bake-image/index/index.js). */
export interface BakeImageHandler {
  onEvent(event: OnEventRequest): Promise<OnEventResponse>;
  isComplete(event: IsCompleteRequest): Promise<IsCompleteResponse>;
}

const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const HANDLER_BUNDLE = path.join(REPO_ROOT, 'assets', 'lambda', 'bake-image', 'index', 'index.js');
const HANDLER_SOURCES = [path.join(REPO_ROOT, 'lambda', 'bake-image'), path.join(REPO_ROOT, 'src', 'private', 'contract.ts')];

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

export class MotoHarness {
  /** Starts moto_server and the proxy. Throws (never skips) when moto_server is missing. */
  static async start(): Promise<MotoHarness> {
    const moto = await MotoServer.start();
    try {
      const proxy = await Ec2Proxy.start(moto.endpoint);
      return new MotoHarness(moto, proxy);
    } catch (error) {
      await moto.stop();
      throw error;
    }
  }

  /** Client straight to moto: what the tests assert with. */
  readonly ec2: EC2Client;
  /** Client through the proxy: for setup that needs the emulated EC2 behaviour. */
  readonly ec2ViaProxy: EC2Client;
  private savedEnv: Partial<Record<(typeof ENV_KEYS)[number], string>> | undefined;
  private builderImageId: string | undefined;
  private readonly regionalClients = new Map<string, EC2Client>();

  private constructor(readonly moto: MotoServer, readonly proxy: Ec2Proxy) {
    this.ec2 = ec2ClientFor(moto.endpoint);
    this.ec2ViaProxy = ec2ClientFor(proxy.endpoint);
  }

  /**
   * Points the AWS SDK at the proxy through the environment and loads the shipped bundle, whose EC2Client is
   * created at module load. Fails when the bundle is missing or older than its sources.
   *
   * Each call inside `jest.isolateModules` gives a fresh module, and so a fresh EC2Client (with a full retry quota).
   */
  loadHandler(): BakeImageHandler {
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
    if (!this.savedEnv) {
      this.savedEnv = {};
      for (const key of ENV_KEYS) {
        this.savedEnv[key] = process.env[key];
      }
    }
    for (const key of ENV_KEYS) {
      delete process.env[key];
    }
    process.env.AWS_REGION = REGION;
    process.env.AWS_ENDPOINT_URL = this.proxy.endpoint;
    process.env.AWS_ACCESS_KEY_ID = ACCESS_KEY_ID;
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

  /** Client straight to moto's backend of this region (cached): what the tests assert with about another region. */
  ec2In(region: string): EC2Client {
    if (region === REGION) {
      return this.ec2;
    }
    let client = this.regionalClients.get(region);
    if (!client) {
      client = ec2ClientFor(this.moto.endpoint, region);
      this.regionalClients.set(region, client);
    }
    return client;
  }

  /** Empties moto and the proxy's counters and emulated state. */
  async reset(): Promise<void> {
    await this.moto.reset();
    this.proxy.reset();
  }

  /** Launches a builder instance in moto from one of its built-in Amazon Linux AMIs. */
  async launchBuilder(): Promise<string> {
    if (!this.builderImageId) {
      const images = await this.ec2.send(new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'name', Values: ['amzn*'] }] }));
      const image = images.Images?.find((candidate) => candidate.Name?.startsWith('amzn')) ?? images.Images?.[0];
      if (!image?.ImageId) {
        throw new Error('moto offers no Amazon-owned AMI to launch a builder from');
      }
      this.builderImageId = image.ImageId;
    }
    const response = await this.ec2.send(new RunInstancesCommand({ ImageId: this.builderImageId, MinCount: 1, MaxCount: 1 }));
    const instanceId = response.Instances?.[0]?.InstanceId;
    if (!instanceId) {
      throw new Error('RunInstances returned no instance');
    }
    return instanceId;
  }

  async stop(): Promise<void> {
    if (this.savedEnv) {
      for (const key of ENV_KEYS) {
        const value = this.savedEnv[key];
        if (value === undefined) {
          delete process.env[key];
        } else {
          process.env[key] = value;
        }
      }
    }
    this.ec2.destroy();
    this.ec2ViaProxy.destroy();
    for (const client of this.regionalClients.values()) {
      client.destroy();
    }
    this.regionalClients.clear();
    await this.proxy.stop();
    await this.moto.stop();
  }
}
