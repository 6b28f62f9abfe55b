import {
  CreateImageCommand,
  type CreateImageCommandInput,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  DescribeSnapshotsCommand,
  EC2Client,
  EC2ServiceException,
  type Image,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { isComplete, onEvent } from '../../lambda/bake-image';
import { imageName } from '../../lambda/bake-image/naming';
import { parseProperties } from '../../lambda/bake-image/properties';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';
import { MANAGED_BY_VALUE, Tag } from '../../src/private/contract';

const ec2 = mockClient(EC2Client);

const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/MyStack/11111111-2222-3333-4444-555555555555';
const OTHER_STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/OtherStack/99999999-2222-3333-4444-555555555555';
const LOGICAL_ID = 'ImageBake1234';
const BUILDER = 'i-0123456789abcdef0';
const IMAGE_ID = 'ami-0123456789abcdef0';
const OTHER_IMAGE_ID = 'ami-0fedcba9876543210';
const NAME_PATTERN = /^web-[0-9a-f]{16}$/;

/** The properties as CloudFormation delivers them: strings only. */
const BASE_PROPS: Record<string, string> = {
  InstanceId: BUILDER,
  NamePrefix: 'web',
  Description: 'Web server image',
};

interface EventOptions {
  readonly physicalId?: string;
  readonly oldProps?: Record<string, string>;
  readonly responseUrl?: string;
  readonly stackId?: string;
  readonly logicalId?: string;
}

function makeEvent(requestType: RequestType, props: Record<string, string> = {}, options: EventOptions = {}): OnEventRequest {
  return {
    RequestType: requestType,
    RequestId: `request-${requestType.toLowerCase()}-0001`,
    StackId: options.stackId ?? STACK_ID,
    LogicalResourceId: options.logicalId ?? LOGICAL_ID,
    ResourceType: 'Custom::BakedImage',
    ResourceProperties: { ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider', ...BASE_PROPS, ...props },
    ...(options.physicalId !== undefined ? { PhysicalResourceId: options.physicalId } : {}),
    ...(options.oldProps !== undefined
      ? { OldResourceProperties: { ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider', ...BASE_PROPS, ...options.oldProps } }
      : {}),
    ...(options.responseUrl !== undefined ? { ResponseURL: options.responseUrl } : {}),
  };
}

function completeEvent(requestType: RequestType, props: Record<string, string> = {}, physicalId: string = IMAGE_ID): IsCompleteRequest {
  return { ...makeEvent(requestType, props), PhysicalResourceId: physicalId };
}

/** The name the handler derives for a set of (string) properties. */
function nameFor(props: Record<string, string> = {}): string {
  return imageName(parseProperties({ ...BASE_PROPS, ...props }));
}

function awsError(name: string, message = `${name} (simulated)`): Error {
  return Object.assign(new Error(message), { name });
}

function serviceError(name: string, message = `${name} (simulated)`): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: 'client', $metadata: {}, message });
}

function ownTags(name: string, stackId = STACK_ID, logicalId = LOGICAL_ID) {
  return [
    { Key: 'Name', Value: name },
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_NAME, Value: stackId.split('/')[1] },
    { Key: Tag.STACK_ID, Value: stackId },
    { Key: Tag.LOGICAL_ID, Value: logicalId },
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

let logSpy: jest.SpyInstance;
let warnSpy: jest.SpyInstance;

beforeEach(() => {
  ec2.reset();
  logSpy = jest.spyOn(console, 'log').mockImplementation(() => {});
  warnSpy = jest.spyOn(console, 'warn').mockImplementation(() => {});
});

afterEach(() => {
  jest.restoreAllMocks();
});

describe('onEvent Create', () => {
  test('creates an image from the builder with a deterministic name and tags on image and snapshots', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    const response = await onEvent(makeEvent('Create'));

    const name = nameFor();
    expect(name).toMatch(NAME_PATTERN);
    const expectedTags = [
      { Key: 'Name', Value: name },
      { Key: 'cdk-baked-image:managed-by', Value: 'cdk-baked-image' },
      { Key: 'cdk-baked-image:stack-name', Value: 'MyStack' },
      { Key: 'cdk-baked-image:stack-id', Value: STACK_ID },
      { Key: 'cdk-baked-image:logical-id', Value: LOGICAL_ID },
      { Key: 'cdk-baked-image:image-name', Value: name },
      { Key: 'cdk-baked-image:baked-at', Value: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) },
    ];
    expect(createImageInputs()).toEqual([{
      InstanceId: BUILDER,
      Name: name,
      Description: 'Web server image',
      NoReboot: false,
      TagSpecifications: [
        { ResourceType: 'image', Tags: expectedTags },
        { ResourceType: 'snapshot', Tags: expectedTags },
      ],
    }]);
    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { ImageId: IMAGE_ID, ImageName: name } });
  });

  test('records the manifest the construct passes as tags, cutting values at EC2\'s 256 characters', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });
    const longSets = Array.from({ length: 40 }, (_, i) => `configset${i}`).join(' ');

    await onEvent(makeEvent('Create', {
      BaseImageId: 'ami-0aaaaaaaaaaaaaaaa',
      ConfigSets: longSets,
      InitFingerprint: '0123456789abcdef',
      LibraryVersion: '1.2.3',
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

    await onEvent(makeEvent('Create'));

    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, {
      Owners: ['self'],
      Filters: [{ Name: 'name', Values: [nameFor()] }],
    });
    expect(sentCommands()).toEqual(['DescribeImagesCommand', 'CreateImageCommand']);
  });

  test('creates the image without a reboot when NoReboot is the string true', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(makeEvent('Create', { NoReboot: 'true' }));

    expect(ec2).toHaveReceivedCommandWith(CreateImageCommand, { NoReboot: true, Name: nameFor({ NoReboot: 'true' }) });
  });

  test('reboots the builder when NoReboot is the string false', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(makeEvent('Create', { NoReboot: 'false' }));

    expect(ec2).toHaveReceivedCommandWith(CreateImageCommand, { NoReboot: false });
  });

  test('adopts the image a retried create already made instead of creating another', async () => {
    const name = nameFor();
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: OTHER_IMAGE_ID, Name: name, State: 'pending' }] });

    const response = await onEvent(makeEvent('Create'));

    expect(ec2).not.toHaveReceivedCommand(CreateImageCommand);
    expect(response).toEqual({ PhysicalResourceId: OTHER_IMAGE_ID, Data: { ImageId: OTHER_IMAGE_ID, ImageName: name } });
  });

  test('leaves exactly one image behind when the same create runs twice', async () => {
    const images = simulateEc2();

    const first = await onEvent(makeEvent('Create'));
    const second = await onEvent(makeEvent('Create'));

    expect(images).toHaveLength(1);
    expect(ec2).toHaveReceivedCommandTimes(CreateImageCommand, 1);
    expect(second.PhysicalResourceId).toBe(first.PhysicalResourceId);
  });

  test('ignores a deregistered image of the same name and creates a new one', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: OTHER_IMAGE_ID, Name: nameFor(), State: 'deregistered' }] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    const response = await onEvent(makeEvent('Create'));

    expect(ec2).toHaveReceivedCommandTimes(CreateImageCommand, 1);
    expect(response.PhysicalResourceId).toBe(IMAGE_ID);
  });

  test('adopts the image a concurrent request created when CreateImage reports a duplicate name', async () => {
    const name = nameFor();
    ec2.on(DescribeImagesCommand)
      .resolvesOnce({ Images: [] })
      .resolves({ Images: [{ ImageId: OTHER_IMAGE_ID, Name: name, State: 'pending' }] });
    ec2.on(CreateImageCommand).rejects(serviceError('InvalidAMIName.Duplicate'));

    const response = await onEvent(makeEvent('Create'));

    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
    expect(response).toEqual({ PhysicalResourceId: OTHER_IMAGE_ID, Data: { ImageId: OTHER_IMAGE_ID, ImageName: name } });
  });

  test('fails naming the builder and the image name when a duplicate name cannot be found again', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).rejects(awsError('InvalidAMIName.Duplicate'));

    const failure = onEvent(makeEvent('Create'));

    await expect(failure).rejects.toThrow(BUILDER);
    await expect(failure).rejects.toThrow(nameFor());
    await expect(failure).rejects.toThrow('InvalidAMIName.Duplicate');
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 2);
  });

  test.each(['InvalidInstanceID.NotFound', 'IncorrectState', 'IncorrectInstanceState'])(
    'tells the user to change rebakeTrigger when CreateImage fails with %s',
    async (code) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [] });
      ec2.on(CreateImageCommand).rejects(serviceError(code));

      const failure = onEvent(makeEvent('Create'));

      await expect(failure).rejects.toThrow('rebakeTrigger');
      await expect(failure).rejects.toThrow(code);
      await expect(failure).rejects.toThrow(BUILDER);
    },
  );

  test('reports other CreateImage failures with their code and no rebake hint', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).rejects(serviceError('UnauthorizedOperation', 'You are not authorized'));

    const failure = onEvent(makeEvent('Create'));

    await expect(failure).rejects.toThrow('UnauthorizedOperation: You are not authorized');
    await expect(failure).rejects.not.toThrow('rebakeTrigger');
    expect(ec2).toHaveReceivedCommandTimes(DescribeImagesCommand, 1);
  });

  test('fails when CreateImage answers without an image id', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({});

    await expect(onEvent(makeEvent('Create'))).rejects.toThrow('CreateImage returned no ImageId');
  });

  test('rejects properties the construct would never write before calling EC2', async () => {
    await expect(onEvent(makeEvent('Create', { NoReboot: 'yes' }))).rejects.toThrow(/NoReboot.*'yes'/);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('rejects an unknown request type', async () => {
    const event = { ...makeEvent('Create'), RequestType: 'Refresh' } as unknown as OnEventRequest;

    await expect(onEvent(event)).rejects.toThrow('Unknown request type: Refresh');
    expect(ec2.calls()).toHaveLength(0);
  });
});

