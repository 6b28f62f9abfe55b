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
 *
 * This file is the order of the requests; stack-template.ts synthesizes the templates and orders their custom
 * resources, stack-resources.ts keeps the stack's builders and network in moto and resolves intrinsics.
 */
import { frameworkResponseBytes, MAX_FRAMEWORK_RESPONSE_BYTES } from './framework-response';
import { handlerRoleSimulator, onlyHandlerRequests } from './handler-policy';
import type { PolicyDocument } from './iam-simulator';
import { MOTO_STACK_ID, MOTO_STACK_NAME } from './moto-http';
import type { BakeImageHandler, MotoHarness } from './moto-server';
import { type CustomResourceState, type DeployedResources, StackResources } from './stack-resources';
import { ACCOUNT, customResourcesInOrder, sameProperties, type StackTemplate } from './stack-template';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';

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

interface Deployed extends DeployedResources {
  readonly template: StackTemplate;
  readonly policies: PolicyDocument[];
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
  private readonly resources: StackResources;
  /** Which policies authorize the handlers now: the new template's, the old one's, or both. */
  private policiesInForce = 'none';
  private status = 'NONE';

  constructor(private readonly harness: MotoHarness, private readonly handler: BakeImageHandler) {
    this.resources = new StackResources(harness);
  }

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
    await this.resources.prepareNetwork(template);
    const policies = await this.resources.policiesOf(template);
    this.authorizeWith('new', policies);
    const deployed: Deployed = { template, policies, images: new Map(), instances: new Map() };
    this.deployed = deployed;
    this.setStatus('CREATE_IN_PROGRESS');
    await this.resources.launchBuilders(template, deployed.instances);
    for (const logicalId of customResourcesInOrder(template)) {
      const properties = this.resources.resolve(template, logicalId, deployed);
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
    await this.resources.prepareNetwork(template);
    const policies = await this.resources.policiesOf(template);
    const after: Deployed = { template, policies, images: new Map(), instances: new Map() };
    this.setStatus('UPDATE_IN_PROGRESS');
    // The role's policy is updated first: the custom resources depend on it.
    this.authorizeWith('new', policies);
    for (const [logicalId, instanceId] of before.instances) {
      if (template.Resources[logicalId]?.Type === 'AWS::EC2::Instance') {
        after.instances.set(logicalId, instanceId);
      }
    }
    await this.resources.launchBuilders(template, after.instances);
    this.deployed = after;

    const failed: StackEvent[] = [];
    const touched: string[] = [];
    for (const logicalId of customResourcesInOrder(template)) {
      const properties = this.resources.resolve(template, logicalId, after);
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
    await this.resources.terminateGone(before.instances, after.instances);
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
    await this.resources.terminateGone(deployed.instances, new Map());
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
    await this.resources.terminateGone(failedUpdate.instances, before.instances);
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
      .map((policies) => handlerRoleSimulator(policies));
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

}

const MAX_POLLS = 200;
const POLL_INTERVAL_MS = 100;
let requestCount = 0;

function isListOfSets(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0 && Array.isArray(value[0]);
}
