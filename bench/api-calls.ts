/**
 * API-call benchmark: drives the shipped handler bundle through the provider framework's sequence of
 * calls against moto_server, and records the EC2 actions of each phase as the counting proxy saw them.
 */
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { median } from './stats';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest, OnEventResponse } from '../lambda/bake-image/types';
import { Prop } from '../src/private/contract';
import { type BakeImageHandler, type MotoHarness } from '../test/lambda/moto-server';

const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/BenchStack/11111111-2222-3333-4444-555555555555';
const LOGICAL_ID = 'Image1ImageBench';
/** isComplete polls that find the image pending, held by the proxy (moto's images are available at once). */
export const PENDING_POLLS = 5;

export interface Phase {
  readonly name: string;
  readonly actions: string[];
  /** Wall time of the handler call(s), in-process against moto on localhost. */
  readonly ms: number;
}

export interface ApiCallResults {
  readonly lifecycle: Phase[];
  readonly replace: Phase[];
  /** EC2 calls of each isComplete poll that found the image pending. */
  readonly pendingPollCalls: number[];
  /** Median wall time of those polls (localhost; real EC2 answers slower). */
  readonly pendingPollMedianMs: number;
  /** Problems the proxy itself reported (should be none). */
  readonly proxyErrors: string[];
}

type Props = Record<string, string>;
let requestNumber = 0;

function bakeProps(instanceId: string): Props {
  return {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:BenchStack-OnEvent',
    [Prop.INSTANCE_ID]: instanceId,
    [Prop.NAME_PREFIX]: 'bench-image',
    [Prop.DESCRIPTION]: 'Baked by the cdk-baked-image benchmark',
    [Prop.NO_REBOOT]: 'false',
    [Prop.REBAKE_TRIGGER]: '',
    [Prop.REMOVAL]: 'destroy',
    [Prop.BUILDER_AFTER_BAKE]: 'stop',
    [Prop.BAKE_TIMEOUT_SECONDS]: '3000',
  };
}

function event(requestType: OnEventRequest['RequestType'], props: Props, physicalId?: string, oldProps?: Props): OnEventRequest {
  requestNumber += 1;
  return {
    RequestType: requestType,
    RequestId: `00000000-0000-0000-0000-${String(requestNumber).padStart(12, '0')}`,
    StackId: STACK_ID,
    LogicalResourceId: LOGICAL_ID,
    ResourceType: 'Custom::BakedImage',
    ResourceProperties: props,
    ...(physicalId === undefined ? {} : { PhysicalResourceId: physicalId }),
    ...(oldProps === undefined ? {} : { OldResourceProperties: oldProps }),
  };
}

/** The isComplete request the framework builds from an event and onEvent's answer. */
function completeEvent(request: OnEventRequest, response: OnEventResponse): IsCompleteRequest {
  return { ...request, PhysicalResourceId: response.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: response.Data };
}

/** Runs one handler call with the handlers' JSON logs silenced, and records the EC2 actions it made. */
async function phase<T>(harness: MotoHarness, name: string, call: () => Promise<T>): Promise<{ phase: Phase; result: T }> {
  const from = harness.proxy.requests.length;
  const { log, warn } = console;
  console.log = () => undefined;
  console.warn = () => undefined;
  const start = process.hrtime.bigint();
  try {
    const result = await call();
    return { phase: { name, actions: harness.proxy.actions(from), ms: Number(process.hrtime.bigint() - start) / 1e6 }, result };
  } finally {
    console.log = log;
    console.warn = warn;
  }
}

function expectComplete(response: IsCompleteResponse, expected: boolean, where: string): void {
  if (response.IsComplete !== expected) {
    throw new Error(`${where}: isComplete answered ${response.IsComplete}, expected ${expected}`);
  }
}

/** Our account's image ids in moto (asked directly, not through the counting proxy). */
async function ownImageIds(harness: MotoHarness): Promise<string[]> {
  const response = await harness.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  return (response.Images ?? []).map((image) => image.ImageId ?? '').sort();
}

async function expectImages(harness: MotoHarness, expected: string[], where: string): Promise<void> {
  const actual = await ownImageIds(harness);
  if (JSON.stringify(actual) !== JSON.stringify([...expected].sort())) {
    throw new Error(`${where}: expected images ${JSON.stringify(expected)} in moto, found ${JSON.stringify(actual)}`);
  }
}

