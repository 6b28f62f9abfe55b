/**
 * The HTTP proxy in front of moto_server that every handler client talks to: it records each request, holds it at its
 * gate, asks the authorizer, injects faults and routes it to the emulation of what moto lacks, or to moto. What it
 * emulates, and why, is listed in the module comment of moto-server.ts (keep that list current when a part changes):
 * moto-injection.ts (faults, lost answers, rewrites, gates), moto-ec2-images.ts and moto-image-lifecycle.ts (images
 * and snapshots), moto-fast-snapshot-restores.ts (EBS fast snapshot restore), moto-ec2-instances.ts (instances,
 * validation scripts), moto-consistency.ts (eventual consistency), moto-cloudformation.ts (the handler's
 * CloudFormation reads), moto-access.ts (the authorizer hook).
 */
import * as http from 'http';
import { performance } from 'perf_hooks';
import { type Authorizer, deniedResult, type Ec2Lookup, MotoEc2Lookup } from './moto-access';
import { CLOUDFORMATION_ACTIONS, EmulatedCloudFormation, type StackStatus } from './moto-cloudformation';
import { type ConsistencyOptions, Ec2Consistency } from './moto-consistency';
import { type CopyRequest, EmulatedImages } from './moto-ec2-images';
import { EmulatedInstances } from './moto-ec2-instances';
import { FAST_SNAPSHOT_RESTORE_ACTIONS, FastSnapshotRestores } from './moto-fast-snapshot-restores';
import {
  accessKeyOf,
  ec2Error,
  errorCodeOf,
  freePort,
  httpRequest,
  type HttpResult,
  type MotoBackend,
  readBody,
  RegionalEc2Clients,
} from './moto-http';
import { IMAGE_LIFECYCLE_ACTIONS, type ImageLifecycle, ImageLifecycles, imdsSupportChange } from './moto-image-lifecycle';
import { type Ec2Fault, Injections, type LostResponse, type RequestMatcher } from './moto-injection';
import { type ProxiedRequest, recordOf } from './moto-requests';
import type { ValidationInstance } from './moto-validation-runs';

