/**
 * The HTTP proxy in front of moto_server that every handler client talks to. What it emulates, and why, is listed
 * in the module comment of moto-server.ts (keep that list current when this file changes).
 */
import * as http from 'http';
import { performance } from 'perf_hooks';
import {
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { type Authorizer, deniedResult, type Ec2Lookup, MotoEc2Lookup } from './moto-access';
import { type ConsistencyOptions, Ec2Consistency } from './moto-consistency';
import {
  appendToItem,
  accessKeyOf,
  ec2ClientFor,
  ec2Error,
  errorCodeOf,
  escapeXml,
  filterValues,
  freePort,
  httpRequest,
  type HttpResult,
  itemField,
  joinXmlItems,
  jsonTargetOf,
  numberedValues,
  parseSdkRequestHeader,
  readBody,
  regionOf,
  signedServiceOf,
  xmlItems,
  xmlResult,
} from './moto-http';
import { VALIDATION_MARKER, type ValidationInstance, ValidationRuns } from './moto-instances';

/** One request the proxy answered. */
export interface ProxiedRequest {
  /** The service of the SigV4 credential scope (`ec2`, `cloudformation`, `ssm`, ...). */
  readonly service: string;
  /** The query protocol's `Action`, or the JSON protocol's operation (`X-Amz-Target: AmazonSSM.PutParameter` -> `PutParameter`). */
  readonly action: string;
  /** The query parameters (empty for a JSON-protocol request). */
  readonly params: URLSearchParams;
  /** The parsed body of a JSON-protocol request. */
  readonly json?: unknown;
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
  /** Error code of the answer, if it was an error (`ECONNRESET` for a reset connection). */
  errorCode?: string;
  /**
   * Set when a fault was injected: `fault` (answered an error, moto never saw the request) or `response-lost`
   * (moto carried the request out, the client got an error or a reset connection instead of the answer).
   */
  injected?: 'fault' | 'response-lost';
  /** The authorizer's reasons when it denied the request (moto never saw it). */
  denials?: string[];
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

/** What a CopyImage asked for the copy it made (moto ignores Encrypted and KmsKeyId). */
export interface CopyRequest {
  readonly sourceRegion: string;
  readonly sourceImageId: string;
  /** The `Encrypted` parameter; undefined when the request had none. */
  readonly encrypted?: boolean;
  readonly kmsKeyId?: string;
}

/**
 * The deprecation and deregistration protection the proxy keeps for an image (moto 5.2.1 has neither).
 * `protection` is how it was enabled (`enabled`: without cooldown); `deregistrationProtection` is what DescribeImages
 * shows: `disabled`, `enabled-without-cooldown`, `enabled-with-cooldown` or `disabled-until-<time>` (in the
 * 24-hour cooldown after protection with cooldown was disabled).
 */
export interface ImageLifecycle {
  readonly deprecateAt?: string;
  readonly protection?: 'enabled' | 'enabled-with-cooldown';
  readonly deregistrationProtection: string;
}

/** EC2 keeps an image protected with cooldown undeletable for this long after its protection is disabled. */
export const DEREGISTRATION_PROTECTION_COOLDOWN_MS = 24 * 3600 * 1000;

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

/** The parameters of a request, as one comparable string (for idempotency), without its ClientToken. */
function requestKeyOf(params: URLSearchParams): string {
  return [...params].filter(([key]) => key !== 'ClientToken').map(([key, value]) => `${key}=${value}`).sort().join('&');
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
  return (body) => body.replace(
    /<imageState>[^<]*<\/imageState>/g,
    `<imageState>failed</imageState><stateReason><code>${escapeXml(reason.code)}</code><message>${escapeXml(reason.message)}</message></stateReason>`,
  );
}

/** An EC2 time as its XML shows times: `2026-05-10T13:17:00.000Z`, to the second. */
function ec2Time(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

/**
 * HTTP proxy in front of moto_server: forwards requests (EC2 and CloudFormation query protocol, JSON protocol such as
 * SSM), emulates the EC2 behaviours moto lacks (see the module comment of moto-server.ts), authorizes requests when
 * given an authorizer, counts requests by Action and can rewrite responses.
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
  /**
   * Looks EC2 resources up (tags, owner) for an authorizer, straight against moto: not counted, not authorized, not
   * subject to the emulated eventual consistency.
   */
  readonly lookup: Ec2Lookup;
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
  private readonly denials: string[] = [];
  private authorizer: Authorizer | undefined;
  private readonly consistency = new Ec2Consistency();
  /** Added to the real time: see {@link advanceClock}. */
  private clockOffset = 0;
  /** Per region: the CreateImage or CopyImage being handled (they check the name and create one at a time). */
  private readonly imageCreations = new Map<string, Promise<unknown>>();
  /** Copy image id -> what its CopyImage asked (moto ignores Encrypted and KmsKeyId). */
  private readonly copies = new Map<string, CopyRequest>();
  /** `region clientToken` -> the CopyImage it made: EC2 answers a repeated request with the first copy. */
  private readonly copyTokens = new Map<string, { readonly request: string; readonly imageId: string }>();
  /** `region clientToken` -> the RunInstances it made: EC2 answers a repeated request with the first launch. */
  private readonly runTokens = new Map<string, { readonly request: string; readonly result: Promise<HttpResult> }>();
  /** The instances launched with a validation script, and their scripts. */
  private readonly runs: ValidationRuns;

  /**
   * The CloudFormation stack the handler asks about (DescribeStacks, DescribeStackResource) when it keeps
   * superseded images: the tests set its status and resources, as CloudFormation would during an update.
   */
  private stack?: { readonly name: string; readonly id: string; readonly status: string; readonly resources: Record<string, string> };

  /**
   * moto 5.2.1 has no image deprecation nor deregistration protection: the proxy keeps them, per image. Image ids are
   * random, so ids of different regions never collide.
   */
  private readonly lifecycle = new Map<string, { deprecateAt?: string; protection?: 'enabled' | 'enabled-with-cooldown'; cooldownUntil?: number }>();

  private constructor(motoEndpoint: string) {
    this.motoUrl = new URL(motoEndpoint);
    this.lookup = new MotoEc2Lookup((region) => this.motoIn(region), this.motoUrl.origin);
    this.runs = new ValidationRuns({
      clientIn: (region) => this.motoIn(region),
      now: () => this.now(),
      error: (message) => this.errors.push(message),
    });
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

  /** The deprecation time and deregistration protection the proxy emulates for an image. */
  imageLifecycle(imageId: string): ImageLifecycle {
    const state = this.lifecycle.get(imageId);
    return {
      ...(state?.deprecateAt !== undefined ? { deprecateAt: state.deprecateAt } : {}),
      ...(state?.protection !== undefined ? { protection: state.protection } : {}),
      deregistrationProtection: this.protectionShown(imageId),
    };
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
    return this.runs.list();
  }

  /**
   * Decides every request from now on, after its gate and before injected faults and emulation (the proxy's own side
   * calls to moto are never authorized). A denied request is answered as AWS answers it (EC2: HTTP 403
   * `UnauthorizedOperation`; CloudFormation: HTTP 403 `AccessDenied`; JSON-protocol services such as SSM: HTTP 400
   * `AccessDeniedException`) and never reaches moto; its denials are kept for {@link takeDenials}. `undefined` turns
   * authorization off (the default). Kept across {@link reset}.
   */
  setAuthorizer(authorizer: Authorizer | undefined): void {
    this.authorizer = authorizer;
  }

  /** The denials of the requests the authorizer denied since the last call (a test should usually see none). */
  takeDenials(): string[] {
    return this.denials.splice(0);
  }

  /**
   * EC2's eventual consistency, counted in requests (all 0, moto's immediate consistency, by default): see
   * {@link ConsistencyOptions}. Replaces the earlier settings: resources created or deregistered from now on get the
   * new windows, and the windows already open are cut to them (`setConsistency({})` ends them all at once). Kept
   * across {@link reset} (which forgets the resources seen so far).
   */
  setConsistency(options: ConsistencyOptions): void {
    this.consistency.set(options);
  }

  /** The proxy's clock (epoch milliseconds): the real time plus what {@link advanceClock} added since the last reset. */
  now(): number {
    return Date.now() + this.clockOffset;
  }

  /**
   * Moves the proxy's clock forward: deregistration protection cooldowns end, and the shutdowns validation scripts
   * scheduled come due (and are carried out before this resolves). moto's own clock is not moved.
   */
  async advanceClock(ms: number): Promise<void> {
    this.clockOffset += ms;
    await this.runs.tick();
  }

  /**
   * Forgets counts, rewrites, gates, injected faults, denials, consistency windows, the clock's advance and emulated
   * state (call together with moto's reset). The authorizer and the consistency settings stay.
   */
  reset(): void {
    this.runs.stopAll();
    this.stack = undefined;
    this.lifecycle.clear();
    this.copies.clear();
    this.copyTokens.clear();
    this.runTokens.clear();
    this.requests.length = 0;
    this.rewrites.length = 0;
    this.gates.clear();
    this.snapshotUsers.clear();
    this.denials.length = 0;
    this.consistency.clear();
    this.clockOffset = 0;
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
    this.runs.stopAll();
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
    const target = jsonTargetOf(request);
    const params = target ? new URLSearchParams() : new URLSearchParams(body.toString('utf8'));
    const action = target?.operation ?? params.get('Action') ?? `${request.method} ${request.url}`;
    let json: unknown;
    if (target && body.length > 0) {
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        json = undefined; // the service answers a malformed body itself
      }
    }
    const service = signedServiceOf(request)
      ?? (target ? target.prefix.replace(/^Amazon/, '').toLowerCase()
        : action === 'DescribeStacks' || action === 'DescribeStackResource' ? 'cloudformation' : 'ec2');
    const sdkRequest = parseSdkRequestHeader(request.headers['amz-sdk-request']);
    const invocationId = request.headers['amz-sdk-invocation-id'];
    const region = regionOf(request);
    const record: ProxiedRequest = {
      service,
      action,
      params,
      ...(target ? { json } : {}),
      region,
      at,
      invocationId: Array.isArray(invocationId) ? invocationId[0] : invocationId,
      attempt: sdkRequest.attempt,
      maxAttempts: sdkRequest.max,
    };
    this.requests.push(record);

    await this.passGate(record.action);

    if (this.authorizer) {
      const asked = { service, action, params, json, region, accessKeyId: accessKeyOf(request) };
      const decision = await this.authorizer(asked);
      if (!decision.allowed) {
        const denials = decision.denials.length > 0 ? [...decision.denials] : [`${service}:${action} denied`];
        record.denials = denials;
        this.denials.push(...denials);
        this.reply(record, params, deniedResult(asked, denials, target !== undefined), response);
        return;
      }
    }

    const fault = takeInjection(this.faults, record.action, params);
    const result = fault
      ? ec2Error(fault.status, fault.code, fault.message)
      : await this.emulate(service, record.action, region, request, params, body);
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
      this.reply(record, params, ec2Error(lost.status, lost.code, lost.message), response);
      return;
    }
    this.reply(record, params, result, response);
  }

  /** Forwards a request to moto, with the EC2 behaviours moto lacks (see the module comment of moto-server.ts). */
  private async emulate(
    service: string,
    action: string,
    region: string,
    request: http.IncomingMessage,
    params: URLSearchParams,
    body: Buffer,
  ): Promise<HttpResult> {
    if (service === 'cloudformation' && (action === 'DescribeStacks' || action === 'DescribeStackResource')) {
      return this.cloudFormationCall(action, params);
    }
    if (service !== 'ec2') {
      return this.forward(request, body);
    }
    switch (action) {
      case 'CreateImage':
        return this.oneImageCreationAtATime(region, () => this.createImage(region, request, params));
      case 'CopyImage':
        return this.oneImageCreationAtATime(region, () => this.copyImage(region, request, params));
      case 'RegisterImage':
        return this.registerImage(request, params, body);
      case 'DescribeImages':
        return this.describeImages(region, request, params, body);
      case 'DeleteSnapshot':
        return this.deleteSnapshot(region, request, params, body);
      case 'DeregisterImage':
        return this.deregisterImage(region, request, params, body);
      case 'StopInstances':
        return this.stopInstances(region, request, params, body);
      case 'RunInstances':
        return this.runInstances(region, request, params, body);
      case 'DescribeInstances':
        return this.describeInstances(region, request, params, body);
      case 'GetConsoleOutput':
        return this.getConsoleOutput(request, params, body);
      case 'TerminateInstances':
        return this.terminateInstances(request, params, body);
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

  /** EC2's answer when an image of the region already has this name; undefined when none has. */
  private async duplicateName(region: string, name: string | null): Promise<HttpResult | undefined> {
    if (!name) {
      return undefined;
    }
    const existing = await this.motoIn(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
    const duplicate = existing.Images?.find((image) => image.Name === name);
    return duplicate
      ? ec2Error(400, 'InvalidAMIName.Duplicate', `AMI name ${name} is already in use by AMI ${duplicate.ImageId}`)
      : undefined;
  }

  private async createImage(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    const duplicate = await this.duplicateName(region, params.get('Name'));
    if (duplicate) {
      return duplicate;
    }
    const { params: forwarded, stripped } = stripTagSpecifications(params, 'snapshot');
    const result = await this.forward(request, Buffer.from(forwarded.toString(), 'utf8'));
    if (result.status !== 200) {
      return result;
    }
    const imageId = this.imageIdOf('CreateImage', result);
    if (stripped.length > 0) {
      await this.tagSnapshots(region, imageId, stripped);
    }
    this.consistency.imageCreated(region, imageId);
    return result;
  }

  /**
   * CopyImage, in the destination region (the one the request is signed for): EC2's duplicate-name check, its
   * ClientToken idempotency, and the `image` and `snapshot` tag specifications moto ignores.
   */
  private async copyImage(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    const clientToken = params.get('ClientToken');
    const tokenKey = `${region} ${clientToken}`;
    const requestKey = requestKeyOf(params);
    const earlier = clientToken ? this.copyTokens.get(tokenKey) : undefined;
    if (earlier) {
      return earlier.request === requestKey
        ? xmlResult('<?xml version="1.0" encoding="UTF-8"?><CopyImageResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
          + `<requestId>copy-image-${earlier.imageId}</requestId><imageId>${earlier.imageId}</imageId></CopyImageResponse>`)
        : ec2Error(400, 'IdempotentParameterMismatch',
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
    this.consistency.imageCreated(region, imageId);
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

  /** DescribeImages: new images hidden while EC2 is not consistent yet, and the lifecycle fields moto lacks. */
  private async describeImages(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = this.consistency.describeImages(region, params, await this.forward(request, body));
    if (result.status !== 200) {
      return result;
    }
    const parts = xmlItems(result.body.toString('utf8'), 'imagesSet');
    if (!parts || parts.items.length === 0) {
      return result;
    }
    const items = parts.items.map((item) => {
      const imageId = itemField(item, 'imageId') ?? '';
      const deprecateAt = this.lifecycle.get(imageId)?.deprecateAt;
      // EC2 rounds the deprecation time to the minute.
      const deprecation = deprecateAt !== undefined && !Number.isNaN(Date.parse(deprecateAt))
        ? `<deprecationTime>${ec2Time(Math.round(Date.parse(deprecateAt) / 60_000) * 60_000)}</deprecationTime>`
        : '';
      return appendToItem(item, `${deprecation}<deregistrationProtection>${this.protectionShown(imageId)}</deregistrationProtection>`);
    });
    return { ...result, body: Buffer.from(joinXmlItems({ ...parts, items }, 'imagesSet'), 'utf8') };
  }

  /** An image registered from this snapshot (RegisterImage) that is still registered, other than `except`. */
  private async registeredUserOf(region: string, snapshotId: string, except?: string): Promise<string | undefined> {
    const users = [...this.snapshotUsers.get(snapshotId) ?? []].filter((imageId) => imageId !== except);
    if (users.length === 0) {
      return undefined;
    }
    const registered = await this.motoIn(region).send(new DescribeImagesCommand({ Filters: [{ Name: 'image-id', Values: users }] }));
    return registered.Images?.find((image) => image.State !== 'deregistered')?.ImageId;
  }

  private async deleteSnapshot(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const snapshotId = params.get('SnapshotId') ?? '';
    const user = this.consistency.snapshotStillInUse(region, snapshotId) ?? await this.registeredUserOf(region, snapshotId);
    if (user) {
      return ec2Error(400, 'InvalidSnapshot.InUse', `The snapshot ${snapshotId} is currently in use by ${user}`);
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

  /** What DescribeImages shows as the image's `deregistrationProtection`. */
  private protectionShown(imageId: string): string {
    const state = this.lifecycle.get(imageId);
    if (state?.protection === 'enabled') {
      return 'enabled-without-cooldown';
    }
    if (state?.protection === 'enabled-with-cooldown') {
      return 'enabled-with-cooldown';
    }
    if (state?.cooldownUntil !== undefined && state.cooldownUntil > this.now()) {
      return `disabled-until-${ec2Time(state.cooldownUntil)}`;
    }
    return 'disabled';
  }

  /** EC2's image deprecation and deregistration protection calls, which moto 5.2.1 lacks. */
  private async imageLifecycleCall(region: string, action: string, params: URLSearchParams): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    const found = await this.motoIn(region).send(new DescribeImagesCommand({ ImageIds: [imageId] })).catch(() => undefined);
    if (!found?.Images?.length) {
      return ec2Error(400, 'InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    }
    const state = this.lifecycle.get(imageId) ?? {};
    let answer = 'true';
    switch (action) {
      case 'EnableImageDeprecation':
        state.deprecateAt = params.get('DeprecateAt') ?? undefined;
        break;
      case 'DisableImageDeprecation':
        delete state.deprecateAt;
        break;
      case 'EnableImageDeregistrationProtection':
        state.protection = params.get('WithCooldown') === 'true' ? 'enabled-with-cooldown' : 'enabled';
        delete state.cooldownUntil;
        break;
      default:
        if (state.protection === 'enabled-with-cooldown') {
          // The image stays protected for 24 hours after its protection with cooldown is disabled.
          state.cooldownUntil = this.now() + DEREGISTRATION_PROTECTION_COOLDOWN_MS;
        }
        delete state.protection;
    }
    this.lifecycle.set(imageId, state);
    if (action.endsWith('DeregistrationProtection')) {
      // EC2 answers the new protection state (`enabled-without-cooldown`, `disabled`, ...), not `true`.
      answer = this.protectionShown(imageId);
    }
    return xmlResult(`<?xml version="1.0" encoding="UTF-8"?><${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`
      + `<requestId>${action}-${imageId}</requestId><return>${answer}</return></${action}Response>`);
  }

  private async deregisterImage(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    const state = this.lifecycle.get(imageId);
    if (state?.protection || (state?.cooldownUntil !== undefined && state.cooldownUntil > this.now())) {
      // EC2 refuses to deregister a protected image, and one in the cooldown after its protection was disabled.
      return ec2Error(400, 'InvalidParameterValue', `Image ${imageId} has deregistration protection (${this.protectionShown(imageId)})`);
    }
    const deleteSnapshots = params.get('DeleteAssociatedSnapshots') === 'true';
    const snapshotIds = deleteSnapshots || this.consistency.tracksDeregisteredSnapshots
      ? await this.snapshotsOf(region, imageId).catch(() => [])
      : [];
    const result = await this.forward(request, body);
    if (result.status !== 200) {
      return result;
    }
    this.consistency.imageDeregistered(region, imageId, snapshotIds);
    if (!deleteSnapshots) {
      return result;
    }
    // EC2 deletes the snapshots it can and says for each what happened (DeregisterImage's deleteSnapshotResultSet).
    const outcomes: string[] = [];
    for (const snapshotId of snapshotIds) {
      let returnCode: string;
      if (await this.registeredUserOf(region, snapshotId, imageId)) {
        returnCode = 'skipped'; // associated with another AMI
      } else if (this.consistency.snapshotInWindow(region, snapshotId)) {
        returnCode = 'client-error'; // InvalidSnapshot.InUse: EC2 still sees the image using it
      } else {
        await this.motoIn(region).send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
        returnCode = 'success';
      }
      outcomes.push(`<item><snapshotId>${snapshotId}</snapshotId><returnCode>${returnCode}</returnCode></item>`);
    }
    const xml = result.body.toString('utf8').replace(
      /<\/DeregisterImageResponse>\s*$/,
      `<deleteSnapshotResultSet>${outcomes.join('')}</deleteSnapshotResultSet></DeregisterImageResponse>`,
    );
    return { ...result, body: Buffer.from(xml, 'utf8') };
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
        return ec2Error(400, 'IncorrectInstanceState', `This instance '${instance.InstanceId}' is not in a state from which it can be stopped.`);
      }
    }
    const result = await this.forward(request, body);
    if (result.status === 200) {
      this.runs.stoppedByApi(instanceIds);
    }
    return result;
  }

  /**
   * RunInstances: EC2's ClientToken idempotency (moto ignores the token: same token and parameters in the region answer
   * the first launch again, other parameters `IdempotentParameterMismatch`), then {@link launch}.
   */
  private async runInstances(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const clientToken = params.get('ClientToken');
    if (!clientToken) {
      return this.launch(region, request, params, body);
    }
    const tokenKey = `${region} ${clientToken}`;
    const requestKey = requestKeyOf(params);
    const earlier = this.runTokens.get(tokenKey);
    if (earlier) {
      return earlier.request === requestKey
        ? earlier.result
        : ec2Error(400, 'IdempotentParameterMismatch',
          `Client token ${clientToken} was already used for a RunInstances request with different parameters.`);
    }
    const result = this.launch(region, request, params, body);
    this.runTokens.set(tokenKey, { request: requestKey, result });
    const answer = await result;
    if (answer.status !== 200) {
      this.runTokens.delete(tokenKey); // nothing was launched: the token is free again
    }
    return answer;
  }

  /** Launches in moto; a validation script in the user data starts running for each new instance. */
  private async launch(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = await this.forward(request, body);
    if (result.status !== 200) {
      return result;
    }
    const userData = Buffer.from(params.get('UserData') ?? '', 'base64').toString('utf8');
    const validation = userData.split(/\r?\n/).some((line) => line.trim() === VALIDATION_MARKER);
    const instanceIds = [...new Set([...result.body.toString('utf8').matchAll(/<instanceId>([^<]+)<\/instanceId>/g)].map((match) => match[1]))];
    this.consistency.instancesLaunched(region, instanceIds, validation);
    if (!validation) {
      return result;
    }
    for (const instanceId of instanceIds) {
      this.runs.start(instanceId, region, params.get('ImageId') ?? '', userData, params.get('InstanceInitiatedShutdownBehavior') ?? 'stop');
    }
    if (this.consistency.settings.newInstancePendingFor > 0) {
      // EC2's RunInstances answers its new instances `pending`.
      const xml = result.body.toString('utf8').replace(/<instanceState>[\s\S]*?<\/instanceState>/g, '<instanceState><code>0</code><name>pending</name></instanceState>');
      return { ...result, body: Buffer.from(xml, 'utf8') };
    }
    return result;
  }

  /** DescribeInstances: new instances hidden or `pending` while EC2 is not consistent yet (see {@link Ec2Consistency}). */
  private async describeInstances(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const { params: forwarded, stateFilter } = this.consistency.describeInstancesRequest(region, params);
    const result = await this.forward(request, forwarded === params ? body : Buffer.from(forwarded.toString(), 'utf8'));
    return this.consistency.describeInstances(region, params, stateFilter, result);
  }

  /**
   * GetConsoleOutput of a validation instance: with `Latest=true`, what its script wrote so far; without, what EC2
   * buffered at its last state change (nothing while it runs since launch). EC2 leaves `output` out while there is
   * nothing, and so does the proxy: the SDK then gives `Output: undefined`.
   */
  private async getConsoleOutput(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const instanceId = params.get('InstanceId') ?? '';
    const content = this.runs.consoleOutput(instanceId, params.get('Latest') === 'true');
    if (content === undefined) {
      return this.forward(request, body);
    }
    return xmlResult('<?xml version="1.0" encoding="UTF-8"?><GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      + `<requestId>console-${instanceId}-${Date.now().toString(16)}</requestId><instanceId>${instanceId}</instanceId>`
      + `<timestamp>${new Date(this.now()).toISOString()}</timestamp>${content.length > 0 ? `<output>${content.toString('base64')}</output>` : ''}`
      + '</GetConsoleOutputResponse>');
  }

  /** TerminateInstances; the validation scripts of the terminated instances are killed, as the instance would stop. */
  private async terminateInstances(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = await this.forward(request, body);
    if (result.status === 200) {
      this.runs.terminatedByApi(numberedValues(params, 'InstanceId'));
    }
    return result;
  }

  private async snapshotsOf(region: string, imageId: string): Promise<string[]> {
    const response = await this.motoIn(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    const image = response.Images?.find((candidate) => candidate.ImageId === imageId);
    return (image?.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
  }
}
