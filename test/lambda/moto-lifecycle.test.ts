/**
 * The shipped bake-image handler bundle driven through a whole custom resource lifecycle against
 * moto_server (a real EC2 API emulator), asserting the state in moto after every step.
 *
 * Requires moto_server on PATH and the bundle (npx projen bundle). See moto-server.ts for the harness
 * and the EC2 behaviours it emulates on top of moto.
 */
import {
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  type Image,
  RegisterImageCommand,
  type Snapshot,
  type Tag as Ec2Tag,
} from '@aws-sdk/client-ec2';
import type { BakeImageHandler, MotoHarness } from './moto-server';
import { useMotoSuite } from './moto-suite';
import type { IsCompleteRequest, OnEventRequest, OnEventResponse } from '../../lambda/bake-image/types';
import { Attr, MANAGED_BY_VALUE, Prop, Tag } from '../../src/private/contract';

jest.setTimeout(60_000);

const STACK_NAME = 'MotoStack';
const STACK_ID = `arn:aws:cloudformation:us-east-1:123456789012:stack/${STACK_NAME}/11111111-2222-3333-4444-555555555555`;
const LOGICAL_ID = 'BakedImageBake';
const NAME_PREFIX = 'moto-baked';
const DESCRIPTION = 'Baked by the moto lifecycle test';
const NAME_PATTERN = new RegExp(`^${NAME_PREFIX}-[0-9a-f]{16}$`);
const NOT_AN_IMAGE = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';

type Props = Record<string, string>;

const suite = useMotoSuite({ stackId: STACK_ID });
let harness: MotoHarness;
let handler: BakeImageHandler;
let warnSpy: jest.SpyInstance;
let requestNumber = 0;

beforeAll(() => {
  harness = suite.harness();
  handler = suite.handler();
});

beforeEach(() => {
  warnSpy = suite.warnings();
});

// -------------------------------------------------------------------------------------------------------
// Events as the CDK provider framework sends them
// -------------------------------------------------------------------------------------------------------

function bakeProps(instanceId: string, overrides: Props = {}): Props {
  return {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:MotoStack-BakeProviderOnEvent',
    [Prop.INSTANCE_ID]: instanceId,
    [Prop.NAME_PREFIX]: NAME_PREFIX,
    [Prop.DESCRIPTION]: DESCRIPTION,
    [Prop.NO_REBOOT]: 'false',
    [Prop.REMOVAL]: 'destroy',
    [Prop.BUILDER_AFTER_BAKE]: 'stop',
    ...overrides,
  };
}

function baseEvent(): Pick<OnEventRequest, 'RequestId' | 'StackId' | 'LogicalResourceId' | 'ResourceType'> {
  requestNumber += 1;
  return {
    RequestId: `00000000-0000-0000-0000-${String(requestNumber).padStart(12, '0')}`,
    StackId: STACK_ID,
    LogicalResourceId: LOGICAL_ID,
    ResourceType: 'Custom::BakedImage',
  };
}

function createEvent(props: Props): OnEventRequest {
  return { ...baseEvent(), RequestType: 'Create', ResourceProperties: props };
}

function updateEvent(physicalId: string, props: Props, oldProps: Props): OnEventRequest {
  return { ...baseEvent(), RequestType: 'Update', PhysicalResourceId: physicalId, ResourceProperties: props, OldResourceProperties: oldProps };
}

function deleteEvent(physicalId: string, props: Props): OnEventRequest {
  return { ...baseEvent(), RequestType: 'Delete', PhysicalResourceId: physicalId, ResourceProperties: props };
}

/** The isComplete request the framework builds from an event and onEvent's answer. */
function completeEvent(event: OnEventRequest, response: OnEventResponse): IsCompleteRequest {
  return { ...event, PhysicalResourceId: response.PhysicalResourceId ?? event.PhysicalResourceId ?? '', Data: response.Data };
}

/** ISO time `seconds` ago, as onEvent records Attr.REQUEST_STARTED_AT. */
function secondsAgo(seconds: number): string {
  return new Date(Date.now() - seconds * 1000).toISOString();
}

/** The isComplete request of `event` as if onEvent had started it `seconds` ago (Data.RequestStartedAt backdated). */
function startedAgo(request: IsCompleteRequest, seconds: number): IsCompleteRequest {
  return { ...request, Data: { ...request.Data, [Attr.REQUEST_STARTED_AT]: secondsAgo(seconds) } };
}