describe('onEvent Update', () => {
  test.each([
    ['Removal', { Removal: 'destroy' }, { Removal: 'retain' }],
    ['BuilderAfterBake', { BuilderAfterBake: 'stop' }, { BuilderAfterBake: 'terminate' }],
    ['BakeTimeoutSeconds', { BakeTimeoutSeconds: '3600' }, { BakeTimeoutSeconds: '7200' }],
  ])('keeps the image without calling EC2 when only %s changed', async (_name, oldProps, newProps) => {
    const response = await onEvent(makeEvent('Update', newProps, { physicalId: IMAGE_ID, oldProps }));

    expect(response.PhysicalResourceId).toBe(IMAGE_ID);
    expect(ec2.calls()).toHaveLength(0);
  });

  test('keeps the image when a shaping property goes from absent to an empty string', async () => {
    const response = await onEvent(makeEvent('Update', { RebakeTrigger: '' }, { physicalId: IMAGE_ID, oldProps: {} }));

    expect(response.PhysicalResourceId).toBe(IMAGE_ID);
    expect(ec2.calls()).toHaveLength(0);
  });

  test.each([
    ['InstanceId', { InstanceId: 'i-0aaaaaaaaaaaaaaaa' }],
    ['Description', { Description: 'Web server image, version 2' }],
    ['RebakeTrigger', { RebakeTrigger: 'v2' }],
    ['NamePrefix', { NamePrefix: 'web2' }],
    ['NoReboot', { NoReboot: 'true' }],
  ])('bakes a new image under a new physical id when %s changed', async (prop, newProps) => {
    const oldName = nameFor();
    const newName = nameFor(newProps);
    expect(newName).not.toBe(oldName);
    ec2.on(DescribeImagesCommand, { Filters: [{ Name: 'name', Values: [oldName] }] })
      .resolves({ Images: [{ ImageId: IMAGE_ID, Name: oldName, State: 'available' }] });
    ec2.on(DescribeImagesCommand, { Filters: [{ Name: 'name', Values: [newName] }] }).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: OTHER_IMAGE_ID });

    const response = await onEvent(makeEvent('Update', newProps, { physicalId: IMAGE_ID, oldProps: {} }));

    expect(response).toEqual({ PhysicalResourceId: OTHER_IMAGE_ID, Data: { ImageId: OTHER_IMAGE_ID, ImageName: newName } });
    expect(createImageInputs()).toHaveLength(1);
    expect(createImageInputs()[0]).toMatchObject({
      Name: newName,
      InstanceId: prop === 'InstanceId' ? 'i-0aaaaaaaaaaaaaaaa' : BUILDER,
      NoReboot: prop === 'NoReboot',
    });
  });

  test('adopts the old image again when a rollback asks for the old properties', async () => {
    const oldProps = {};
    const newProps = { RebakeTrigger: 'v2' };
    const images = simulateEc2();

    const created = await onEvent(makeEvent('Create', oldProps));
    const updated = await onEvent(makeEvent('Update', newProps, { physicalId: created.PhysicalResourceId, oldProps }));
    ec2.resetHistory();
    const rolledBack = await onEvent(makeEvent('Update', oldProps, { physicalId: updated.PhysicalResourceId, oldProps: newProps }));

    expect(updated.PhysicalResourceId).not.toBe(created.PhysicalResourceId);
    expect(rolledBack).toEqual({
      PhysicalResourceId: created.PhysicalResourceId,
      Data: { ImageId: created.PhysicalResourceId, ImageName: nameFor(oldProps) },
    });
    expect(ec2).not.toHaveReceivedCommand(CreateImageCommand);
    expect(images).toHaveLength(2);
  });

  test('bakes when the current physical id is not an image id', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    const response = await onEvent(makeEvent('Update', {}, { physicalId: 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED', oldProps: {} }));

    expect(response.PhysicalResourceId).toBe(IMAGE_ID);
    expect(ec2).toHaveReceivedCommandTimes(CreateImageCommand, 1);
  });
});

