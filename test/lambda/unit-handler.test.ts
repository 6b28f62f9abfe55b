import {
  CreateImageCommand,
  type CreateImageCommandInput,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  DescribeSnapshotsCommand,
  EC2Client,
  type Image,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { isComplete, onEvent } from '../../lambda/bake-image';
import { ec2 as homeClient } from '../../lambda/bake-image/clients';
import { NOT_VISIBLE_GRACE_SECONDS, SNAPSHOT_RELEASE_SECONDS } from '../../lambda/bake-image/request-clock';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';
import { BuilderAfterBake } from '../../src/builder-after-bake';
import { Attr, type BakeSpec, MANAGED_BY_VALUE, Prop, RemovalMode, Tag } from '../../src/private/contract';
import {
  BUILDER_ID,
  createEvent,
  deleteEvent,
  eventOfType,
  IMAGE_ID,
  imageNameFor,
  isCompleteEvent,
  LOGICAL_ID,
  requestStarted,
  resourceProperties,
  secondsAgo,
  serviceError,
  setUpHandlerTests,
  STACK_ID,
  updateEvent,
  withoutProperties,
  withRawProperties,
} from '../support/fixtures';

const ec2 = mockClient(EC2Client);

const OTHER_STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/OtherStack/99999999-2222-3333-4444-555555555555';
const OTHER_IMAGE_ID = 'ami-0fedcba9876543210';
const NAME_PATTERN = /^web-[0-9a-f]{16}$/;

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Asserts that onEvent's Data records when the request started: an ISO time between `before` and now. */
function expectStartedSince(data: Record<string, string> | undefined, before: number): void {
  const startedAt = data?.[Attr.REQUEST_STARTED_AT];
  expect(startedAt).toMatch(ISO_TIME);
  const at = Date.parse(startedAt ?? '');
  expect(new Date(at).toISOString()).toBe(startedAt);
  expect(at).toBeGreaterThanOrEqual(before);
  expect(at).toBeLessThanOrEqual(Date.now());
}

/** The region a mocked call went to: the handler's own client serves the stack's region. */
async function regionOf(call: { thisValue: unknown }): Promise<string> {
  const client = call.thisValue as EC2Client;
  return client === homeClient ? `home:${process.env.AWS_REGION}` : client.config.region();
}

function awsError(name: string, message = `${name} (simulated)`): Error {
  return Object.assign(new Error(message), { name });
}

function ownTags(name: string, stackId = STACK_ID, logicalId = LOGICAL_ID) {
  return [
    { Key: 'Name', Value: name },
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_ID, Value: stackId },
    { Key: Tag.LOGICAL_ID, Value: logicalId },
    { Key: Tag.STACK_NAME, Value: stackId.split('/')[1] },
    { Key: Tag.IMAGE_NAME, Value: name },
  ];
}

function createImageInputs(): CreateImageCommandInput[] {
  return ec2.commandCalls(CreateImageCommand).map((call) => call.args[0].input);
}

/** Names of the commands sent, in order. */
function sentCommands(): string[] {
  return ec2.calls().map((call) => (call.args[0] as object).constructor.name);
}

/**
 * A small in-memory EC2 for the scenarios that span several events: DescribeImages answers by name
 * or id from what CreateImage made, and CreateImage refuses a duplicate name like EC2 does.
 */
function simulateEc2(initial: Image[] = []): Image[] {
  const images = [...initial];
  let next = 0x100;
  ec2.on(DescribeImagesCommand).callsFake((input: DescribeImagesCommandInput) => {
    const names = input.Filters?.find((filter) => filter.Name === 'name')?.Values;
    return {
      Images: images.filter((image) => (names?.includes(image.Name ?? '') ?? false) || (input.ImageIds?.includes(image.ImageId ?? '') ?? false)),
    };
  });
  ec2.on(CreateImageCommand).callsFake((input: CreateImageCommandInput) => {
    if (images.some((image) => image.Name === input.Name)) {
      throw serviceError('InvalidAMIName.Duplicate');
    }
    const imageId = `ami-${(next++).toString(16).padStart(17, '0')}`;
    images.push({ ImageId: imageId, Name: input.Name, State: 'pending' });
    return { ImageId: imageId };
  });
  return images;
}

// The Lambda runtime always sets AWS_REGION: the snapshots a Delete leaves in use are named with their region.
const handlerConsole = setUpHandlerTests(ec2);