/** create -> isComplete (pending x PENDING_POLLS, then available) -> delete; replace + delete of the old image. */
export async function countApiCalls(harness: MotoHarness, handler: BakeImageHandler): Promise<ApiCallResults> {
  await harness.reset();

  // Lifecycle: Create, polls, Delete.
  const lifecycle: Phase[] = [];
  const props = bakeProps(await harness.launchBuilder());
  const create = event('Create', props);
  const created = await phase(harness, 'Create: onEvent', () => handler.onEvent(create));
  lifecycle.push(created.phase);
  const imageId = created.result.PhysicalResourceId ?? '';
  harness.proxy.holdPending(imageId, PENDING_POLLS);
  const pendingPolls: Phase[] = [];
  for (let poll = 1; poll <= PENDING_POLLS; poll++) {
    const polled = await phase(harness, `Create: isComplete poll ${poll} (pending)`, () => handler.isComplete(completeEvent(create, created.result)));
    expectComplete(polled.result, false, polled.phase.name);
    pendingPolls.push(polled.phase);
  }
  lifecycle.push(...pendingPolls);
  const available = await phase(harness, `Create: isComplete poll ${PENDING_POLLS + 1} (available)`, () => handler.isComplete(completeEvent(create, created.result)));
  expectComplete(available.result, true, available.phase.name);
  lifecycle.push(available.phase);
  const remove = event('Delete', props, imageId);
  const removed = await phase(harness, 'Delete: onEvent', () => handler.onEvent(remove));
  lifecycle.push(removed.phase);
  const removeDone = await phase(harness, 'Delete: isComplete', () => handler.isComplete(completeEvent(remove, removed.result)));
  expectComplete(removeDone.result, true, removeDone.phase.name);
  lifecycle.push(removeDone.phase);
  await expectImages(harness, [], 'after the lifecycle');

  // Replace: a new builder makes the Update bake a new image; CloudFormation then deletes the old one.
  await harness.reset();
  const replace: Phase[] = [];
  const oldProps = bakeProps(await harness.launchBuilder());
  const oldCreate = event('Create', oldProps);
  const oldCreated = await phase(harness, 'setup: Create the old image', () => handler.onEvent(oldCreate));
  await phase(harness, 'setup: isComplete', () => handler.isComplete(completeEvent(oldCreate, oldCreated.result)));
  const oldImageId = oldCreated.result.PhysicalResourceId ?? '';
  // A rebake comes minutes after the bake it replaces; moto dates images to the second, so the new one must be a
  // second younger for the Delete to tell it from a superseded image kept earlier (which would ask CloudFormation).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const newProps = bakeProps(await harness.launchBuilder());
  const update = event('Update', newProps, oldImageId, oldProps);
  const updated = await phase(harness, 'Update (new builder): onEvent', () => handler.onEvent(update));
  replace.push(updated.phase);
  if (!updated.result.PhysicalResourceId || updated.result.PhysicalResourceId === oldImageId) {
    throw new Error(`The Update did not replace the image: ${JSON.stringify(updated.result)}`);
  }
  const updateDone = await phase(harness, 'Update: isComplete (available)', () => handler.isComplete(completeEvent(update, updated.result)));
  expectComplete(updateDone.result, true, updateDone.phase.name);
  replace.push(updateDone.phase);
  const removeOld = event('Delete', oldProps, oldImageId);
  const removedOld = await phase(harness, 'Delete of the old image: onEvent', () => handler.onEvent(removeOld));
  replace.push(removedOld.phase);
  const removeOldDone = await phase(harness, 'Delete of the old image: isComplete', () => handler.isComplete(completeEvent(removeOld, removedOld.result)));
  expectComplete(removeOldDone.result, true, removeOldDone.phase.name);
  replace.push(removeOldDone.phase);
  await expectImages(harness, [updated.result.PhysicalResourceId], 'after the replacement');

  return {
    lifecycle,
    replace,
    pendingPollCalls: pendingPolls.map((poll) => poll.actions.length),
    pendingPollMedianMs: median(pendingPolls.map((poll) => poll.ms)),
    proxyErrors: harness.proxy.takeErrors(),
  };
}