/** Asserts that onEvent recorded when it started: an ISO time within the last minute, not in the future. */
function expectFreshStart(data: Record<string, string> | undefined): number {
  const startedAt = data?.[Attr.REQUEST_STARTED_AT] ?? '';
  expect(startedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const started = Date.parse(startedAt);
  expect(Number.isNaN(started)).toBe(false);
  expect(started).toBeLessThanOrEqual(Date.now());
  expect(Date.now() - started).toBeLessThan(60_000);
  return started;
}

/** onEvent, then isComplete until it answers true (moto's images are available at once). */
async function runToCompletion(event: OnEventRequest): Promise<string> {
  const response = await handler.onEvent(event);
  const physicalId = response.PhysicalResourceId ?? event.PhysicalResourceId ?? '';
  for (let poll = 0; poll < 5; poll++) {
    const result = await handler.isComplete(completeEvent(event, response));
    if (result.IsComplete) {
      return physicalId;
    }
  }
  throw new Error(`isComplete never answered true for ${physicalId}`);
}

// -------------------------------------------------------------------------------------------------------
// State in moto (asked directly, not through the proxy)
// -------------------------------------------------------------------------------------------------------

async function imageById(imageId: string): Promise<Image | undefined> {
  try {
    const response = await harness.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return response.Images?.find((image) => image.ImageId === imageId);
  } catch (error) {
    if ((error as { name?: string }).name === 'InvalidAMIID.NotFound') {
      return undefined;
    }
    throw error;
  }
}

async function existingImage(imageId: string): Promise<Image> {
  const image = await imageById(imageId);
  if (!image) {
    throw new Error(`image ${imageId} does not exist in moto`);
  }
  return image;
}

/** Our account's images, sorted by id. */
async function ownImageIds(): Promise<string[]> {
  const response = await harness.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  return (response.Images ?? []).map((image) => image.ImageId ?? '').sort();
}

async function imagesNamed(name: string): Promise<Image[]> {
  const response = await harness.ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
  return response.Images ?? [];
}

async function snapshotById(snapshotId: string): Promise<Snapshot | undefined> {
  try {
    const response = await harness.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    return response.Snapshots?.find((snapshot) => snapshot.SnapshotId === snapshotId);
  } catch (error) {
    if ((error as { name?: string }).name === 'InvalidSnapshot.NotFound') {
      return undefined;
    }
    throw error;
  }
}

function snapshotIdsOf(image: Image): string[] {
  return (image.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
}

async function onlySnapshotOf(imageId: string): Promise<string> {
  const snapshots = snapshotIdsOf(await existingImage(imageId));
  expect(snapshots).toHaveLength(1);
  return snapshots[0];
}

async function instanceState(instanceId: string): Promise<string | undefined> {
  const response = await harness.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return response.Reservations?.[0]?.Instances?.[0]?.State?.Name;
}

function tagMap(tags: Ec2Tag[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
}

function expectedTags(name: string): Record<string, unknown> {
  return {
    [Tag.BAKED_AT]: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    Name: name,
    [Tag.MANAGED_BY]: MANAGED_BY_VALUE,
    [Tag.STACK_NAME]: 'MotoStack',
    [Tag.STACK_ID]: STACK_ID,
    [Tag.LOGICAL_ID]: LOGICAL_ID,
    [Tag.IMAGE_NAME]: name,
  };
}

interface ImageRecord {
  readonly imageId?: string;
  readonly name?: string;
  readonly state?: string;
  readonly tags: Record<string, string>;
  /** The image's snapshots; `tags` undefined when the snapshot is gone. */
  readonly snapshots: Array<{ id: string; tags?: Record<string, string> }>;
}

/** Everything about our account's images and their snapshots that a handler could change, sorted by image id. */
async function ownState(): Promise<ImageRecord[]> {
  const response = await harness.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  const images = (response.Images ?? []).sort((a, b) => (a.ImageId ?? '').localeCompare(b.ImageId ?? ''));
  return Promise.all(images.map(async (image) => ({
    imageId: image.ImageId,
    name: image.Name,
    state: image.State,
    tags: tagMap(image.Tags),
    snapshots: await Promise.all(snapshotIdsOf(image).map(async (id) => {
      const snapshot = await snapshotById(id);
      return { id, tags: snapshot ? tagMap(snapshot.Tags) : undefined };
    })),
  })));
}

function warnings(): string[] {
  return warnSpy.mock.calls.map((call) => String(call[0]));
}

// -------------------------------------------------------------------------------------------------------
// The harness itself: the EC2 behaviours the tests below rely on
// -------------------------------------------------------------------------------------------------------

describe('the moto harness', () => {
  test('the proxy rejects a second CreateImage with a name already in use, as EC2 does', async () => {
    const builder = await harness.launchBuilder();
    const first = await harness.ec2ViaProxy.send(new CreateImageCommand({ InstanceId: builder, Name: 'harness-duplicate' }));

    await expect(harness.ec2ViaProxy.send(new CreateImageCommand({ InstanceId: builder, Name: 'harness-duplicate' })))
      .rejects.toMatchObject({ name: 'InvalidAMIName.Duplicate', message: `AMI name harness-duplicate is already in use by AMI ${first.ImageId}` });
    expect((await imagesNamed('harness-duplicate')).map((image) => image.ImageId)).toEqual([first.ImageId]);
  });

  test('the proxy puts the snapshot tags of CreateImage on the new snapshot and the image tags on the image', async () => {
    const builder = await harness.launchBuilder();
    const created = await harness.ec2ViaProxy.send(new CreateImageCommand({
      InstanceId: builder,
      Name: 'harness-tags',
      TagSpecifications: [
        { ResourceType: 'image', Tags: [{ Key: 'kind', Value: 'image' }] },
        { ResourceType: 'snapshot', Tags: [{ Key: 'kind', Value: 'snapshot' }, { Key: 'extra', Value: 'yes' }] },
      ],
    }));

    const image = await existingImage(created.ImageId ?? '');
    expect(tagMap(image.Tags)).toEqual({ kind: 'image' });
    const snapshot = await snapshotById(await onlySnapshotOf(image.ImageId ?? ''));
    expect(tagMap(snapshot?.Tags)).toEqual({ kind: 'snapshot', extra: 'yes' });
  });

  test('the proxy refuses to delete a snapshot that a registered image still uses, and allows it once that image is gone', async () => {
    const builder = await harness.launchBuilder();
    const created = await harness.ec2.send(new CreateImageCommand({ InstanceId: builder, Name: 'harness-shared' }));
    const snapshotId = await onlySnapshotOf(created.ImageId ?? '');
    const registered = await harness.ec2ViaProxy.send(new RegisterImageCommand({
      Name: 'harness-shared-copy',
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snapshotId } }],
    }));
    await harness.ec2.send(new DeregisterImageCommand({ ImageId: created.ImageId }));

    await expect(harness.ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })))
      .rejects.toMatchObject({ name: 'InvalidSnapshot.InUse' });
    expect(await snapshotById(snapshotId)).toBeDefined();

    await harness.ec2.send(new DeregisterImageCommand({ ImageId: registered.ImageId }));
    await harness.ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    expect(await snapshotById(snapshotId)).toBeUndefined();
  });
});