describe('onEvent Create', () => {
  test('creates an image from the builder with a deterministic name and tags on image and snapshots', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    const before = Date.now();
    const response = await onEvent(createEvent());

    const name = imageNameFor();
    expect(name).toMatch(NAME_PATTERN);
    const expectedTags = [
      { Key: 'Name', Value: name },
      { Key: 'cdk-baked-image:managed-by', Value: 'cdk-baked-image' },
      { Key: 'cdk-baked-image:stack-id', Value: STACK_ID },
      { Key: 'cdk-baked-image:logical-id', Value: LOGICAL_ID },
      { Key: 'cdk-baked-image:stack-name', Value: 'MyStack' },
      { Key: 'cdk-baked-image:image-name', Value: name },
      { Key: 'cdk-baked-image:baked-at', Value: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) },
    ];
    expect(createImageInputs()).toEqual([{
      InstanceId: BUILDER_ID,
      Name: name,
      Description: 'Web server image',
      NoReboot: false,
      TagSpecifications: [
        { ResourceType: 'image', Tags: expectedTags },
        { ResourceType: 'snapshot', Tags: expectedTags },
      ],
    }]);
    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String), ImageId: IMAGE_ID, ImageName: name } });
    expectStartedSince(response.Data, before);
  });

  test('records the manifest the construct passes as tags, cutting values at EC2\'s 256 characters', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });
    const longSets = Array.from({ length: 40 }, (_, i) => `configset${i}`).join(' ');

    await onEvent(createEvent({
      manifest: { baseImageId: 'ami-0aaaaaaaaaaaaaaaa', configSets: longSets, initFingerprint: '0123456789abcdef', libraryVersion: '1.2.3' },
    }));

    const tags = Object.fromEntries((createImageInputs()[0].TagSpecifications?.[0]?.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(tags).toMatchObject({
      'cdk-baked-image:base-image': 'ami-0aaaaaaaaaaaaaaaa',
      'cdk-baked-image:init-fingerprint': '0123456789abcdef',
      'cdk-baked-image:version': '1.2.3',
    });
    expect(tags['cdk-baked-image:config-sets']).toHaveLength(256);
    expect(tags['cdk-baked-image:config-sets']).toBe(`${longSets.slice(0, 253)}...`);
  });

  test('looks for an image of the same name among the account\'s own images before creating one', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(createEvent());

    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, {
      Owners: ['self'],
      Filters: [{ Name: 'name', Values: [imageNameFor()] }],
    });
    expect(sentCommands()).toEqual(['DescribeImagesCommand', 'CreateImageCommand']);
  });

  test('creates the image without a reboot when NoReboot is the string true', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(createEvent({ noReboot: true }));

    expect(ec2).toHaveReceivedCommandWith(CreateImageCommand, { NoReboot: true, Name: imageNameFor({ noReboot: true }) });
  });

  test('reboots the builder when NoReboot is the string false', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(createEvent({ noReboot: false }));

    expect(ec2).toHaveReceivedCommandWith(CreateImageCommand, { NoReboot: false });
  });

  test('adopts the image a retried create already made instead of creating another', async () => {
    const name = imageNameFor();
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: OTHER_IMAGE_ID, Name: name, State: 'pending' }] });

    const before = Date.now();
    const response = await onEvent(createEvent());

    expect(ec2).not.toHaveReceivedCommand(CreateImageCommand);
    expect(response).toEqual({
      PhysicalResourceId: OTHER_IMAGE_ID,
      Data: { RequestStartedAt: expect.any(String), ImageId: OTHER_IMAGE_ID, ImageName: name },
    });
    // The retried request's own start: bakeTimeout counts from it, not from when the adopted image was made.
    expectStartedSince(response.Data, before);
  });

  test('leaves exactly one image behind when the same create runs twice', async () => {
    const images = simulateEc2();

    const first = await onEvent(createEvent());
    const second = await onEvent(createEvent());

    expect(images).toHaveLength(1);
    expect(ec2).toHaveReceivedCommandTimes(CreateImageCommand, 1);
    expect(second.PhysicalResourceId).toBe(first.PhysicalResourceId);
  });

  test('ignores a deregistered image of the same name and creates a new one', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: OTHER_IMAGE_ID, Name: imageNameFor(), State: 'deregistered' }] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    const response = await onEvent(createEvent());

    expect(ec2).toHaveReceivedCommandTimes(CreateImageCommand, 1);
    expect(response.PhysicalResourceId).toBe(IMAGE_ID);
  });

  test('adopts the image a concurrent request created when CreateImage reports a duplicate name', async () => {
    const name = imageNameFor();
    ec2.on(DescribeImagesCommand)
      .resolvesOnce({ Images: [] })
      .resolves({ Images: [{ ImageId: OTHER_IMAGE_ID, Name: name, State: 'pending' }] });
    ec2.on(CreateImageCommand).rejects(serviceError('InvalidAMIName.Duplicate'));

    const before = Date.now();
    const response = await onEvent(createEvent());

    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
    expect(response).toEqual({
      PhysicalResourceId: OTHER_IMAGE_ID,
      Data: { RequestStartedAt: expect.any(String), ImageId: OTHER_IMAGE_ID, ImageName: name },
    });
    expectStartedSince(response.Data, before);
  });

  test('fails naming the builder and the image name when a duplicate name cannot be found again', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).rejects(awsError('InvalidAMIName.Duplicate'));

    const failure = onEvent(createEvent());

    await expect(failure).rejects.toThrow(BUILDER_ID);
    await expect(failure).rejects.toThrow(imageNameFor());
    await expect(failure).rejects.toThrow('InvalidAMIName.Duplicate');
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
  });

  test.each(['InvalidInstanceID.NotFound', 'IncorrectState', 'IncorrectInstanceState'])(
    'tells the user to change rebakeTrigger when CreateImage fails with %s',
    async (code) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [] });
      ec2.on(CreateImageCommand).rejects(serviceError(code));

      const failure = onEvent(createEvent());

      await expect(failure).rejects.toThrow('rebakeTrigger');
      await expect(failure).rejects.toThrow(code);
      await expect(failure).rejects.toThrow(BUILDER_ID);
    },
  );

  test('reports other CreateImage failures with their code and no rebake hint', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).rejects(serviceError('UnauthorizedOperation', 'You are not authorized'));

    const failure = onEvent(createEvent());

    await expect(failure).rejects.toThrow('UnauthorizedOperation: You are not authorized');
    await expect(failure).rejects.not.toThrow('rebakeTrigger');
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 1);
  });

  test('fails when CreateImage answers without an image id', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({});

    await expect(onEvent(createEvent())).rejects.toThrow('CreateImage returned no ImageId');
  });

  test('rejects properties the construct would never write before calling EC2', async () => {
    // Malformed properties for the decoder: written by hand, over the encoded ones.
    await expect(onEvent(withRawProperties(createEvent(), { NoReboot: 'yes' }))).rejects.toThrow(/NoReboot.*'yes'/);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('rejects an unknown request type', async () => {
    const event = { ...createEvent(), RequestType: 'Refresh' } as unknown as OnEventRequest;

    await expect(onEvent(event)).rejects.toThrow('Unknown request type: Refresh');
    expect(ec2.calls()).toHaveLength(0);
  });
});

