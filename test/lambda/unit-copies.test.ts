import {
  CopyImageCommand,
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent } from '../../lambda/bake-image';
import type { IsCompleteRequest, OnEventRequest } from '../../lambda/bake-image/types';

const ec2 = mockClient(EC2Client);
const IMAGE_ID = 'ami-0123456789abcdef0';
const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/S/1';
const TAGS = [
  { Key: 'cdk-baked-image:managed-by', Value: 'cdk-baked-image' },
  { Key: 'cdk-baked-image:stack-id', Value: STACK_ID },
  { Key: 'cdk-baked-image:logical-id', Value: 'Image' },
];
const BASE = { InstanceId: 'i-0123456789abcdef0', NamePrefix: 'web' };

function request(type: 'Create' | 'Update', props: Record<string, unknown>, oldProps?: Record<string, unknown>): IsCompleteRequest & OnEventRequest {
  return {
    RequestType: type,
    RequestId: 'r1',
    StackId: STACK_ID,
    LogicalResourceId: 'Image',
    ResourceType: 'Custom::BakedImage',
    PhysicalResourceId: IMAGE_ID,
    ResourceProperties: { ...BASE, ...props },
    OldResourceProperties: oldProps ? { ...BASE, ...oldProps } : undefined,
  };
}

const savedRegion = process.env.AWS_REGION;

beforeEach(() => {
  ec2.reset();
  process.env.AWS_REGION = 'us-east-1';
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({
    Images: [{ ImageId: IMAGE_ID, Name: 'web-1', State: 'available', CreationDate: new Date().toISOString(), Tags: TAGS }],
  });
  ec2.on(StopInstancesCommand).resolves({});
  ec2.on(CreateTagsCommand).resolves({});
});

afterEach(() => {
  jest.restoreAllMocks();
  process.env.AWS_REGION = savedRegion;
});

describe('copies', () => {
  test('a refused CopyImage fails naming the image, its name, the region and the EC2 error', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).rejects(Object.assign(new Error('not authorized to use the key'), { name: 'UnauthorizedOperation' }));
    await expect(isComplete(request('Create', { CopyToRegions: ['us-west-2'] })))
      .rejects.toThrow(`CopyImage of image ${IMAGE_ID} (web-1) to us-west-2 failed: UnauthorizedOperation: not authorized to use the key`);
  });

  test('a copy another poll started meanwhile (duplicate name) is waited for, not an error', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).rejects(Object.assign(new Error('AMI name web-1 is already in use'), { name: 'InvalidAMIName.Duplicate' }));
    await expect(isComplete(request('Create', { CopyToRegions: ['us-west-2'] }))).resolves.toEqual({ IsComplete: false });
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(0);
  });

  test('the stack\'s own region in the list is not copied to; the image answers for it', async () => {
    const answer = await isComplete(request('Create', { CopyToRegions: ['us-east-1'] }));
    expect(answer).toEqual({ IsComplete: true, Data: { 'ImageId': IMAGE_ID, 'ImageName': 'web-1', 'ImageId.us-east-1': IMAGE_ID } });
    expect(ec2.commandCalls(CopyImageCommand)).toHaveLength(0);
  });

  test('records the copy regions on the image once, before copying, and not again while they are the same', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).resolves({ ImageId: 'ami-0aaaaaaaaaaaaaaaa' });
    await isComplete(request('Create', { CopyToRegions: ['us-west-2', 'eu-west-1'] }));
    expect(ec2.commandCalls(CreateTagsCommand).map((call) => call.args[0].input)).toEqual([
      { Resources: [IMAGE_ID], Tags: [{ Key: 'cdk-baked-image:copy-regions', Value: 'eu-west-1 us-west-2' }] },
    ]);
    const order = ec2.calls().map((call) => call.args[0].constructor.name);
    expect(order.indexOf('CreateTagsCommand')).toBeLessThan(order.indexOf('CopyImageCommand'));
    expect(order.indexOf('CreateTagsCommand')).toBeGreaterThanOrEqual(0);

    ec2.reset();
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({
      Images: [{
        ImageId: IMAGE_ID,
        Name: 'web-1',
        State: 'available',
        CreationDate: new Date().toISOString(),
        Tags: [...TAGS, { Key: 'cdk-baked-image:copy-regions', Value: 'eu-west-1 us-west-2' }],
      }],
    });
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).resolves({ ImageId: 'ami-0aaaaaaaaaaaaaaaa' });
    await isComplete(request('Create', { CopyToRegions: ['us-west-2'] }));
    expect(ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
  });

  test('an Update that drops a region keeps that copy with removalPolicy RETAIN', async () => {
    await expect(onEvent(request('Update', { CopyToRegions: [], Removal: 'retain' }, { CopyToRegions: ['us-west-2'], Removal: 'retain' })))
      .resolves.toEqual({ PhysicalResourceId: IMAGE_ID });
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DescribeSnapshotsCommand)).toHaveLength(0);
  });

  test('rejects copy keys that are not ARNs of a key in their region', async () => {
    await expect(isComplete(request('Create', {
      CopyToRegions: ['eu-west-1'],
      CopyKmsKeyIds: { 'eu-west-1': 'arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' },
    }))).rejects.toThrow(/Property CopyKmsKeyIds must map each region to the ARN of a KMS key in that region, got eu-west-1: 'arn:aws:kms:us-west-2:/);
    await expect(isComplete(request('Create', { CopyToRegions: ['Europe'] }))).rejects.toThrow(/Property CopyToRegions must list region names \(us-west-2\), got 'Europe'/);
  });
});