// -------------------------------------------------------------------------------------------------------
// The handlers
// -------------------------------------------------------------------------------------------------------

describe('Create', () => {
  test('bakes a tagged image from the builder, reports it available and then stops the builder', async () => {
    const builder = await harness.launchBuilder();
    const event = createEvent(bakeProps(builder));

    const response = await handler.onEvent(event);

    const imageId = response.PhysicalResourceId ?? '';
    expect(imageId).toMatch(/^ami-[0-9a-f]+$/);
    const image = await existingImage(imageId);
    expect(image.Name).toMatch(NAME_PATTERN);
    expect(response.Data).toEqual({ [Attr.REQUEST_STARTED_AT]: expect.any(String), [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: image.Name });
    expectFreshStart(response.Data);
    expect(image.Description).toBe(DESCRIPTION);
    expect(image.SourceInstanceId).toBe(builder);
    expect(tagMap(image.Tags)).toEqual(expectedTags(image.Name ?? ''));
    const snapshot = await snapshotById(await onlySnapshotOf(imageId));
    expect(tagMap(snapshot?.Tags)).toEqual(expectedTags(image.Name ?? ''));
    expect(await ownImageIds()).toEqual([imageId]);
    // The builder is left alone until the image is available.
    expect(await instanceState(builder)).toBe('running');

    const result = await handler.isComplete(completeEvent(event, response));

    expect(result).toEqual({ IsComplete: true, Data: { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: image.Name } });
    expect(['stopping', 'stopped']).toContain(await instanceState(builder));
    expect(await ownImageIds()).toEqual([imageId]);
  });

  test.each([
    ['terminate', ['shutting-down', 'terminated']],
    ['keep-running', ['running']],
  ])('with BuilderAfterBake %s leaves the builder %j once the image is available', async (mode, states) => {
    const builder = await harness.launchBuilder();
    const event = createEvent(bakeProps(builder, { [Prop.BUILDER_AFTER_BAKE]: mode }));
    const response = await handler.onEvent(event);
    expect(await instanceState(builder)).toBe('running');

    await expect(handler.isComplete(completeEvent(event, response))).resolves.toMatchObject({ IsComplete: true });

    expect(states).toContain(await instanceState(builder));
    await existingImage(response.PhysicalResourceId ?? '');
  });

  test('polls with one DescribeImages per isComplete while the image is pending and settles the builder only when it is available', async () => {
    const builder = await harness.launchBuilder();
    const event = createEvent(bakeProps(builder));
    const response = await handler.onEvent(event);
    const imageId = response.PhysicalResourceId ?? '';
    harness.proxy.holdPending(imageId, 2);

    const answers: boolean[] = [];
    const callsPerPoll: string[][] = [];
    for (let poll = 0; poll < 3; poll++) {
      const before = harness.proxy.requests.length;
      answers.push((await handler.isComplete(completeEvent(event, response))).IsComplete);
      callsPerPoll.push(harness.proxy.actions(before));
      if (poll < 2) {
        expect(await instanceState(builder)).toBe('running');
      }
    }

    expect(answers).toEqual([false, false, true]);
    expect(callsPerPoll).toEqual([['DescribeImages'], ['DescribeImages'], ['DescribeImages', 'StopInstances']]);
    expect(['stopping', 'stopped']).toContain(await instanceState(builder));
  });

  test('a retried Create returns the same image and leaves exactly one image with that name', async () => {
    const builder = await harness.launchBuilder();
    const event = createEvent(bakeProps(builder));

    const first = await handler.onEvent(event);
    const second = await handler.onEvent(event);

    expect(second.PhysicalResourceId).toBe(first.PhysicalResourceId);
    // Each invocation records when it started; the image and its name are the same.
    expect(second.Data).toEqual({ ...first.Data, [Attr.REQUEST_STARTED_AT]: expect.any(String) });
    expect(first.Data).toEqual({
      [Attr.REQUEST_STARTED_AT]: expect.any(String),
      [Attr.IMAGE_ID]: first.PhysicalResourceId,
      [Attr.IMAGE_NAME]: expect.stringMatching(NAME_PATTERN),
    });
    expect(expectFreshStart(second.Data)).toBeGreaterThanOrEqual(expectFreshStart(first.Data));
    expect(harness.proxy.count('CreateImage')).toBe(1);
    expect((await imagesNamed(first.Data?.[Attr.IMAGE_NAME] ?? '')).map((image) => image.ImageId)).toEqual([first.PhysicalResourceId]);
    expect(await ownImageIds()).toEqual([first.PhysicalResourceId]);
  });

  test('two concurrent invocations of the same Create race to CreateImage and both end with the one image', async () => {
    const builder = await harness.launchBuilder();
    const event = createEvent(bakeProps(builder));
    harness.proxy.gate('CreateImage', 2);

    const [first, second] = await Promise.all([handler.onEvent(event), handler.onEvent(event)]);

    expect(second.PhysicalResourceId).toBe(first.PhysicalResourceId);
    const createImages = harness.proxy.requests.filter((request) => request.action === 'CreateImage');
    expect(createImages.map((request) => request.errorCode ?? request.status).sort()).toEqual([200, 'InvalidAMIName.Duplicate']);
    expect(await ownImageIds()).toEqual([first.PhysicalResourceId]);
  });
});

describe('Update', () => {
  test('a new builder replaces the image; the Delete of the old image that follows removes it and its snapshot only', async () => {
    const oldProps = bakeProps(await harness.launchBuilder());
    const oldImageId = await runToCompletion(createEvent(oldProps));
    const oldSnapshotId = await onlySnapshotOf(oldImageId);
    const newProps = bakeProps(await harness.launchBuilder());

    const update = updateEvent(oldImageId, newProps, oldProps);
    const response = await handler.onEvent(update);

    const newImageId = response.PhysicalResourceId ?? '';
    expect(newImageId).toMatch(/^ami-[0-9a-f]+$/);
    expect(newImageId).not.toBe(oldImageId);
    expect(await ownImageIds()).toEqual([oldImageId, newImageId].sort());
    const newImage = await existingImage(newImageId);
    const oldImage = await existingImage(oldImageId);
    expect(newImage.Name).toMatch(NAME_PATTERN);
    expect(newImage.Name).not.toBe(oldImage.Name);
    expect(newImage.SourceInstanceId).toBe(newProps[Prop.INSTANCE_ID]);
    await expect(handler.isComplete(completeEvent(update, response))).resolves.toEqual({
      IsComplete: true,
      Data: { [Attr.IMAGE_ID]: newImageId, [Attr.IMAGE_NAME]: newImage.Name },
    });
    // CloudFormation deletes the old image only after the whole update succeeded.
    expect(await snapshotById(oldSnapshotId)).toBeDefined();
    const newState = (await ownState()).filter((entry) => entry.imageId === newImageId);
    // The Delete looks for the resource's own superseded images and asks CloudFormation which image is current.
    harness.proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: newImageId } });

    const removal = deleteEvent(oldImageId, oldProps);
    const removed = await handler.onEvent(removal);
    expect(removed).toEqual({ PhysicalResourceId: oldImageId, Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) } });
    expectFreshStart(removed.Data);
    await expect(handler.isComplete(completeEvent(removal, removed))).resolves.toEqual({ IsComplete: true });

    expect(await imageById(oldImageId)).toBeUndefined();
    expect(await snapshotById(oldSnapshotId)).toBeUndefined();
    expect(await ownState()).toEqual(newState);
    expect(newState[0].snapshots[0].tags).toEqual(expectedTags(newImage.Name ?? ''));
  });

  test.each([
    [Prop.BUILDER_AFTER_BAKE, 'terminate'],
    [Prop.REMOVAL, 'retain'],
    [Prop.BAKE_TIMEOUT_SECONDS, '3600'],
  ])('changing only %s to %s keeps the image', async (prop, value) => {
    const oldProps = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(oldProps));
    const before = await ownState();
    const newProps = { ...oldProps, [prop]: value };
    harness.proxy.clearRequests();

    const update = updateEvent(imageId, newProps, oldProps);
    const response = await handler.onEvent(update);

    expect(response).toEqual({ PhysicalResourceId: imageId, Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) } });
    expectFreshStart(response.Data);
    expect(harness.proxy.count('CreateImage')).toBe(0);
    expect(await ownState()).toEqual(before);
    await expect(handler.isComplete(completeEvent(update, response))).resolves.toMatchObject({
      IsComplete: true,
      Data: { [Attr.IMAGE_ID]: imageId },
    });
    expect(await ownState()).toEqual(before);
  });

  test('changing BuilderAfterBake to terminate terminates the builder once the update completes', async () => {
    const oldProps = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(oldProps));
    expect(await instanceState(oldProps[Prop.INSTANCE_ID])).toBe('stopped');

    await runToCompletion(updateEvent(imageId, { ...oldProps, [Prop.BUILDER_AFTER_BAKE]: 'terminate' }, oldProps));

    expect(['shutting-down', 'terminated']).toContain(await instanceState(oldProps[Prop.INSTANCE_ID]));
    expect(await ownImageIds()).toEqual([imageId]);
  });

  test('an Update that asks to stop a builder an earlier bake terminated completes and leaves it terminated', async () => {
    const oldProps = bakeProps(await harness.launchBuilder(), { [Prop.BUILDER_AFTER_BAKE]: 'terminate' });
    const imageId = await runToCompletion(createEvent(oldProps));
    expect(await instanceState(oldProps[Prop.INSTANCE_ID])).toBe('terminated');
    harness.proxy.clearRequests();

    const update = updateEvent(imageId, { ...oldProps, [Prop.BUILDER_AFTER_BAKE]: 'stop' }, oldProps);
    const response = await handler.onEvent(update);
    await expect(handler.isComplete(completeEvent(update, response))).resolves.toMatchObject({
      IsComplete: true,
      Data: { [Attr.IMAGE_ID]: imageId },
    });

    expect(response.PhysicalResourceId).toBe(imageId);
    expect(harness.proxy.requests.filter((request) => request.action === 'StopInstances').map((request) => request.errorCode))
      .toEqual(['IncorrectInstanceState']);
    expect(await instanceState(oldProps[Prop.INSTANCE_ID])).toBe('terminated');
    expect(await ownImageIds()).toEqual([imageId]);
  });

  test('a Removal changed to retain by an Update is honoured by the Delete that follows', async () => {
    const oldProps = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(oldProps));
    const retainProps = { ...oldProps, [Prop.REMOVAL]: 'retain' };
    await runToCompletion(updateEvent(imageId, retainProps, oldProps));
    const before = await ownState();

    await expect(handler.onEvent(deleteEvent(imageId, retainProps))).resolves.toEqual({ PhysicalResourceId: imageId });

    expect(await ownState()).toEqual(before);
    expect(before.map((entry) => entry.imageId)).toEqual([imageId]);
  });

  test('the rollback of a replacement returns the old image instead of baking a third one', async () => {
    const oldProps = bakeProps(await harness.launchBuilder());
    const oldImageId = await runToCompletion(createEvent(oldProps));
    const newProps = bakeProps(await harness.launchBuilder());
    const newImageId = await runToCompletion(updateEvent(oldImageId, newProps, oldProps));
    const before = await ownState();
    expect(before.map((entry) => entry.imageId)).toEqual([oldImageId, newImageId].sort());
    harness.proxy.clearRequests();

    // The stack update failed later on: CloudFormation asks for the old properties again.
    const rollback = updateEvent(newImageId, oldProps, newProps);
    const response = await handler.onEvent(rollback);

    expect(response.PhysicalResourceId).toBe(oldImageId);
    expect(response.Data?.[Attr.IMAGE_ID]).toBe(oldImageId);
    expect(harness.proxy.count('CreateImage')).toBe(0);
    expect(await ownState()).toEqual(before);
    await expect(handler.isComplete(completeEvent(rollback, response))).resolves.toMatchObject({
      IsComplete: true,
      Data: { [Attr.IMAGE_ID]: oldImageId },
    });

    // ... and then deletes the image of the failed update.
    const oldState = before.filter((entry) => entry.imageId === oldImageId);
    harness.proxy.setStack({
      name: STACK_NAME, id: STACK_ID, status: 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: oldImageId },
    });
    await expect(handler.onEvent(deleteEvent(newImageId, newProps))).resolves.toEqual({
      PhysicalResourceId: newImageId,
      Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) },
    });
    expect(await ownState()).toEqual(oldState);
    expect(await snapshotById(before.find((entry) => entry.imageId === newImageId)?.snapshots[0].id ?? '')).toBeUndefined();
  });
});