describe('onEvent Update', () => {
  test.each<[string, Partial<BakeSpec>, Partial<BakeSpec>]>([
    ['Removal', { removal: RemovalMode.DESTROY }, { removal: RemovalMode.RETAIN }],
    ['BuilderAfterBake', { builderAfterBake: BuilderAfterBake.STOP }, { builderAfterBake: BuilderAfterBake.TERMINATE }],
    ['BakeTimeoutSeconds', { bakeTimeoutSeconds: 3600 }, { bakeTimeoutSeconds: 7200 }],
  ])('keeps the image without calling EC2 when only %s changed, recording when the request started', async (_name, oldProps, newProps) => {
    const before = Date.now();
    const response = await onEvent(updateEvent(newProps, oldProps));

    // No ImageId here: the image's attributes come from isComplete. The start time is for its deadlines.
    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) } });
    expectStartedSince(response.Data, before);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('keeps the image when a shaping property goes from absent to an empty string', async () => {
    // The old properties as an earlier construct wrote them, without RebakeTrigger (the encoder always writes one).
    const oldProperties = withoutProperties(resourceProperties(), Prop.REBAKE_TRIGGER);
    const response = await onEvent({ ...updateEvent({ rebakeTrigger: '' }), OldResourceProperties: oldProperties });

    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) } });
    expect(ec2.calls()).toHaveLength(0);
  });

  test.each<[string, Partial<BakeSpec>]>([
    ['InstanceId', { instanceId: 'i-0aaaaaaaaaaaaaaaa' }],
    ['Description', { description: 'Web server image, version 2' }],
    ['RebakeTrigger', { rebakeTrigger: 'v2' }],
    ['NamePrefix', { namePrefix: 'web2' }],
    ['NoReboot', { noReboot: true }],
  ])('bakes a new image under a new physical id when %s changed', async (prop, newProps) => {
    const oldName = imageNameFor();
    const newName = imageNameFor(newProps);
    expect(newName).not.toBe(oldName);
    ec2.on(DescribeImagesCommand, { Filters: [{ Name: 'name', Values: [oldName] }] })
      .resolves({ Images: [{ ImageId: IMAGE_ID, Name: oldName, State: 'available' }] });
    ec2.on(DescribeImagesCommand, { Filters: [{ Name: 'name', Values: [newName] }] }).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: OTHER_IMAGE_ID });

    const before = Date.now();
    const response = await onEvent(updateEvent(newProps));

    expect(response).toEqual({
      PhysicalResourceId: OTHER_IMAGE_ID,
      Data: { RequestStartedAt: expect.any(String), ImageId: OTHER_IMAGE_ID, ImageName: newName },
    });
    expectStartedSince(response.Data, before);
    expect(createImageInputs()).toHaveLength(1);
    expect(createImageInputs()[0]).toMatchObject({
      Name: newName,
      InstanceId: prop === 'InstanceId' ? 'i-0aaaaaaaaaaaaaaaa' : BUILDER_ID,
      NoReboot: prop === 'NoReboot',
    });
  });

  test('adopts the old image again when a rollback asks for the old properties', async () => {
    const oldProps: Partial<BakeSpec> = {};
    const newProps: Partial<BakeSpec> = { rebakeTrigger: 'v2' };
    const images = simulateEc2();

    const created = await onEvent(createEvent(oldProps));
    const updated = await onEvent(updateEvent(newProps, oldProps, created.PhysicalResourceId));
    ec2.resetHistory();
    const before = Date.now();
    const rolledBack = await onEvent(updateEvent(oldProps, newProps, updated.PhysicalResourceId));

    expect(updated.PhysicalResourceId).not.toBe(created.PhysicalResourceId);
    expect(rolledBack).toEqual({
      PhysicalResourceId: created.PhysicalResourceId,
      Data: { RequestStartedAt: expect.any(String), ImageId: created.PhysicalResourceId, ImageName: imageNameFor(oldProps) },
    });
    // The rollback's own start, not the original Create's: an old image is not failed for its age.
    expectStartedSince(rolledBack.Data, before);
    expect(ec2).not.toHaveReceivedCommand(CreateImageCommand);
    expect(images).toHaveLength(2);
  });

  test('bakes when the current physical id is not an image id', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    const response = await onEvent(updateEvent({}, {}, 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED'));

    expect(response.PhysicalResourceId).toBe(IMAGE_ID);
    expect(ec2).toHaveReceivedCommandTimes(CreateImageCommand, 1);
  });
});