describe('isComplete for Create and Update', () => {
  const availableImage = (name = nameFor()): Image => ({ ImageId: IMAGE_ID, Name: name, State: 'available' });

  test('answers not complete with exactly one DescribeImages call while the image is pending', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: new Date().toISOString() }] });

    const response = await isComplete(completeEvent('Create'));

    expect(response).toEqual({ IsComplete: false });
    expect(ec2.calls()).toHaveLength(1);
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, { ImageIds: [IMAGE_ID] });
  });

  test('stops the builder by default and returns the image id and name once the image is available', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage('web-from-ec2')] });
    ec2.on(StopInstancesCommand).resolves({});

    const response = await isComplete(completeEvent('Create'));

    expect(response).toEqual({ IsComplete: true, Data: { ImageId: IMAGE_ID, ImageName: 'web-from-ec2' } });
    expect(ec2).toHaveReceivedCommandWith(StopInstancesCommand, { InstanceIds: [BUILDER] });
    expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
  });

  test('stops the builder when BuilderAfterBake is stop', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(StopInstancesCommand).resolves({});

    await isComplete(completeEvent('Update', { BuilderAfterBake: 'stop' }));

    expect(ec2).toHaveReceivedCommandTimes(StopInstancesCommand, 1);
    expect(ec2).toHaveReceivedCommandWith(StopInstancesCommand, { InstanceIds: [BUILDER] });
    expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
  });

  test('terminates the builder when BuilderAfterBake is terminate', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(TerminateInstancesCommand).resolves({});

    const response = await isComplete(completeEvent('Create', { BuilderAfterBake: 'terminate' }));

    expect(response.IsComplete).toBe(true);
    expect(ec2).toHaveReceivedCommandWith(TerminateInstancesCommand, { InstanceIds: [BUILDER] });
    expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
  });

  test('leaves the builder running when BuilderAfterBake is keep-running', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });

    const response = await isComplete(completeEvent('Create', { BuilderAfterBake: 'keep-running' }));

    expect(response.IsComplete).toBe(true);
    expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
    expect(ec2).not.toHaveReceivedCommand(TerminateInstancesCommand);
    expect(ec2.calls()).toHaveLength(1);
  });

  test('falls back to the derived name when EC2 does not report the image name', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'available' }] });

    const response = await isComplete(completeEvent('Create', { BuilderAfterBake: 'keep-running' }));

    expect(response.Data).toEqual({ ImageId: IMAGE_ID, ImageName: nameFor() });
  });

  test.each(['IncorrectInstanceState', 'InvalidInstanceID.NotFound'])(
    'completes when stopping the builder fails with %s because it is already gone',
    async (code) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
      ec2.on(StopInstancesCommand).rejects(serviceError(code));

      await expect(isComplete(completeEvent('Create'))).resolves.toMatchObject({ IsComplete: true });
    },
  );

  test('completes when terminating an already terminated builder fails with InvalidInstanceID.NotFound', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(TerminateInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound'));

    await expect(isComplete(completeEvent('Create', { BuilderAfterBake: 'terminate' }))).resolves.toMatchObject({ IsComplete: true });
  });

  test('fails naming the builder when stopping it fails for another reason', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [availableImage()] });
    ec2.on(StopInstancesCommand).rejects(serviceError('UnauthorizedOperation', 'not allowed to stop'));

    const failure = isComplete(completeEvent('Create'));

    await expect(failure).rejects.toThrow(`Could not stop builder ${BUILDER}`);
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

    const failure = isComplete(completeEvent('Create'));

    await expect(failure).rejects.toThrow(IMAGE_ID);
    await expect(failure).rejects.toThrow(BUILDER);
    await expect(failure).rejects.toThrow('is failed');
    await expect(failure).rejects.toThrow('Server.InternalError: snapshot could not be created');
    await expect(failure).rejects.toThrow('cfn-init');
    expect(ec2).not.toHaveReceivedCommand(StopInstancesCommand);
  });

  test('fails with the image id when DescribeImages says the image does not exist', async () => {
    ec2.on(DescribeImagesCommand).rejects(serviceError('InvalidAMIID.NotFound'));

    const failure = isComplete(completeEvent('Create'));

    await expect(failure).rejects.toThrow(IMAGE_ID);
    await expect(failure).rejects.toThrow('not found');
  });

  test('fails with the image id when DescribeImages returns no image', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });

    const failure = isComplete(completeEvent('Update'));

    await expect(failure).rejects.toThrow(IMAGE_ID);
    await expect(failure).rejects.toThrow('not found');
  });

  test('passes on other DescribeImages errors unchanged', async () => {
    const error = serviceError('RequestLimitExceeded');
    ec2.on(DescribeImagesCommand).rejects(error);

    await expect(isComplete(completeEvent('Create'))).rejects.toBe(error);
  });

  test('fails naming bakeTimeout and its seconds when the image stays pending too long', async () => {
    ec2.on(DescribeImagesCommand).resolves({
      Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: new Date(Date.now() - 2 * 3600 * 1000).toISOString() }],
    });

    const failure = isComplete(completeEvent('Create', { BakeTimeoutSeconds: '3600' }));

    await expect(failure).rejects.toThrow('bakeTimeout');
    await expect(failure).rejects.toThrow('3600 s');
    await expect(failure).rejects.toThrow(IMAGE_ID);
  });

  test('keeps waiting while a pending image is within the bake timeout', async () => {
    ec2.on(DescribeImagesCommand).resolves({
      Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: new Date(Date.now() - 60 * 1000).toISOString() }],
    });

    await expect(isComplete(completeEvent('Create', { BakeTimeoutSeconds: '3600' }))).resolves.toEqual({ IsComplete: false });
  });

  test('keeps waiting on an old pending image when no bake timeout is set', async () => {
    ec2.on(DescribeImagesCommand).resolves({
      Images: [{ ImageId: IMAGE_ID, State: 'pending', CreationDate: '2000-01-01T00:00:00.000Z' }],
    });

    await expect(isComplete(completeEvent('Create'))).resolves.toEqual({ IsComplete: false });
  });

  test('rejects an unknown request type', async () => {
    const event = { ...completeEvent('Create'), RequestType: 'Refresh' } as unknown as IsCompleteRequest;

    await expect(isComplete(event)).rejects.toThrow('Unknown request type: Refresh');
    expect(ec2.calls()).toHaveLength(0);
  });
});