/**
 * HTTP proxy in front of moto_server: forwards requests (EC2 and CloudFormation query protocol, JSON protocol such as
 * SSM), emulates the EC2 behaviours moto lacks (see the module comment of moto-server.ts), authorizes requests when
 * given an authorizer, counts requests by Action and injects faults.
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
  /** Direct clients to moto for the proxy's own side calls (not counted), one per region. */
  private readonly motoClients: RegionalEc2Clients;
  private readonly server: http.Server;
  private readonly errors: string[] = [];
  private readonly denials: string[] = [];
  private authorizer: Authorizer | undefined;
  /** Added to the real time: see {@link advanceClock}. */
  private clockOffset = 0;
  private readonly injections = new Injections((message) => this.errors.push(message));
  private readonly consistency = new Ec2Consistency();
  private readonly lifecycles: ImageLifecycles;
  private readonly fastRestores: FastSnapshotRestores;
  private readonly images: EmulatedImages;
  private readonly instances: EmulatedInstances;
  private readonly cloudFormation = new EmulatedCloudFormation();

  private constructor(motoEndpoint: string) {
    this.motoUrl = new URL(motoEndpoint);
    this.motoClients = new RegionalEc2Clients(this.motoUrl.origin);
    this.lookup = new MotoEc2Lookup((region) => this.motoClients.in(region), this.motoUrl.origin);
    const moto: MotoBackend = {
      forward: (request, body) => this.forward(request, body),
      motoIn: (region) => this.motoClients.in(region),
      now: () => this.now(),
    };
    this.lifecycles = new ImageLifecycles(moto, this.consistency);
    this.fastRestores = new FastSnapshotRestores(moto);
    this.images = new EmulatedImages(moto, this.consistency, this.lifecycles, this.fastRestores);
    this.instances = new EmulatedInstances(moto, this.consistency, (message) => this.errors.push(message));
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

  /** Problems inside the proxy itself since the last call (a test should see none). */
  takeErrors(): string[] {
    return this.errors.splice(0);
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
    await this.instances.tick();
  }

  // The emulated state, and the faults: see the modules that keep them.

  /** {@inheritDoc ImageLifecycles.of} */
  imageLifecycle(imageId: string): ImageLifecycle {
    return this.lifecycles.of(imageId);
  }

  /** {@inheritDoc FastSnapshotRestores.of} */
  fastSnapshotRestores(snapshotId: string): Record<string, string> {
    return this.fastRestores.of(snapshotId);
  }

  /** {@inheritDoc EmulatedImages.copyRequest} */
  copyRequest(imageId: string): CopyRequest | undefined {
    return this.images.copyRequest(imageId);
  }

  /** {@inheritDoc EmulatedInstances.validationInstances} */
  validationInstances(): ValidationInstance[] {
    return this.instances.validationInstances();
  }

  /** {@inheritDoc EmulatedCloudFormation.setStack} */
  setStack(stack: StackStatus): void {
    this.cloudFormation.setStack(stack);
  }

  /** {@inheritDoc Injections.failNext} */
  failNext(action: string, count: number, fault: Ec2Fault, applies?: RequestMatcher): void {
    this.injections.failNext(action, count, fault, applies);
  }

  /** {@inheritDoc Injections.loseResponses} */
  loseResponses(action: string, count: number, how: LostResponse, applies?: RequestMatcher): void {
    this.injections.loseResponses(action, count, how, applies);
  }

  /** {@inheritDoc Injections.unusedFaults} */
  unusedFaults(): Record<string, number> {
    return this.injections.unusedFaults();
  }

  /** {@inheritDoc Injections.clearFaults} */
  clearFaults(): void {
    this.injections.clearFaults();
  }

  /** {@inheritDoc Injections.rewriteResponses} */
  rewriteResponses(action: string, times: number, rewrite: (body: string) => string, applies?: RequestMatcher): void {
    this.injections.rewriteResponses(action, times, rewrite, applies);
  }

  /** {@inheritDoc Injections.unusedRewrites} */
  unusedRewrites(): number {
    return this.injections.unusedRewrites();
  }

  /** {@inheritDoc Injections.holdPending} */
  holdPending(imageId: string, polls: number): void {
    this.injections.holdPending(imageId, polls);
  }

  /** {@inheritDoc Injections.holdPendingByName} */
  holdPendingByName(name: string, polls: number): void {
    this.injections.holdPendingByName(name, polls);
  }

  /** {@inheritDoc Injections.failImage} */
  failImage(imageId: string, polls: number, reason: { code: string; message: string }): void {
    this.injections.failImage(imageId, polls, reason);
  }

  /** {@inheritDoc Injections.failImageByName} */
  failImageByName(name: string, polls: number, reason: { code: string; message: string }): void {
    this.injections.failImageByName(name, polls, reason);
  }

  /** {@inheritDoc Injections.gate} */
  gate(action: string, count: number): void {
    this.injections.gate(action, count);
  }

  /**
   * Forgets counts, rewrites, gates, injected faults, denials, consistency windows, the clock's advance and emulated
   * state (call together with moto's reset). The authorizer and the consistency settings stay.
   */
  reset(): void {
    this.instances.clear();
    this.cloudFormation.clear();
    this.lifecycles.clear();
    this.fastRestores.clear();
    this.images.clear();
    this.requests.length = 0;
    this.denials.length = 0;
    this.consistency.clear();
    this.clockOffset = 0;
    this.injections.clear();
  }

  async stop(): Promise<void> {
    this.injections.releaseGates();
    this.instances.stopAll();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.motoClients.destroy();
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const at = performance.now();
    const body = await readBody(request);
    const { record, jsonProtocol } = recordOf(request, body, at);
    const { service, action, params, json, region } = record;
    this.requests.push(record);

    await this.injections.passGate(action);

    if (this.authorizer) {
      const asked = { service, action, params, json, region, accessKeyId: accessKeyOf(request) };
      const decision = await this.authorizer(asked);
      if (!decision.allowed) {
        const denials = decision.denials.length > 0 ? [...decision.denials] : [`${service}:${action} denied`];
        record.denials = denials;
        this.denials.push(...denials);
        this.reply(record, deniedResult(asked, denials, jsonProtocol), response);
        return;
      }
    }

    const fault = this.injections.takeFault(action, params);
    const result = fault
      ? ec2Error(fault.status, fault.code, fault.message)
      : await this.emulate(service, action, region, request, params, body);
    if (fault) {
      record.injected = 'fault';
    }

    const lost = result.status === 200 ? this.injections.takeLostResponse(action, params) : undefined;
    if (lost === 'connection-reset') {
      record.injected = 'response-lost';
      record.status = 0;
      record.errorCode = 'ECONNRESET';
      request.socket.destroy();
      return;
    }
    if (lost) {
      record.injected = 'response-lost';
      this.reply(record, ec2Error(lost.status, lost.code, lost.message), response);
      return;
    }
    this.reply(record, result, response);
  }

  /** Routes a request to the emulation of what moto lacks (see the module comment of moto-server.ts), or to moto. */
  private async emulate(
    service: string,
    action: string,
    region: string,
    request: http.IncomingMessage,
    params: URLSearchParams,
    body: Buffer,
  ): Promise<HttpResult> {
    if (service === 'cloudformation' && CLOUDFORMATION_ACTIONS.includes(action)) {
      return this.cloudFormation.answer(action, params);
    }
    if (service !== 'ec2') {
      return this.forward(request, body);
    }
    if (IMAGE_LIFECYCLE_ACTIONS.includes(action)) {
      return this.lifecycles.call(region, action, params);
    }
    if (FAST_SNAPSHOT_RESTORE_ACTIONS.includes(action)) {
      return this.fastRestores.call(region, action, params);
    }
    if (action === 'ModifyImageAttribute' && imdsSupportChange(params) !== undefined) {
      return this.lifecycles.modifyImdsSupport(region, params);
    }
    if (action === 'DescribeImageAttribute' && params.get('Attribute') === 'imdsSupport') {
      return this.lifecycles.describeImdsSupport(region, params);
    }
    switch (action) {
      case 'CreateImage':
        return this.images.createImage(region, request, params);
      case 'CopyImage':
        return this.images.copyImage(region, request, params);
      case 'RegisterImage':
        return this.images.registerImage(request, params, body);
      case 'DescribeImages':
        return this.images.describeImages(region, request, params, body);
      case 'DeleteSnapshot':
        return this.images.deleteSnapshot(region, request, params, body);
      case 'DeregisterImage':
        return this.images.deregisterImage(region, request, params, body);
      case 'StopInstances':
        return this.instances.stopInstances(region, request, params, body);
      case 'RunInstances':
        return this.instances.runInstances(region, request, params, body);
      case 'DescribeInstances':
        return this.instances.describeInstances(region, request, params, body);
      case 'GetConsoleOutput':
        return this.instances.getConsoleOutput(request, params, body);
      case 'TerminateInstances':
        return this.instances.terminateInstances(request, params, body);
      default:
        return this.forward(request, body);
    }
  }

  private reply(record: ProxiedRequest, result: HttpResult, response: http.ServerResponse): void {
    let text = result.body.toString('utf8');
    if (result.status === 200) {
      text = this.injections.rewrite(record.action, record.params, text);
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
}