describe('isComplete for Create and Update', () => {
  const availableImage = (name = imageNameFor()): Image => ({ ImageId: IMAGE_ID, Name: name, State: 'available' });

  test('answers not complete with exactly one DescribeImages call while the image is pending', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: new Date().toISOString() }] });

    const response = await isComplete(isCompleteEvent(createEvent()));

    expect(response).toEqual({ IsComplete: false });
    expect(ec2.calls()).toHaveLength(1);
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, { ImageIds: [IMAGE_ID] });
  });

  test('stops the builder by default and returns the image id and name once the image is available', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage('web-from-ec2')] });
    ec2.on(StopInstancesCommand).resolves({});

    const response = await isComplete(isCompleteEvent(createEvent()));

    expect(response).toEqual({ IsComplete: true, Data: { ImageId: IMAGE_ID, ImageName: 'web-from-ec2' } });
    expect(ec2).toHaveReceivedCommandWith(StopInstancesCommand, { InstanceIds: [BUILDER_ID] });
    expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
  });

  test('stops the builder when BuilderAfterBake is stop', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(StopInstancesCommand).resolves({});

    await isComplete(isCompleteEvent(updateEvent({ builderAfterBake: BuilderAfterBake.STOP })));

    expect(ec2).toHaveReceivedCommandTimes(StopInstancesCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(StopInstancesCommand, { InstanceIds: [BUILDER_ID] });
    expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
  });

  test('terminates the builder when BuilderAfterBake is terminate', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(TerminateInstancesCommand).resolves({});

    const response = await isComplete(isCompleteEvent(createEvent({ builderAfterBake: BuilderAfterBake.TERMINATE })));

    expect(response.IsComplete).toBe(true);
    expect(ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [BUILDER_ID] });
    expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
  });

  test('leaves the builder running when BuilderAfterBake is keep-running', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });

    const response = await isComplete(isCompleteEvent(createEvent({ builderAfterBake: BuilderAfterBake.KEEP_RUNNING })));

    expect(response.IsComplete).toBe(true);
    expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
    expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
    expect(ec2.calls()).toHaveLength(1);
  });

  test('falls back to the derived name when EC2 does not report the image name', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'available' }] });

    const response = await isComplete(isCompleteEvent(createEvent({ builderAfterBake: BuilderAfterBake.KEEP_RUNNING })));

    expect(response.Data).toEqual({ ImageId: IMAGE_ID, ImageName: imageNameFor() });
  });

  test.each(['IncorrectInstanceState', 'InvalidInstanceID.NotFound'])(
    'completes when stopping the builder fails with %s because it is already gone',
    async (code) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
      ec2.on(StopInstancesCommand).rejects(serviceError(code));

      await expect(isComplete(isCompleteEvent(createEvent()))).resolves.toMatchObject({ IsComplete: true });
    },
  );

  test('completes when terminating an already terminated builder fails with InvalidInstanceID.NotFound', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(TerminateInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));

    await expect(isComplete(isCompleteEvent(createEvent({ builderAfterBake: BuilderAfterBake.TERMINATE }))))
      .resolves.toMatchObject({ IsComplete: true });
  });

  test('fails naming the builder when stopping it fails for another reason', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(StopInstancesCommand).rejects(serviceError('UnauthorizedOperation', 'not allowed to stop'));

    const failure = isComplete(isCompleteEvent(createEvent()));

    await expect(failure).rejects.toThrow(`Could not stop builder ${BUILDER_ID}`);
    await expect(failure).rejects.toThrow('UnauthorizedOperation: not allowed to stop');
  });

  test('fails with the image, builder, state, reason and a pointer to cfn-init when the image failed', async () => {
    ec2.on(DescribeImagesCommand).resolves({
      Images: [{
        ImageId: IMAGE_ID,
        State: 'failed',
        StateReason: { Code: 'Server.InternalError', Message: 'snapshot could not be created' },
      }],
    });

    const failure = isComplete(isCompleteEvent(createEvent()));

    await expect(failure).rejects.toThrow(IMAGE_ID);
    await expect(failure).rejects.toThrow(BUILDER_ID);
    await expect(failure).rejects.toThrow('is failed');
    await expect(failure).rejects.toThrow('Server.InternalError: snapshot could not be created');
    await expect(failure).rejects.toThrow('cfn-init');
    expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
  });

  const invisible: Array<[string, () => unknown]> = [
    ['DescribeImages throws InvalidAMIID.NotFound', () => ec2.on(DescribeImagesCommand).rejects(serviceError('InvalidAMIID.NotFound'))],
    ['DescribeImages returns no image', () => ec2.on(DescribeImagesCommand).resolves({ Images: [] })],
  ];

  test('gives a new image five minutes to become visible', () => {
    expect(NOT_VISIBLE_GRACE_SECONDS).toBe(300);
  });

  describe.each(invisible)('when %s', (_case, arrange) => {
    test.each<RequestType>(['Create', 'Update'])('%s keeps waiting within the grace period after the request started (EC2 is eventually consistent)', async (type) => {
      arrange();

      await expect(isComplete(isCompleteEvent(eventOfType(type), IMAGE_ID, requestStarted(0)))).resolves.toEqual({ IsComplete: false });
      await expect(isComplete(isCompleteEvent(eventOfType(type), IMAGE_ID, requestStarted(NOT_VISIBLE_GRACE_SECONDS - 10))))
        .resolves.toEqual({ IsComplete: false });

      expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
      expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
      expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
    });

    test.each<RequestType>(['Create', 'Update'])('%s fails naming the image, the builder and the seconds once the grace period has passed', async (type) => {
      arrange();

      const failure = isComplete(isCompleteEvent(eventOfType(type), IMAGE_ID, requestStarted(NOT_VISIBLE_GRACE_SECONDS + 100)));

      await expect(failure).rejects.toThrow(
        new RegExp(`^Image ${IMAGE_ID} from builder ${BUILDER_ID} is not found 40\\d s after this request started \\(deregistered outside this stack\\?\\)\\. Change rebakeTrigger`),
      );
      expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
    });

    test('keeps waiting when the request carries no start time (started by an earlier version of the handler)', async () => {
      arrange();

      await expect(isComplete(isCompleteEvent(createEvent(), IMAGE_ID, null))).resolves.toEqual({ IsComplete: false });
    });
  });

  test('passes on other DescribeImages errors with their message and code, as a plain error without stack, after logging them', async () => {
    const error = serviceError('RequestLimitExceeded', 'Rate exceeded');
    ec2.on(DescribeImagesCommand).rejects(error);

    const failure = await isComplete(isCompleteEvent(createEvent(), IMAGE_ID, requestStarted(NOT_VISIBLE_GRACE_SECONDS + 100)))
      .then(() => undefined, (thrown: unknown) => thrown as Error);

    const message = `DescribeImages for image ${IMAGE_ID} failed: RequestLimitExceeded: Rate exceeded`;
    expect(failure).toBeInstanceOf(Error);
    expect(failure).not.toBe(error);
    // The provider framework appends a stack to the reason: there is none to append.
    expect(failure).toMatchObject({ name: 'Error', message, stack: '' });
    expect(handlerConsole.errorLogs()).toEqual([expect.objectContaining({ message: 'request failed', error: message, stack: expect.stringMatching(/\n\s+at /) })]);
  });

  test('fails naming bakeTimeout and its seconds when the image stays pending too long after the request started', async () => {
    // Created just now, but the request started two hours ago: the request's start is what counts.
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: secondsAgo(0) }] });

    const failure = isComplete(isCompleteEvent(createEvent({ bakeTimeoutSeconds: 3600 }), IMAGE_ID, requestStarted(7200)));

    await expect(failure).rejects.toThrow(
      new RegExp(`^Image ${IMAGE_ID} from builder ${BUILDER_ID} is still pending after 720\\d s, longer than bakeTimeout \\(3600 s\\)\\. Raise bakeTimeout`),
    );
  });

  test('keeps waiting while a pending image is within the bake timeout counted from the request\'s start', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: secondsAgo(60) }] });

    await expect(isComplete(isCompleteEvent(createEvent({ bakeTimeoutSeconds: 3600 }), IMAGE_ID, requestStarted(3500))))
      .resolves.toEqual({ IsComplete: false });
  });

  test('does not fail an image created long before this request for bakeTimeout (an Update that validates or copies an old image)', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: '2020-01-01T00:00:00.000Z' }] });

    await expect(isComplete(isCompleteEvent(updateEvent({ bakeTimeoutSeconds: 3600 }), IMAGE_ID, requestStarted(10))))
      .resolves.toEqual({ IsComplete: false });
  });

  test('keeps waiting on an old pending image when no bake timeout is set', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: '2000-01-01T00:00:00.000Z' }] });

    await expect(isComplete(isCompleteEvent(createEvent({ bakeTimeoutSeconds: undefined }), IMAGE_ID, { RequestStartedAt: '2000-01-01T00:00:00.000Z' }))).resolves.toEqual({ IsComplete: false });
  });

  test('enforces no bakeTimeout for a request without a start time, whatever the image\'s age', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: '2000-01-01T00:00:00.000Z' }] });

    await expect(isComplete(isCompleteEvent(createEvent({ bakeTimeoutSeconds: 3600 }), IMAGE_ID, null))).resolves.toEqual({ IsComplete: false });
  });

  test('rejects an unknown request type', async () => {
    const event = { ...isCompleteEvent(createEvent()), RequestType: 'Refresh' } as unknown as IsCompleteRequest;

    await expect(isComplete(event)).rejects.toThrow('Unknown request type: Refresh');
    expect(ec2.calls()).toHaveLength(0);
  });
});