describe('isComplete for Delete', () => {
  test('is complete at once without calling EC2', async () => {
    await expect(isComplete(completeEvent('Delete'))).resolves.toEqual({ IsComplete: true });
    expect(ec2.calls()).toHaveLength(0);
  });
});

describe('onEvent Delete', () => {
  const name = nameFor();
  const deleteEvent = (props: Record<string, string> = {}, physicalId = IMAGE_ID) => makeEvent('Delete', props, { physicalId });
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

  test('deregisters the image, then deletes its snapshots and those found by tag', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [{ SnapshotId: 'snap-00000000000000002' }, { SnapshotId: 'snap-00000000000000003' }],
    });

    const response = await onEvent(deleteEvent());

    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID });
    expect(ec2).toHaveReceivedCommandWith(DescribeImagesCommand, { ImageIds: [IMAGE_ID] });
    expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
      OwnerIds: ['self'],
      Filters: [
        { Name: 'tag:cdk-baked-image:image-name', Values: [name] },
        { Name: 'tag:cdk-baked-image:stack-id', Values: [STACK_ID] },
        { Name: 'tag:cdk-baked-image:logical-id', Values: [LOGICAL_ID] },
      ],
    });
    expect(ec2).toHaveReceivedCommandWith(DeregisterImageCommand, { ImageId: IMAGE_ID });
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

    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });

    expect(ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(ec2).not.toHaveReceivedCommand(DeleteSnapshotCommand);
    expect(warnSpy).toHaveBeenCalledWith(expect.stringContaining(IMAGE_ID));
  });

  test.each([
    ['DescribeImages throws InvalidAMIID.NotFound', () => ec2.on(DescribeImagesCommand).rejects(serviceError('InvalidAMIID.NotFound'))],
    ['DescribeImages returns no image', () => ec2.on(DescribeImagesCommand).resolves({ Images: [] })],
  ])('still deletes the snapshots found by tag when the image is already gone (%s)', async (_case, arrange) => {
    arrange();
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-00000000000000003' }] });

    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });

    expect(ec2).not.toHaveReceivedCommand(DeregisterImageCommand);
    expect(ec2).toHaveReceivedCommandWith(DescribeSnapshotsCommand, {
      Filters: expect.arrayContaining([{ Name: 'tag:cdk-baked-image:image-name', Values: [name] }]),
    });
    expect(deletedSnapshots()).toEqual(['snap-00000000000000003']);
  });

  test.each(['InvalidAMIID.Unavailable', 'InvalidAMIID.NotFound'])('succeeds when DeregisterImage answers %s', async (code) => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeregisterImageCommand).rejects(serviceError(code));

    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
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

    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
    expect(deletedSnapshots()).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
  });

  test('keeps a snapshot another image still uses and warns with its id', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000001' }).rejects(serviceError('InvalidSnapshot.InUse'));

    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });

    expect(deletedSnapshots()).toEqual(['snap-00000000000000001', 'snap-00000000000000002']);
    const warnings = warnSpy.mock.calls.map((args) => String(args[0]));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('snap-00000000000000001');
    expect(JSON.parse(warnings[0])).toMatchObject({ level: 'warn', snapshotId: 'snap-00000000000000001', imageId: IMAGE_ID });
  });

  test('fails naming the snapshot when DeleteSnapshot fails for another reason', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage()] });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand, { SnapshotId: 'snap-00000000000000002' }).rejects(awsError('UnauthorizedOperation', 'not allowed'));

    const failure = onEvent(deleteEvent());

    await expect(failure).rejects.toThrow('snap-00000000000000002');
    await expect(failure).rejects.toThrow('UnauthorizedOperation: not allowed');
  });

  test('keeps image and snapshots without any EC2 call when Removal is retain', async () => {
    await expect(onEvent(deleteEvent({ Removal: 'retain' }))).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
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
    ec2.on(DescribeImagesCommand)
      .resolvesOnce({ Images: [ownImage()] })
      .rejects(serviceError('InvalidAMIID.NotFound'));
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-00000000000000001' }] });
    ec2.on(DeleteSnapshotCommand)
      .resolvesOnce({})
      .resolvesOnce({})
      .rejects(serviceError('InvalidSnapshot.NotFound'));

    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
    await expect(onEvent(deleteEvent())).resolves.toEqual({ PhysicalResourceId: IMAGE_ID });

    expect(ec2).toHaveReceivedCommandTimes(DeregisterImageCommand, 1);
    expect(ec2).toHaveReceivedCommandTimes(DeleteSnapshotCommand, 3);
  });
});

