import { CloudFormationClient, DescribeStackResourceCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DeregisterImageCommand, DescribeImagesCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { onEvent } from '../../lambda/bake-image';
import type { OnEventRequest } from '../../lambda/bake-image/types';

const ec2 = mockClient(EC2Client);
const cfn = mockClient(CloudFormationClient);
const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/Shop/1';
const OLD = 'ami-0000000000000000a';
const OWN_TAGS = [
  { Key: 'cdk-baked-image:managed-by', Value: 'cdk-baked-image' },
  { Key: 'cdk-baked-image:stack-id', Value: STACK_ID },
  { Key: 'cdk-baked-image:logical-id', Value: 'Image' },
];

function deleteEvent(physicalId: string, keep = '2'): OnEventRequest {
  return {
    RequestType: 'Delete',
    RequestId: 'r1',
    StackId: STACK_ID,
    LogicalResourceId: 'Image',
    ResourceType: 'Custom::BakedImage',
    PhysicalResourceId: physicalId,
    ResourceProperties: { InstanceId: 'i-0123456789abcdef0', NamePrefix: 'web', KeepSupersededImages: keep },
  };
}

beforeEach(() => {
  ec2.reset();
  cfn.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});

afterEach(() => jest.restoreAllMocks());

describe('keeping superseded images', () => {
  test('names the stack when CloudFormation cannot say why the image is deleted, and deletes nothing', async () => {
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));

    await expect(onEvent(deleteEvent(OLD))).rejects.toThrow('DescribeStacks for Shop (to decide which images to keep) failed: AccessDenied: not authorized');
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
  });

  test('keeps a replaced image when no more than the kept number exist, without deregistering anything', async () => {
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'Shop', StackStatus: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', CreationTime: new Date() }] });
    cfn.on(DescribeStackResourceCommand).resolves({
      StackResourceDetail: {
        LogicalResourceId: 'Image', PhysicalResourceId: 'ami-0000000000000000c', ResourceType: 'Custom::BakedImage', ResourceStatus: 'UPDATE_COMPLETE', LastUpdatedTimestamp: new Date(),
      },
    });
    ec2.on(DescribeImagesCommand).resolves({
      Images: [
        { ImageId: 'ami-0000000000000000c', CreationDate: '2026-03-01T00:00:00.000Z', Tags: OWN_TAGS },
        { ImageId: OLD, CreationDate: '2026-02-01T00:00:00.000Z', Tags: OWN_TAGS },
      ],
    });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });

    await onEvent(deleteEvent(OLD));

    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DescribeImagesCommand)[0].args[0].input.Filters).toEqual([
      { Name: 'tag:cdk-baked-image:stack-id', Values: [STACK_ID] },
      { Name: 'tag:cdk-baked-image:logical-id', Values: ['Image'] },
    ]);
  });
});