describe('snapshots a Delete left in use', () => {
  const SNAP_HOME = 'snap-00000000000000001';
  const SNAP_COPY = 'snap-00000000000000002';
  const IN_USE = `us-east-1/${SNAP_HOME} us-west-2/${SNAP_COPY}`;
  const leftInUse = (startedSecondsAgo: number, inUse = IN_USE) => ({ RequestStartedAt: secondsAgo(startedSecondsAgo), SnapshotsInUse: inUse });
  const deletions = async () => Promise.all(ec2.commandCalls(DeleteSnapshotCommand)
    .map(async (call) => `${await regionOf(call)} ${call.args[0].input.SnapshotId}`));

  test('gives EC2 ten minutes to release them', () => {
    expect(SNAPSHOT_RELEASE_SECONDS).toBe(600);
  });

  test('isComplete for a Delete that left none is complete without calling EC2', async () => {
    await expect(isComplete(isCompleteEvent(deleteEvent()))).resolves.toEqual({ IsComplete: true });
    await expect(isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, null))).resolves.toEqual({ IsComplete: true });
    await expect(isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, { ...requestStarted(0), SnapshotsInUse: '' }))).resolves.toEqual({ IsComplete: true });
    expect(ec2.calls()).toHaveLength(0);
  });

  test('isComplete deletes each of them in its own region, and is complete once all are deleted or gone', async () => {
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_HOME }).resolves({});
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_COPY }).rejects(serviceError('InvalidSnapshot.NotFound'));

    await expect(isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, leftInUse(30)))).resolves.toEqual({ IsComplete: true });

    expect(await deletions()).toEqual([`home:us-east-1 ${SNAP_HOME}`, `us-west-2 ${SNAP_COPY}`]);
    expect(sentCommands()).toEqual(['DeleteSnapshotCommand', 'DeleteSnapshotCommand']);
  });

  test('isComplete is not complete while one is still in use within the release time, and tries every one each poll', async () => {
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_HOME }).rejects(serviceError('InvalidSnapshot.InUse'));
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_COPY }).resolves({});

    await expect(isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, leftInUse(30)))).resolves.toEqual({ IsComplete: false });
    await expect(isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, leftInUse(SNAPSHOT_RELEASE_SECONDS - 10))))
      .resolves.toEqual({ IsComplete: false });

    expect(await deletions()).toEqual([
      `home:us-east-1 ${SNAP_HOME}`, `us-west-2 ${SNAP_COPY}`,
      `home:us-east-1 ${SNAP_HOME}`, `us-west-2 ${SNAP_COPY}`,
    ]);
    expect(handlerConsole.warn).not.toHaveBeenCalled();
  });

  test('isComplete fails naming the snapshots still in use, and only those, once the release time has passed', async () => {
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_HOME }).resolves({});
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_COPY }).rejects(serviceError('InvalidSnapshot.InUse'));

    const failure = isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, leftInUse(SNAPSHOT_RELEASE_SECONDS + 100)));

    await expect(failure).rejects.toThrow(new RegExp(
      `^Snapshots us-west-2/${SNAP_COPY} of image ${IMAGE_ID} are still in use 70\\d s after their image was deregistered: ` +
      'another image was probably registered from them\\. Deregister that image and delete the snapshots, then retry',
    ));
    await expect(failure).rejects.not.toThrow(SNAP_HOME);
  });

  test('isComplete fails naming a snapshot that DeleteSnapshot refuses for another reason, and its region', async () => {
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_HOME }).resolves({});
    ec2.on(DeleteSnapshotCommand, { SnapshotId: SNAP_COPY }).rejects(serviceError('UnauthorizedOperation', 'not allowed'));

    await expect(isComplete(isCompleteEvent(deleteEvent(), IMAGE_ID, leftInUse(30))))
      .rejects.toThrow(`Could not delete snapshot ${SNAP_COPY} of image ${IMAGE_ID} in us-west-2: UnauthorizedOperation: not allowed`);
  });

  test('an Update\'s isComplete retries them first, and does not poll the image while one is in use', async () => {
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, Name: imageNameFor(), State: 'available' }] });

    await expect(isComplete(isCompleteEvent(updateEvent(), IMAGE_ID, leftInUse(30)))).resolves.toEqual({ IsComplete: false });

    expect(sentCommands()).toEqual(['DeleteSnapshotCommand', 'DeleteSnapshotCommand']);
  });

  test('an Update\'s isComplete polls and finishes the image once they are deleted', async () => {
    ec2.on(DeleteSnapshotCommand).resolves({});
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, Name: imageNameFor(), State: 'available' }] });
    ec2.on(StopInstancesCommand).resolves({});

    await expect(isComplete(isCompleteEvent(updateEvent(), IMAGE_ID, leftInUse(30))))
      .resolves.toEqual({ IsComplete: true, Data: { ImageId: IMAGE_ID, ImageName: imageNameFor() } });

    expect(sentCommands()).toEqual(['DeleteSnapshotCommand', 'DeleteSnapshotCommand', 'DescribeImagesCommand', 'StopInstancesCommand']);
  });

  test('an Update\'s isComplete fails naming them once the release time has passed', async () => {
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

    await expect(isComplete(isCompleteEvent(updateEvent(), IMAGE_ID, leftInUse(SNAPSHOT_RELEASE_SECONDS + 100))))
      .rejects.toThrow(`Snapshots us-east-1/${SNAP_HOME}, us-west-2/${SNAP_COPY} of image ${IMAGE_ID} are still in use`);
    expect(ec2).not.toHaveReceivedCommand(DescribeImagesCommand);
  });
});

