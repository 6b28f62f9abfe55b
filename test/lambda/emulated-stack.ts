/**
 * CloudFormation, as far as the bake handlers can tell: a stack deployed from templates synthesized by the real
 * construct, against moto_server through the proxy, with every handler request authorized by the IAM policy in force
 * at that moment (the handler role's policy of the template CloudFormation has applied by then).
 *
 * What it models of CloudFormation (AWS CloudFormation User Guide, "Update behaviors of stack resources", "Custom
 * resources", "Monitor the progress of a stack update"):
 * - Create: the handler role's policy first (every Custom::BakedImage depends on the role), then the builders, then the
 *   custom resources in dependency order.
 * - Update: resources are updated in dependency order, so the role's policy is replaced with the new template's
 *   before any custom resource hears of the update. New builders are created (a changed builder is replaced: a new
 *   instance), then each custom resource gets a Create (new) or an Update (properties changed; OldResourceProperties
 *   are the previous ones). Then, in UPDATE_COMPLETE_CLEANUP_IN_PROGRESS and still under the NEW policy, the cleanup
 *   Deletes: of every custom resource whose Update answered a new physical id (with its OLD properties), and of every
 *   custom resource the new template no longer has (with its old properties); replaced and removed builders are
 *   terminated.
 * - Rollback (an update that fails, here on purpose after the custom resources: the Auto Scaling group, say): every
 *   custom resource updated so far gets an Update back to its previous properties (OldResourceProperties: the failed
 *   update's). The order of the policy's rollback relative to the custom resource's is not documented, so those calls
 *   must pass under BOTH policies. Then, in UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS and under the old policy: a
 *   Delete of each physical id the rollback replaced and of each custom resource the failed update created (with the
 *   failed update's properties).
 * - Delete: the custom resources in reverse dependency order (DELETE_IN_PROGRESS), under the policy they depend on.
 * - A failed cleanup Delete is skipped by CloudFormation (the resource leaks); here it is recorded in `skippedDeletes`
 *   so that a test sees it.
 *
 * What it does not model: resources other than the builders, their security groups and subnets, KMS keys and the
 * custom resources (their physical ids are stand-ins); CloudFormation's parallelism; the provider framework's Step
 * Functions waiter (isComplete is called in a loop).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CreateSecurityGroupCommand, CreateTagsCommand, DescribeSubnetsCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { App, Stack } from 'aws-cdk-lib';
import { frameworkResponseBytes, MAX_FRAMEWORK_RESPONSE_BYTES } from './framework-response';
import { onlyHandlerRequests } from './handler-policy';
import { handlerPolicies, IamSimulator, type PolicyDocument, resolveIntrinsics, type IntrinsicEnv } from './iam-simulator';
import { MOTO_STACK_ID, MOTO_STACK_NAME } from './moto-http';
import { type BakeImageHandler, type MotoHarness, REGION } from './moto-server';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';

export const ACCOUNT = '123456789012';

/** One resource of a template. */
export interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly DependsOn?: string | string[];
}

/** A synthesized CloudFormation template (the parts the emulation reads). */
export interface StackTemplate {
  readonly Resources: Record<string, TemplateResource>;
}

/**
 * Synthesizes a stack of this account and region, as `define` builds it, and returns its template. The cloud assembly
 * goes to a temporary directory that is removed at once.
 */
