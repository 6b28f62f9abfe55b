/**
 * EC2's instance calls where moto 5.2.1 differs from EC2 (see the module comment of moto-server.ts): RunInstances'
 * ClientToken idempotency, StopInstances of a terminated instance, the eventual consistency of DescribeInstances, and
 * test instances that run their validation script (moto-validation-runs.ts) and answer GetConsoleOutput with what it
 * wrote.
 */
import type * as http from 'http';
import { DescribeInstancesCommand, type DescribeInstancesCommandOutput } from '@aws-sdk/client-ec2';
import type { Ec2Consistency } from './moto-consistency';
import { ec2Error, type HttpResult, type MotoBackend, numberedValues, requestKeyOf, xmlResult } from './moto-http';
import { VALIDATION_MARKER, type ValidationInstance, ValidationRuns } from './moto-validation-runs';

/** The instance calls moto gets wrong, and the validation scripts of the instances launched with one. */
export class EmulatedInstances {
  /** `region clientToken` -> the RunInstances it made: EC2 answers a repeated request with the first launch. */
  private readonly runTokens = new Map<string, { readonly request: string; readonly result: Promise<HttpResult> }>();
  /** The instances launched with a validation script, and their scripts. */
  private readonly runs: ValidationRuns;

  /** `error` reports a problem of the proxy itself. */
  constructor(private readonly moto: MotoBackend, private readonly consistency: Ec2Consistency, error: (message: string) => void) {
    this.runs = new ValidationRuns({ clientIn: (region) => moto.motoIn(region), now: () => moto.now(), error });
  }

  /** The instances launched with a validation script since the last {@link clear}, in launch order. */
  validationInstances(): ValidationInstance[] {
    return this.runs.list();
  }

  /** Acts on what the validation scripts asked so far, and on the shutdowns they scheduled that are due by the proxy's clock. */
  tick(): Promise<void> {
    return this.runs.tick();
  }

  /**
   * RunInstances: EC2's ClientToken idempotency (moto ignores the token: same token and parameters in the region answer
   * the first launch again, other parameters `IdempotentParameterMismatch`), then {@link launch}.
   */
  async runInstances(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
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

  /** DescribeInstances: new instances hidden or `pending` while EC2 is not consistent yet (see {@link Ec2Consistency}). */
  async describeInstances(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const { params: forwarded, stateFilter } = this.consistency.describeInstancesRequest(region, params);
    const result = await this.moto.forward(request, forwarded === params ? body : Buffer.from(forwarded.toString(), 'utf8'));
    return this.consistency.describeInstances(region, params, stateFilter, result);
  }

  /** StopInstances: `IncorrectInstanceState` for a terminated instance, as EC2 answers; a stopped instance's script stops. */
  async stopInstances(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const instanceIds = numberedValues(params, 'InstanceId');
    let response: DescribeInstancesCommandOutput;
    try {
      response = await this.moto.motoIn(region).send(new DescribeInstancesCommand({ InstanceIds: instanceIds }));
    } catch {
      // An unknown instance: moto gives EC2's own answer.
      return this.moto.forward(request, body);
    }
    for (const instance of (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? [])) {
      if (instance.State?.Name === 'terminated' || instance.State?.Name === 'shutting-down') {
        return ec2Error(400, 'IncorrectInstanceState', `This instance '${instance.InstanceId}' is not in a state from which it can be stopped.`);
      }
    }
    const result = await this.moto.forward(request, body);
    if (result.status === 200) {
      this.runs.stoppedByApi(instanceIds);
    }
    return result;
  }

  /**
   * GetConsoleOutput of a validation instance: with `Latest=true`, what its script wrote so far; without, what EC2
   * buffered at its last state change (nothing while it runs since launch). EC2 leaves `output` out while there is
   * nothing, and so does the proxy: the SDK then gives `Output: undefined`.
   */
  async getConsoleOutput(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const instanceId = params.get('InstanceId') ?? '';
    const content = this.runs.consoleOutput(instanceId, params.get('Latest') === 'true');
    if (content === undefined) {
      return this.moto.forward(request, body);
    }
    return xmlResult('<?xml version="1.0" encoding="UTF-8"?><GetConsoleOutputResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      + `<requestId>console-${instanceId}-${Date.now().toString(16)}</requestId><instanceId>${instanceId}</instanceId>`
      + `<timestamp>${new Date(this.moto.now()).toISOString()}</timestamp>${content.length > 0 ? `<output>${content.toString('base64')}</output>` : ''}`
      + '</GetConsoleOutputResponse>');
  }

  /** TerminateInstances; the validation scripts of the terminated instances are killed, as the instance would stop. */
  async terminateInstances(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = await this.moto.forward(request, body);
    if (result.status === 200) {
      this.runs.terminatedByApi(numberedValues(params, 'InstanceId'));
    }
    return result;
  }

  /** Kills every validation script (the proxy stops). */
  stopAll(): void {
    this.runs.stopAll();
  }

  /** Kills every validation script and forgets the instances and client tokens (moto was reset). */
  clear(): void {
    this.runs.stopAll();
    this.runTokens.clear();
  }

  /** Launches in moto; a validation script in the user data starts running for each new instance. */
  private async launch(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = await this.moto.forward(request, body);
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
}