describe('onEvent Delete', () => {
  const name = imageNameFor();
  const ownImage = (overrides: Partial<Image> = {}): Image => ({
    ImageId: IMAGE_ID,
    Name: name,
    State: 'available',
    Tags: ownTags(name),
    BlockDeviceMappings: [
      { DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-00000000000000001' } },
      { DeviceName: '/dev/xvdb', Ebs: { SnapshotId: 'snap-00000000000000002' } },
      { DeviceName: '/dev/xvdc', VirtualName: 'ephemeral0' },
    ],
    ...overrides,
  });
  const deletedSnapshots = () => ec2.commandCalls(DeleteSnapshotCommand).map((call) => call.args[0].input.SnapshotId).sort();
  const deregistered = () => ec2.commandCalls(DeregisterImageCommand).map((call) => call.args[0].input);
  const deleted = { PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) } };

  test('deregisters the image, then deletes its snapshots and those found by tag', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [{ SnapshotId: 'snap-00000000000000002' }, { SnapshotId: 'snap-00000000000000003' }],
    });

    const before = Date.now();
    const response = await onEvent(deleteEvent());

    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) } });
    expectStartedSince(response.Data, before);
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, { ImageIds: [IMAGE_ID] });
    expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
      OwnerIds: ['self'],
      Filters: [
        { Name: 'tag:cdk-baked-image:image-name', Values: [name] },
        { Name: 'tag:cdk-baked-image:stack-id', Values: [STACK_ID] },
        { Name: 'tag:cdk-baked-image:logical-id', Values: [LOGICAL_ID] },
      ],
    });
    // EC2 deletes the snapshots it can with the image; each is still deleted explicitly afterwards.
    expect(deregistered()).toEqual([{ ImageId: IMAGE_ID, DeleteAssociatedSnapshots: true }]);
    expect(deletedSnapshots()).toEqual(['snap-00000000000000001', 'snap-00000000000000002', 'snap-00000000000000003']);
    const commands = sentCommands();
    expect(commands.indexOf('DeregisterImageCommand')).toBeLessThan(commands.indexOf('DeleteSnapshotCommand'));
  });

  test.each([
    ['another stack', ownTags(name, OTHER_STACK_ID)],
    ['another logical id', ownTags(name, STACK_ID, 'OtherBake5678')],
    ['no management tag', ownTags(name).filter((tag) => tag.Key !== Tag.MANAGED_BY)],
    ['no tags at all', []],
  ])('leaves alone an image tagged for %s', async (_case, tags) => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage({ Tags: tags })] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-00000000000000003' }] });

    await expect(onEvent(deleteEvent())).resolves.toEqual(deleted);

    expect(ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(ec2).not.toHaveReceivedCommand(DeleteSnapshotCommand);
    expect(handlerConsole.warn).toHaveBeenCalledWith(expect.stringContaining(IMAGE_ID));
  });

  // The listing of the resource's images (by tag) shows nothing either; DescribeImages by id answers as named.
  const notShown: Array<[string, () => unknown]> = [
    ['DescribeImages throws InvalidAMIID.NotFound', () => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [] });
      ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).rejects(serviceError('InvalidAMIID.NotFound'));
    }],
    ['DescribeImages returns no image', () => ec2.on(DescribeImagesCommand).resolves({ Images: [] })],
  ];

  test.each(notShown)('still deregisters the physical id, which a new image may not be visible under yet, and deletes the snapshots found by tag (%s)', async (_case, arrange) => {
    arrange();
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-00000000000000003' }] });

    await expect(onEvent(deleteEvent())).resolves.toEqual(deleted);

    expect(deregistered()).toEqual([{ ImageId: IMAGE_ID, DeleteAssociatedSnapshots: true }]);
    expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
      Filters: expect.arrayContaining([{ Name: 'tag:cdk-baked-image:image-name', Values: [name] }]),
    });
    expect(deletedSnapshots()).toEqual(['snap-00000000000000003']);
    const commands = sentCommands();
    expect(commands.indexOf('DeregisterImageCommand')).toBeLessThan(commands.indexOf('DeleteSnapshotCommand'));
  });

  test.each(notShown)('succeeds when the image not shown is really gone and DeregisterImage says so (%s)', async (_case, arrange) => {
    arrange();
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeregisterImageCommand).rejects(serviceError('InvalidAMIID.NotFound'));

    await expect(onEvent(deleteEvent())).resolves.toEqual(deleted);
    expect(deregistered()).toEqual([{ ImageId: IMAGE_ID, DeleteAssociatedSnapshots: true }]);
  });

  test.each(['InvalidAMIID.Unavailable', 'InvalidAMIID.NotFound'])('succeeds when DeregisterImage answers %s', async (code) => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeregisterImageCommand).rejects(serviceError(code));

    await expect(onEvent(deleteEvent())).resolves.toEqual(deleted);
    expect(deletedSnapshots()).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
  });

  test('fails naming the image when DeregisterImage fails for another reason', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeregisterImageCommand).rejects(serviceError('UnauthorizedOperation', 'not allowed'));

    await expect(onEvent(deleteEvent())).rejects.toThrow(`Could not deregister image ${IMAGE_ID}: UnauthorizedOperation: not allowed`);
    expect(ec2).not.toHaveReceivedCommand(DeleteSnapshotCommand);
  });

  test('succeeds when a snapshot is already gone', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000001' }).rejects(serviceError('InvalidSnapshot.NotFound'));

    const response = await onEvent(deleteEvent());

    expect(response).toEqual(deleted);
    expect(response.Data).not.toHaveProperty('SnapshotsInUse');
    expect(deletedSnapshots()).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
  });

  test('hands a snapshot EC2 still reports in use to isComplete as region/snapshot, instead of keeping it', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000001' }).rejects(serviceError('InvalidSnapshot.InUse'));

    const before = Date.now();
    const response = await onEvent(deleteEvent());

    expect(response).toEqual({
      PhysicalResourceId: IMAGE_ID,
      Data: { RequestStartedAt: expect.any(String), SnapshotsInUse: 'us-east-1/snap-00000000000000001' },
    });
    expectStartedSince(response.Data, before);
    expect(deletedSnapshots()).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
    expect(handlerConsole.warn).not.toHaveBeenCalled();
    expect(handlerConsole.log.mock.calls.map((args) => JSON.parse(String(args[0])))).toContainEqual(expect.objectContaining({
      message: 'snapshot still in use: the delete retries it', snapshotId: 'snap-00000000000000001', imageId: IMAGE_ID,
    }));
  });

  test('lists every snapshot still in use, space-separated', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-00000000000000003' }] });
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

    const response = await onEvent(deleteEvent());

    expect(response.Data?.SnapshotsInUse?.split(' ').sort()).toEqual([
      'us-east-1/snap-00000000000000001', 'us-east-1/snap-00000000000000002', 'us-east-1/snap-00000000000000003',
    ]);
  });

  test('fails asking for a retry when more snapshots are in use than the response can carry', async () => {
    const many = Array.from({ length: 31 }, (_, i) => ({ DeviceName: `/dev/sd${i}`, Ebs: { SnapshotId: `snap-${String(i + 1).padStart(17, '0')}` } }));
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage({ BlockDeviceMappings: many })] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

    await expect(onEvent(deleteEvent())).rejects.toThrow(new RegExp(
      '^31 snapshots \\(us-east-1/snap-0+1, us-east-1/snap-0+2, us-east-1/snap-0+3, \\.\\.\\.\\) are still in use after their images were deregistered\\. ' +
      'EC2 releases them shortly after a deregistration: retry the delete',
    ));
    expect(ec2).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 31);
  });

  test('carries exactly 30 snapshots in use to isComplete', async () => {
    const thirty = Array.from({ length: 30 }, (_, i) => ({ DeviceName: `/dev/sd${i}`, Ebs: { SnapshotId: `snap-${String(i + 1).padStart(17, '0')}` } }));
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage({ BlockDeviceMappings: thirty })] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

    const response = await onEvent(deleteEvent());

    expect(response.Data?.SnapshotsInUse?.split(' ')).toHaveLength(30);
  });

  test('fails naming the snapshot when DeleteSnapshot fails for another reason', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000002' }).rejects(awsError('UnauthorizedOperation', 'not allowed'));

    const failure = onEvent(deleteEvent());

    await expect(failure).rejects.toThrow('snap-00000000000000002');
    await expect(failure).rejects.toThrow('UnauthorizedOperation: not allowed');
  });

  test('keeps image and snapshots without any EC2 call when Removal is retain, leaving isComplete nothing to retry', async () => {
    await expect(onEvent(deleteEvent({ removal: RemovalMode.RETAIN }))).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
    expect(ec2.calls()).toHaveLength(0);
  });

  test.each([
    'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED',
    'request-create-0001',
    'ami-NOT-HEX',
  ])('does not call EC2 for the physical id %s, which is no image id', async (physicalId) => {
    await expect(onEvent(deleteEvent({}, physicalId))).resolves.toEqual({ PhysicalResourceId: physicalId });
    expect(ec2.calls()).toHaveLength(0);
  });

  test('is safe to repeat after the first delete removed everything', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] })
      .resolvesOnce({ Images: [ownImage()] })
      .resolves({ Images: [] });
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] })
      .resolvesOnce({ Images: [ownImage()] })
      .rejects(serviceError('InvalidAMIID.NotFound'));
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-00000000000000001' }] });
    ec2.on(DeregisterImageCommand)
      .resolvesOnce({})
      .rejects(serviceError('InvalidAMIID.NotFound'));
    ec2.on(DeleteSnapshotCommand)
      .resolvesOnce({})
      .resolvesOnce({})
      .rejects(serviceError('InvalidSnapshot.NotFound'));

    await expect(onEvent(deleteEvent())).resolves.toEqual(deleted);
    await expect(onEvent(deleteEvent())).resolves.toEqual(deleted);

    // The repeat deregisters the physical id again (EC2 may just not show it yet), and finds it gone.
    expect(deregistered()).toEqual([
      { ImageId: IMAGE_ID, DeleteAssociatedSnapshots: true },
      { ImageId: IMAGE_ID, DeleteAssociatedSnapshots: true },
    ]);
    expect(ec2).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 3);
  });
});