export function synthesize(define: (stack: Stack) => void): StackTemplate {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'baked-image-stack-'));
  try {
    const app = new App({ outdir });
    const stack = new Stack(app, MOTO_STACK_NAME, { env: { account: ACCOUNT, region: REGION } });
    define(stack);
    const assembly = app.synth();
    return JSON.parse(fs.readFileSync(path.join(outdir, assembly.getStackByName(stack.stackName).templateFile), 'utf8')) as StackTemplate;
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** One handler request CloudFormation sent, and how it ended. */
export interface StackEvent {
  readonly phase: string;
  readonly requestType: RequestType;
  readonly logicalId: string;
  readonly physicalId?: string;
  readonly policies: string;
  readonly outcome: 'SUCCESS' | 'FAILED';
  readonly reason?: string;
}

interface CustomResourceState {
  readonly physicalId: string;
  readonly properties: Record<string, unknown>;
  readonly data: Record<string, string>;
}

interface Deployed {
  readonly template: StackTemplate;
  readonly policies: PolicyDocument[];
  /** Custom::BakedImage logical id -> what CloudFormation holds for it. */
  readonly images: Map<string, CustomResourceState>;
  /** AWS::EC2::Instance logical id -> moto instance id. */
  readonly instances: Map<string, string>;
}

/** How an update ends: `fail` makes it fail after the custom resources (rollback). */
export interface UpdateOptions {
  readonly fail?: boolean;
}

export class EmulatedStack {
  /** Every handler request, in order. */
  readonly events: StackEvent[] = [];
  /** Cleanup Deletes that failed: CloudFormation skips them, and what they should have deleted leaks. */
  readonly skippedDeletes: StackEvent[] = [];
  private deployed?: Deployed;
  private readonly securityGroups = new Map<string, string>();
  private subnetId?: string;
  /** Which policies authorize the handlers now: the new template's, the old one's, or both. */
  private policiesInForce = 'none';
  private status = 'NONE';

  constructor(private readonly harness: MotoHarness, private readonly handler: BakeImageHandler) {}

  /** The physical id of a custom resource now (the image id). */
  imageId(logicalId: string): string {
    const state = this.deployed?.images.get(logicalId);
    if (!state) {
      throw new Error(`no custom resource ${logicalId} is deployed`);
    }
    return state.physicalId;
  }

  /** The attributes of a custom resource now (what Fn::GetAtt reads). */
  attributes(logicalId: string): Record<string, string> {
    return { ...this.deployed?.images.get(logicalId)?.data };
  }

  /** The logical ids of the custom resources now. */
  imageLogicalIds(): string[] {
    return [...this.deployed?.images.keys() ?? []];
  }

  /** Creates the stack. Throws when a custom resource fails (CloudFormation would roll the create back). */
  async create(template: StackTemplate): Promise<void> {
    if (this.deployed) {
      throw new Error('the stack exists: update it');
    }
    await this.prepareNetwork(template);
    const policies = await this.policiesOf(template);
    this.authorizeWith('new', policies);
    const deployed: Deployed = { template, policies, images: new Map(), instances: new Map() };
    this.deployed = deployed;
    this.setStatus('CREATE_IN_PROGRESS');
    await this.launchBuilders(template, deployed.instances);
    for (const logicalId of customResourcesInOrder(template)) {
      const properties = this.resolve(template, logicalId, deployed);
      const result = await this.request('create', 'Create', logicalId, properties);
      if (result.outcome === 'FAILED') {
        throw new Error(`Create of ${logicalId} failed: ${result.reason}`);
      }
      deployed.images.set(logicalId, { physicalId: result.physicalId, properties, data: result.data });
      this.setStatus('CREATE_IN_PROGRESS');
    }
    this.setStatus('CREATE_COMPLETE');
  }

  /**
   * Updates the stack to `template` in CloudFormation's order (see the module comment). Returns the custom resources
   * whose Update or Create failed (the update then rolls back).
   */
  async update(template: StackTemplate, options: UpdateOptions = {}): Promise<{ readonly failed: StackEvent[] }> {
    const before = this.required();
    await this.prepareNetwork(template);
    const policies = await this.policiesOf(template);
    const after: Deployed = { template, policies, images: new Map(), instances: new Map() };
    this.setStatus('UPDATE_IN_PROGRESS');
    // The role's policy is updated first: the custom resources depend on it.
    this.authorizeWith('new', policies);
    for (const [logicalId, instanceId] of before.instances) {
      if (template.Resources[logicalId]?.Type === 'AWS::EC2::Instance') {
        after.instances.set(logicalId, instanceId);
      }
    }
    await this.launchBuilders(template, after.instances);
    this.deployed = after;

    const failed: StackEvent[] = [];
    const touched: string[] = [];
    for (const logicalId of customResourcesInOrder(template)) {
      const properties = this.resolve(template, logicalId, after);
      const old = before.images.get(logicalId);
      if (old && sameProperties(old.properties, properties)) {
        after.images.set(logicalId, old);
        continue;
      }
      const result = old
        ? await this.request('update', 'Update', logicalId, properties, { physicalId: old.physicalId, oldProperties: old.properties })
        : await this.request('update', 'Create', logicalId, properties);
      touched.push(logicalId);
      if (result.outcome === 'FAILED') {
        failed.push(this.events[this.events.length - 1]);
        if (old) {
          after.images.set(logicalId, old);
        }
        break;
      }
      // The attributes are what this request answered (a copy region dropped has no attribute any more).
      after.images.set(logicalId, { physicalId: result.physicalId, properties, data: result.data });
      this.setStatus('UPDATE_IN_PROGRESS');
    }

    if (failed.length > 0 || options.fail) {
      await this.rollback(before, after, touched);
      return { failed };
    }

    this.setStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
    for (const logicalId of [...before.images.keys()].reverse()) {
      const old = before.images.get(logicalId)!;
      const now = after.images.get(logicalId);
      if (!now || now.physicalId !== old.physicalId) {
        await this.cleanupDelete('cleanup', logicalId, old);
      }
    }
    await this.terminateGone(before.instances, after.instances);
    this.setStatus('UPDATE_COMPLETE');
    return { failed };
  }

  /** Deletes the stack: every custom resource, in reverse dependency order, under the policy they depend on. */
  async delete(): Promise<StackEvent[]> {
    const deployed = this.required();
    this.setStatus('DELETE_IN_PROGRESS');
    const failed: StackEvent[] = [];
    for (const logicalId of customResourcesInOrder(deployed.template).reverse()) {
      const state = deployed.images.get(logicalId);
      if (!state) {
        continue;
      }
      const result = await this.request('delete', 'Delete', logicalId, state.properties, { physicalId: state.physicalId });
      if (result.outcome === 'FAILED') {
        failed.push(this.events[this.events.length - 1]);
      }
    }
    await this.terminateGone(deployed.instances, new Map());
    this.deployed = undefined;
    this.harness.proxy.setAuthorizer(undefined);
    return failed;
  }

  private async rollback(before: Deployed, failedUpdate: Deployed, touched: string[]): Promise<void> {
    this.setStatus('UPDATE_ROLLBACK_IN_PROGRESS');
    // Undocumented which of the role's policy and the custom resource rolls back first: both must allow it.
    this.authorizeWith('old and new', [before.policies, failedUpdate.policies]);
    const cleanups: Array<{ logicalId: string; state: CustomResourceState }> = [];
    for (const logicalId of [...touched].reverse()) {
      const old = before.images.get(logicalId);
      const tried = failedUpdate.images.get(logicalId);
      if (!old) {
        if (tried) {
          cleanups.push({ logicalId, state: tried });
        }
        continue;
      }
      if (!tried) {
        continue;
      }
      const result = await this.request('rollback', 'Update', logicalId, old.properties, { physicalId: tried.physicalId, oldProperties: tried.properties });
      if (result.outcome === 'FAILED') {
        throw new Error(`the rollback of ${logicalId} failed (UPDATE_ROLLBACK_FAILED): ${result.reason}`);
      }
      if (result.physicalId !== tried.physicalId) {
        cleanups.push({ logicalId, state: tried });
      }
    }
    this.deployed = before;
    this.authorizeWith('old', before.policies);
    this.setStatus('UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS');
    for (const { logicalId, state } of cleanups) {
      await this.cleanupDelete('rollback cleanup', logicalId, state);
    }
    await this.terminateGone(failedUpdate.instances, before.instances);
    this.setStatus('UPDATE_ROLLBACK_COMPLETE');
  }

  private async cleanupDelete(phase: string, logicalId: string, state: CustomResourceState): Promise<void> {
    const result = await this.request(phase, 'Delete', logicalId, state.properties, { physicalId: state.physicalId });
    if (result.outcome === 'FAILED') {
      this.skippedDeletes.push(this.events[this.events.length - 1]);
    }
  }

  /**
   * One CloudFormation request to the provider: onEvent, then isComplete until it answers true (the framework's
   * waiter), as the bundled handlers answer them. Every answer must fit a custom resource response.
   */
  private async request(
    phase: string,
    requestType: RequestType,
    logicalId: string,
    properties: Record<string, unknown>,
    options: { physicalId?: string; oldProperties?: Record<string, unknown> } = {},
  ): Promise<{ outcome: 'SUCCESS' | 'FAILED'; physicalId: string; data: Record<string, string>; reason?: string }> {
    requestCount += 1;
    const event: OnEventRequest = {
      RequestType: requestType,
      RequestId: `stack-request-${String(requestCount).padStart(6, '0')}`,
      StackId: MOTO_STACK_ID,
      LogicalResourceId: logicalId,
      ResourceType: 'Custom::BakedImage',
      ResourceProperties: properties,
      PhysicalResourceId: options.physicalId,
      OldResourceProperties: options.oldProperties,
    };
    let physicalId = options.physicalId ?? '';
    let data: Record<string, string> = {};
    const record = (outcome: 'SUCCESS' | 'FAILED', error?: unknown) => {
      const reason = error === undefined ? undefined : error instanceof Error ? error.message : String(error);
      const stackEvent: StackEvent = { phase, requestType, logicalId, physicalId, policies: this.policiesInForce, outcome, reason };
      this.events.push(stackEvent);
      const bytes = frameworkResponseBytes(event, { outcome, physicalId, data, error });
      if (bytes > MAX_FRAMEWORK_RESPONSE_BYTES) {
        throw new Error(`the ${outcome} response to the ${requestType} of ${logicalId} would be ${bytes} bytes, over CloudFormation's ${MAX_FRAMEWORK_RESPONSE_BYTES}`);
      }
      return { outcome, physicalId, data, reason };
    };
    try {
      const started = await this.handler.onEvent(event);
      physicalId = started.PhysicalResourceId ?? physicalId;
      data = { ...started.Data };
      const poll: IsCompleteRequest = { ...event, PhysicalResourceId: physicalId, Data: started.Data };
      for (let attempt = 0; ; attempt++) {
        const answer = await this.handler.isComplete(poll);
        if (answer.IsComplete) {
          data = { ...data, ...answer.Data };
          return record('SUCCESS');
        }
        if (attempt >= MAX_POLLS) {
          return record('FAILED', new Error(`still not complete after ${MAX_POLLS} polls`));
        }
        await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
      }
    } catch (error) {
      return record('FAILED', error);
    }
  }

  private authorizeWith(label: string, ...sets: Array<PolicyDocument[] | PolicyDocument[][]>): void {
    const simulators = (sets.length === 1 && isListOfSets(sets[0]) ? sets[0] as PolicyDocument[][] : sets as PolicyDocument[][])
      .map((policies) => new IamSimulator(policies, { account: ACCOUNT, principalArn: `arn:aws:iam::${ACCOUNT}:role/${MOTO_STACK_NAME}-HandlerRole` }));
    this.policiesInForce = label;
    const lookup = this.harness.proxy.lookup;
    this.harness.proxy.setAuthorizer(onlyHandlerRequests(async (request) => {
      const denials: string[] = [];
      for (const simulator of simulators) {
        const decision = await simulator.authorizeRequest({ ...request, account: ACCOUNT, partition: 'aws' }, lookup);
        denials.push(...decision.denials.map((denial) => `[${label} policy, ${this.status}] ${denial}`));
      }
      return { allowed: denials.length === 0, denials };
    }));
  }

  private setStatus(status: string): void {
    this.status = status;
    const resources: Record<string, string> = {};
    for (const [logicalId, state] of this.deployed?.images ?? []) {
      resources[logicalId] = state.physicalId;
    }
    this.harness.proxy.setStack({ name: MOTO_STACK_NAME, id: MOTO_STACK_ID, status, resources });
  }

  private required(): Deployed {
    if (!this.deployed) {
      throw new Error('the stack does not exist: create it');
    }
    return this.deployed;
  }

  private async policiesOf(template: StackTemplate): Promise<PolicyDocument[]> {
    return handlerPolicies(template, this.env(template, { template, policies: [], images: new Map(), instances: new Map() }));
  }

  /** Launches, in moto, each builder of the template not launched yet, with the tags the template gives it. */
  private async launchBuilders(template: StackTemplate, instances: Map<string, string>): Promise<void> {
    const deployed: Deployed = { template, policies: [], images: new Map(), instances };
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type !== 'AWS::EC2::Instance' || instances.has(logicalId)) {
        continue;
      }
      const tags = resolveIntrinsics(resource.Properties?.Tags ?? [], this.env(template, deployed)) as Array<{ Key: string; Value: string }>;
      const instanceId = await this.harness.launchBuilder();
      if (tags.length > 0) {
        await this.harness.ec2.send(new CreateTagsCommand({ Resources: [instanceId], Tags: tags }));
      }
      instances.set(logicalId, instanceId);
    }
  }

  private async terminateGone(before: Map<string, string>, after: Map<string, string>): Promise<void> {
    const kept = new Set(after.values());
    const gone = [...before.values()].filter((instanceId) => !kept.has(instanceId));
    if (gone.length > 0) {
      await this.harness.ec2.send(new TerminateInstancesCommand({ InstanceIds: gone }));
    }
  }

  /** The custom resource's properties as CloudFormation hands them to the provider: intrinsics resolved. */
  private resolve(template: StackTemplate, logicalId: string, deployed: Deployed): Record<string, unknown> {
    return resolveIntrinsics(template.Resources[logicalId].Properties ?? {}, this.env(template, deployed)) as Record<string, unknown>;
  }

  private env(template: StackTemplate, deployed: Deployed): IntrinsicEnv {
    return {
      partition: 'aws',
      region: REGION,
      account: ACCOUNT,
      stackId: MOTO_STACK_ID,
      stackName: MOTO_STACK_NAME,
      ref: (logicalId) => this.physicalIdOf(template, deployed, logicalId),
      getAtt: (logicalId, attribute) => this.attributeOf(template, deployed, logicalId, attribute),
    };
  }

  private physicalIdOf(template: StackTemplate, deployed: Deployed, logicalId: string): string {
    const type = template.Resources[logicalId]?.Type;
    switch (type) {
      case 'AWS::EC2::Instance':
        return deployed.instances.get(logicalId) ?? `i-${logicalId.toLowerCase()}-not-launched`;
      case 'AWS::EC2::Subnet':
        return this.subnetIdSync();
      case 'Custom::BakedImage':
        return deployed.images.get(logicalId)?.physicalId ?? `${logicalId}-not-created`;
      default:
        return `${logicalId}-physical-id`;
    }
  }

  private attributeOf(template: StackTemplate, deployed: Deployed, logicalId: string, attribute: string): string {
    const type = template.Resources[logicalId]?.Type;
    if (type === 'Custom::BakedImage') {
      return deployed.images.get(logicalId)?.data[attribute] ?? `${logicalId}.${attribute}-not-created`;
    }
    if (type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId') {
      return this.securityGroups.get(logicalId) ?? `sg-${logicalId.toLowerCase()}-not-created`;
    }
    if (type === 'AWS::KMS::Key' && attribute === 'Arn') {
      return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyIdOf(logicalId)}`;
    }
    return `${logicalId}.${attribute}`;
  }

  private subnetIdSync(): string {
    return this.subnetId ?? 'subnet-not-prepared';
  }

  /** Creates in moto the security groups of the template and picks a subnet, once: what validation's properties name. */
  private async prepareNetwork(template: StackTemplate): Promise<void> {
    if (!this.subnetId) {
      const subnets = await this.harness.ec2.send(new DescribeSubnetsCommand({}));
      this.subnetId = subnets.Subnets?.[0]?.SubnetId;
    }
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type === 'AWS::EC2::SecurityGroup' && !this.securityGroups.has(logicalId)) {
        const group = await this.harness.ec2.send(new CreateSecurityGroupCommand({ GroupName: `${logicalId}-${Date.now()}`, Description: logicalId }));
        this.securityGroups.set(logicalId, group.GroupId ?? '');
      }
    }
  }
}

const MAX_POLLS = 200;
const POLL_INTERVAL_MS = 100;
let requestCount = 0;

function isListOfSets(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && Array.isArray(value[0]);
}

/** A stable key id for a key's logical id. */
function keyIdOf(logicalId: string): string {
  const hex = Buffer.from(logicalId).toString('hex').padEnd(32, '0').slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function sameProperties(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]));
  }
  return value;
}

/** The template's custom resources, each after those it references (Ref, Fn::GetAtt, DependsOn). */
export function customResourcesInOrder(template: StackTemplate): string[] {
  const custom = Object.keys(template.Resources).filter((id) => template.Resources[id].Type === 'Custom::BakedImage');
  const ordered: string[] = [];
  const visiting = new Set<string>();
  const visit = (id: string) => {
    if (ordered.includes(id) || visiting.has(id)) {
      return;
    }
    visiting.add(id);
    const resource = template.Resources[id];
    const dependsOn = [resource.DependsOn ?? []].flat();
    for (const other of custom) {
      const referenced = dependsOn.includes(other) || references(resource.Properties, other) || dependsOnThroughBuilder(template, resource, other);
      if (other !== id && referenced) {
        visit(other);
      }
    }
    ordered.push(id);
  };
  custom.forEach(visit);
  return ordered;
}

/** A layered image: its builder's properties reference another image's custom resource. */
function dependsOnThroughBuilder(template: StackTemplate, resource: TemplateResource, other: string): boolean {
  const instanceRef = (resource.Properties?.InstanceId as { Ref?: string } | undefined)?.Ref;
  const builder = instanceRef ? template.Resources[instanceRef] : undefined;
  return builder ? references(builder.Properties, other) : false;
}

function references(value: unknown, logicalId: string): boolean {
  return JSON.stringify(value ?? {}).includes(`"${logicalId}"`);
}