describe('Delete', () => {
  test('deregisters the image and deletes its snapshot; a repeated Delete succeeds and changes nothing', async () => {
    const props = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(props));
    const snapshotId = await onlySnapshotOf(imageId);
    // An unrelated image of the same account, which must survive.
    const other = await harness.ec2.send(new CreateImageCommand({ InstanceId: await harness.launchBuilder(), Name: 'unrelated' }));
    const otherState = (await ownState()).filter((entry) => entry.imageId === other.ImageId);
    expect(otherState).toHaveLength(1);

    const event = deleteEvent(imageId, props);
    const response = await handler.onEvent(event);
    expect(response).toEqual({ PhysicalResourceId: imageId, Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) } });
    expectFreshStart(response.Data);
    await expect(handler.isComplete(completeEvent(event, response))).resolves.toEqual({ IsComplete: true });

    expect(await imageById(imageId)).toBeUndefined();
    expect(await snapshotById(snapshotId)).toBeUndefined();
    expect(await ownState()).toEqual(otherState);
    expect(harness.proxy.count('DeregisterImage')).toBe(1);
    expect(harness.proxy.requests.filter((request) => request.action === 'DeregisterImage')
      .map((request) => [request.params.get('ImageId'), request.params.get('DeleteAssociatedSnapshots')])).toEqual([[imageId, 'true']]);
    expect(harness.proxy.count('DeleteSnapshot')).toBe(1);
    harness.proxy.clearRequests();

    await expect(handler.onEvent(deleteEvent(imageId, props))).resolves.toEqual({
      PhysicalResourceId: imageId,
      Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) },
    });

    expect(await ownState()).toEqual(otherState);
    // The image's id is still tried (a new image may not be visible yet): EC2 answers that it was deregistered.
    expect(harness.proxy.requests.filter((request) => request.action === 'DeregisterImage')
      .map((request) => [request.params.get('ImageId'), request.errorCode])).toEqual([[imageId, 'InvalidAMIID.Unavailable']]);
    expect(harness.proxy.count('DeleteSnapshot')).toBe(0);
  });

  test('a Delete repeated after the image was deregistered still finds and deletes its tagged snapshot', async () => {
    const props = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(props));
    const snapshotId = await onlySnapshotOf(imageId);
    // The first Delete got as far as DeregisterImage before it died.
    await harness.ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
    expect(await snapshotById(snapshotId)).toBeDefined();

    await expect(handler.onEvent(deleteEvent(imageId, props))).resolves.toEqual({
      PhysicalResourceId: imageId,
      Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) },
    });

    expect(await snapshotById(snapshotId)).toBeUndefined();
    expect(await ownImageIds()).toEqual([]);
  });

  test('with Removal retain keeps the image and its snapshot', async () => {
    const props = bakeProps(await harness.launchBuilder(), { [Prop.REMOVAL]: 'retain' });
    const imageId = await runToCompletion(createEvent(props));
    const before = await ownState();
    harness.proxy.clearRequests();

    await expect(handler.onEvent(deleteEvent(imageId, props))).resolves.toEqual({ PhysicalResourceId: imageId });

    expect(await ownState()).toEqual(before);
    expect(before.map((entry) => entry.imageId)).toEqual([imageId]);
    expect(harness.proxy.actions()).toEqual([]);
  });

  test('a snapshot another image still uses: the Delete retries it while in use, fails naming it past the deadline, and completes once it is free', async () => {
    const props = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(props));
    const snapshotId = await onlySnapshotOf(imageId);
    const copy = await harness.ec2ViaProxy.send(new RegisterImageCommand({
      Name: 'registered-from-the-baked-snapshot',
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snapshotId } }],
    }));
    const copyState = (await ownState()).filter((entry) => entry.imageId === copy.ImageId);
    const snapshotBefore = await snapshotById(snapshotId);
    harness.proxy.clearRequests();

    const event = deleteEvent(imageId, props);
    const response = await handler.onEvent(event);

    // The snapshot is not kept silently: onEvent hands it to isComplete.
    expect(response).toEqual({
      PhysicalResourceId: imageId,
      Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String), [Attr.SNAPSHOTS_IN_USE]: `us-east-1/${snapshotId}` },
    });
    expectFreshStart(response.Data);
    expect(await imageById(imageId)).toBeUndefined();
    expect(await snapshotById(snapshotId)).toEqual(snapshotBefore);
    expect(await ownState()).toEqual(copyState);
    expect(harness.proxy.requests.filter((request) => request.action === 'DeregisterImage')
      .map((request) => [request.params.get('ImageId'), request.params.get('DeleteAssociatedSnapshots')])).toEqual([[imageId, 'true']]);
    expect(harness.proxy.requests.filter((request) => request.action === 'DeleteSnapshot').map((request) => request.errorCode))
      .toEqual(['InvalidSnapshot.InUse']);
    harness.proxy.clearRequests();

    // Pending while the snapshot is in use, within the deadline.
    const poll = completeEvent(event, response);
    await expect(handler.isComplete(poll)).resolves.toEqual({ IsComplete: false });
    await expect(handler.isComplete(startedAgo(poll, 590))).resolves.toEqual({ IsComplete: false });
    expect(harness.proxy.requests.filter((request) => request.action === 'DeleteSnapshot')
      .map((request) => [request.params.get('SnapshotId'), request.errorCode])).toEqual([
      [snapshotId, 'InvalidSnapshot.InUse'],
      [snapshotId, 'InvalidSnapshot.InUse'],
    ]);
    expect(await snapshotById(snapshotId)).toEqual(snapshotBefore);

    // Past the deadline it fails naming the snapshot and the image.
    const failure = await handler.isComplete(startedAgo(poll, 700)).then(() => undefined, (error: Error) => error);
    expect(failure).toBeInstanceOf(Error);
    expect(failure?.message).toMatch(new RegExp(
      `^Snapshots us-east-1/${snapshotId} of image ${imageId} are still in use \\d+ s after their image was deregistered`,
    ));
    expect(failure?.stack).toBe('');
    expect(await snapshotById(snapshotId)).toEqual(snapshotBefore);
    expect(await ownState()).toEqual(copyState);

    // Once the other image is gone, the retry deletes the snapshot and completes.
    await harness.ec2.send(new DeregisterImageCommand({ ImageId: copy.ImageId }));
    await expect(handler.isComplete(poll)).resolves.toEqual({ IsComplete: true });
    expect(await snapshotById(snapshotId)).toBeUndefined();
    expect(await ownImageIds()).toEqual([]);
    expect(warnings().filter((line) => line.includes(snapshotId))).toEqual([]);
  });

  test('of a physical id that is not an image succeeds without an EC2 call', async () => {
    const props = bakeProps(await harness.launchBuilder());
    const imageId = await runToCompletion(createEvent(props));
    const before = await ownState();
    harness.proxy.clearRequests();

    await expect(handler.onEvent(deleteEvent(NOT_AN_IMAGE, props))).resolves.toEqual({ PhysicalResourceId: NOT_AN_IMAGE });

    expect(harness.proxy.actions()).toEqual([]);
    expect(await ownState()).toEqual(before);
    expect(before.map((entry) => entry.imageId)).toEqual([imageId]);
  });

  test.each([
    ['no tags', []],
    ['another logical id', [{ Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE }, { Key: Tag.STACK_ID, Value: STACK_ID }, { Key: Tag.LOGICAL_ID, Value: 'OtherBake' }]],
    ['another stack', [
      { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
      { Key: Tag.STACK_ID, Value: STACK_ID.replace('MotoStack', 'OtherStack') },
      { Key: Tag.LOGICAL_ID, Value: LOGICAL_ID },
    ]],
  ] as Array<[string, Ec2Tag[]]>)('leaves alone an image with %s', async (_label, tags) => {
    const props = bakeProps(await harness.launchBuilder());
    const foreign = await harness.ec2ViaProxy.send(new CreateImageCommand({
      InstanceId: props[Prop.INSTANCE_ID],
      Name: 'not-baked-by-this-resource',
      TagSpecifications: tags.length ? [{ ResourceType: 'image', Tags: tags }, { ResourceType: 'snapshot', Tags: tags }] : undefined,
    }));
    const before = await ownState();
    expect(before.map((entry) => entry.imageId)).toEqual([foreign.ImageId]);
    harness.proxy.clearRequests();

    await expect(handler.onEvent(deleteEvent(foreign.ImageId ?? '', props))).resolves.toEqual({
      PhysicalResourceId: foreign.ImageId,
      Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) },
    });

    expect(await ownState()).toEqual(before);
    // The resource's own images first (superseded images kept earlier), then the image itself.
    expect(harness.proxy.actions()).toEqual(['DescribeImages', 'DescribeImages']);
    const [own, described] = harness.proxy.requests.map((request) => Object.fromEntries(request.params));
    expect(own).toMatchObject({
      'Owner.1': 'self',
      'Filter.1.Name': `tag:${Tag.STACK_ID}`,
      'Filter.1.Value.1': STACK_ID,
      'Filter.2.Name': `tag:${Tag.LOGICAL_ID}`,
      'Filter.2.Value.1': LOGICAL_ID,
    });
    expect(described).toMatchObject({ 'ImageId.1': foreign.ImageId });
  });
});