describe('logging', () => {
  const responseUrl = 'https://example.com/presigned?X-Amz-Signature=secret';

  function loggedText(): string {
    return [...handlerConsole.log.mock.calls, ...handlerConsole.warn.mock.calls].map((args) => args.map(String).join(' ')).join('\n');
  }

  test('never writes the ResponseURL to the logs', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({
      Images: [{
        ImageId: IMAGE_ID,
        Name: imageNameFor(),
        State: 'available',
        Tags: ownTags(imageNameFor()),
        BlockDeviceMappings: [{ Ebs: { SnapshotId: 'snap-00000000000000001' } }],
      }],
    });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

    await onEvent(createEvent({}, { responseUrl }));
    await onEvent(updateEvent({ removal: RemovalMode.RETAIN }, {}, IMAGE_ID, { responseUrl }));
    await isComplete(isCompleteEvent(createEvent({}, { responseUrl }), IMAGE_ID, null));
    await onEvent(deleteEvent({}, IMAGE_ID, { responseUrl }));
    // Another resource's image is left alone with a warning; a refused request is logged as an error.
    await onEvent(deleteEvent({}, IMAGE_ID, { responseUrl, logicalId: 'OtherBake5678' }));
    // Malformed properties, written by hand: the decoder refuses them.
    await expect(onEvent(withRawProperties(createEvent({}, { responseUrl }), { NoReboot: 'yes' }))).rejects.toThrow('NoReboot');

    const text = loggedText();
    expect(handlerConsole.log).toHaveBeenCalled();
    expect(handlerConsole.warn).toHaveBeenCalled();
    expect(handlerConsole.errorLogs()).toHaveLength(1);
    expect(text).toContain('request-create-0001');
    expect(text).not.toContain('X-Amz-Signature');
    expect(text).not.toContain('example.com');
  });

  test('writes one JSON object per log line', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(createEvent());

    expect(handlerConsole.log.mock.calls.length).toBeGreaterThan(0);
    for (const args of handlerConsole.log.mock.calls) {
      expect(args).toHaveLength(1);
      expect(JSON.parse(String(args[0]))).toMatchObject({ level: 'info', message: expect.any(String) });
    }
    expect(handlerConsole.log.mock.calls.map((args) => JSON.parse(String(args[0])))).toContainEqual(
      expect.objectContaining({ message: 'onEvent', requestType: 'Create', logicalResourceId: LOGICAL_ID }),
    );
  });
});