describe('logging', () => {
  const responseUrl = 'https://example.com/presigned?X-Amz-Signature=secret';

  function loggedText(): string {
    return [...logSpy.mock.calls, ...warnSpy.mock.calls].map((args) => args.map(String).join(' ')).join('\n');
  }

  test('never writes the ResponseURL to the logs', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({
      Images: [{
        ImageId: IMAGE_ID,
        Name: nameFor(),
        State: 'available',
        Tags: ownTags(nameFor()),
        BlockDeviceMappings: [{ Ebs: { SnapshotId: 'snap-00000000000000001' } }],
      }],
    });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

    await onEvent(makeEvent('Create', {}, { responseUrl }));
    await onEvent(makeEvent('Update', { Removal: 'retain' }, { physicalId: IMAGE_ID, oldProps: {}, responseUrl }));
    await isComplete({ ...makeEvent('Create', {}, { responseUrl }), PhysicalResourceId: IMAGE_ID });
    await onEvent(makeEvent('Delete', {}, { physicalId: IMAGE_ID, responseUrl }));

    const text = loggedText();
    expect(logSpy).toHaveBeenCalled();
    expect(warnSpy).toHaveBeenCalled();
    expect(text).toContain('request-create-0001');
    expect(text).not.toContain('X-Amz-Signature');
    expect(text).not.toContain('example.com');
  });

  test('writes one JSON object per log line', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(CreateImageCommand).resolves({ ImageId: IMAGE_ID });

    await onEvent(makeEvent('Create'));

    expect(logSpy.mock.calls.length).toBeGreaterThan(0);
    for (const args of logSpy.mock.calls) {
      expect(args).toHaveLength(1);
      expect(JSON.parse(String(args[0]))).toMatchObject({ level: 'info', message: expect.any(String) });
    }
    expect(logSpy.mock.calls.map((args) => JSON.parse(String(args[0])))).toContainEqual(
      expect.objectContaining({ message: 'onEvent', requestType: 'Create', logicalResourceId: LOGICAL_ID }),
    );
  });
});