describe('failures', () => {
  test('isComplete on an image that does not exist fails and names the image', async () => {
    const props = bakeProps(await harness.launchBuilder());
    const event = createEvent(props);
    const poll = completeEvent(event, { PhysicalResourceId: 'ami-0123456789abcdef0', Data: { [Attr.REQUEST_STARTED_AT]: secondsAgo(0) } });

    // EC2 is eventually consistent: a new image may not be visible yet.
    await expect(handler.isComplete(poll)).resolves.toEqual({ IsComplete: false });
    await expect(handler.isComplete(startedAgo(poll, 290))).resolves.toEqual({ IsComplete: false });
    await expect(handler.isComplete(startedAgo(poll, 600))).rejects.toThrow(new RegExp(
      `^Image ami-0123456789abcdef0 from builder ${props[Prop.INSTANCE_ID]} is not found (599|60\\d) s after this request started \\(deregistered outside this stack\\?\\)`,
    ));
    expect(await instanceState(props[Prop.INSTANCE_ID])).toBe('running');
  });

  test('isComplete on an image deregistered during the bake fails and names the image', async () => {
    const props = bakeProps(await harness.launchBuilder());
    const event = createEvent(props);
    const response = await handler.onEvent(event);
    await harness.ec2.send(new DeregisterImageCommand({ ImageId: response.PhysicalResourceId }));
    const poll = completeEvent(event, response);

    await expect(handler.isComplete(poll)).resolves.toEqual({ IsComplete: false });
    await expect(handler.isComplete(startedAgo(poll, 600))).rejects.toThrow(new RegExp(
      `^Image ${response.PhysicalResourceId} from builder ${props[Prop.INSTANCE_ID]} is not found (599|60\\d) s after this request started \\(deregistered outside this stack\\?\\)`,
    ));
    expect(await instanceState(props[Prop.INSTANCE_ID])).toBe('running');
  });

  test('isComplete fails a bake that stays pending longer than BakeTimeoutSeconds', async () => {
    const props = bakeProps(await harness.launchBuilder(), { [Prop.BAKE_TIMEOUT_SECONDS]: '600' });
    const event = createEvent(props);
    const response = await handler.onEvent(event);
    const imageId = response.PhysicalResourceId ?? '';
    harness.proxy.holdPending(imageId, 2);
    const poll = completeEvent(event, response);
    // bakeTimeout counts from when the request started, not from the image's creation: an image an hour old is
    // still within it when this request started now.
    harness.proxy.rewriteResponses('DescribeImages', 1, (body) => body.replace(
      /<creationDate>[^<]*<\/creationDate>/,
      `<creationDate>${new Date(Date.now() - 3_600_000).toISOString()}</creationDate>`,
    ));
    await expect(handler.isComplete(poll)).resolves.toEqual({ IsComplete: false });

    // This request started an hour ago.
    await expect(handler.isComplete(startedAgo(poll, 3600))).rejects.toThrow(new RegExp(
      `^Image ${imageId} from builder ${props[Prop.INSTANCE_ID]} is still pending after (3599|360\\d) s, longer than bakeTimeout \\(600 s\\)`,
    ));
    expect(await instanceState(props[Prop.INSTANCE_ID])).toBe('running');
  });

  test('a Create from a builder that no longer exists fails with a hint to change rebakeTrigger', async () => {
    const event = createEvent(bakeProps('i-0123456789abcdef0'));

    await expect(handler.onEvent(event)).rejects.toThrow(/i-0123456789abcdef0.*InvalidInstanceID\.NotFound.*rebakeTrigger/);
    expect(await ownImageIds()).toEqual([]);
  });
});
