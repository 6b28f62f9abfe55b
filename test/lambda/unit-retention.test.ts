import { CloudFormationClient, DescribeStackResourceCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  type Image,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { onEvent } from '../../lambda/bake-image';
import type { OnEventRequest } from '../../lambda/bake-image/types';
import { deleteEvent, ownershipTags, serviceError, setUpHandlerTests } from '../support/fixtures';

const ec2 = mockClient(EC2Client);
const cfn = mockClient(CloudFormationClient);
/** The stack is named in the failure messages: Shop. */
const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/Shop/1';
const OLD = 'ami-0000000000000000a';
const OWN_TAGS = ownershipTags(STACK_ID);

/** The Delete of the resource's image `physicalId`, keeping `keep` superseded images. */
function deleteOf(physicalId: string, keep = 2): OnEventRequest {
  return deleteEvent({ keepSuperseded: keep }, physicalId, { stackId: STACK_ID });
}

setUpHandlerTests(ec2, cfn);

const SUPERSEDED = 'ami-0000000000000000b';

/** An image of this resource with one snapshot. */
function ownImage(imageId: string, creationDate: string): Image {
  return {
    ImageId: imageId,
    Name: `web-${imageId.slice(-1)}`,
    State: 'available',
    CreationDate: creationDate,
    Tags: OWN_TAGS,
    BlockDeviceMappings: [{ Ebs: { SnapshotId: `snap-${imageId.slice(4)}` } }],
  };
}

/** The resource's images, as the listing by tag and DescribeImages by id show them. */
function imagesOfTheResource(images: Image[]): void {
  ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: images });
  for (const image of images) {
    ec2.on(DescribeImagesCommand, { ImageIds: [image.ImageId!] }).resolves({ Images: [image] });
  }
  ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
}

const deregistered = () => ec2.commandCalls(DeregisterImageCommand).map((call) => call.args[0].input.ImageId);

describe('keeping superseded images', () => {
  test('names the stack when CloudFormation cannot say why the image is deleted, and deletes nothing', async () => {
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDenied' }));

    await expect(onEvent(deleteOf(OLD))).rejects.toThrow('DescribeStacks for Shop (to decide which images to keep) failed: AccessDenied: not authorized');
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

    const response = await onEvent(deleteOf(OLD));

    expect(response).toEqual({ PhysicalResourceId: OLD, Data: { RequestStartedAt: expect.any(String) } });
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DescribeImagesCommand)[0].args[0].input.Filters).toEqual([
      { Name: 'tag:cdk-baked-image:stack-id', Values: [STACK_ID] },
      { Name: 'tag:cdk-baked-image:logical-id', Values: ['Image'] },
    ]);
  });
});

describe('deleting the superseded images kept', () => {
  test('returns the snapshots still in use of every image it deletes when the resource is removed', async () => {
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'Shop', StackStatus: 'DELETE_IN_PROGRESS', CreationTime: new Date() }] });
    imagesOfTheResource([ownImage(SUPERSEDED, '2026-03-01T00:00:00.000Z'), ownImage(OLD, '2026-02-01T00:00:00.000Z')]);
    ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse', 'in use'));

    const response = await onEvent(deleteOf(OLD));

    expect(deregistered()).toEqual([SUPERSEDED, OLD]);
    expect(response).toEqual({
      PhysicalResourceId: OLD,
      Data: { RequestStartedAt: expect.any(String), SnapshotsInUse: `us-east-1/snap-${SUPERSEDED.slice(4)} us-east-1/snap-${OLD.slice(4)}` },
    });
  });

  test('still deletes, with keepSupersededImages 0, the superseded images an earlier setting kept, once the resource is removed', async () => {
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'Shop', StackStatus: 'DELETE_IN_PROGRESS', CreationTime: new Date() }] });
    // The superseded image is older than the one the resource holds.
    imagesOfTheResource([ownImage(OLD, '2026-03-01T00:00:00.000Z'), ownImage(SUPERSEDED, '2026-02-01T00:00:00.000Z')]);

    await onEvent(deleteOf(OLD, 0));

    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(1);
    expect(deregistered()).toEqual([SUPERSEDED, OLD]);
  });

  test('with keepSupersededImages 0, a newer image of the resource is its replacement: deletes this one without asking CloudFormation', async () => {
    imagesOfTheResource([ownImage(SUPERSEDED, '2026-03-01T00:00:00.000Z'), ownImage(OLD, '2026-02-01T00:00:00.000Z')]);

    await onEvent(deleteOf(OLD, 0));

    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
    expect(deregistered()).toEqual([OLD]);
  });

  test('with keepSupersededImages 0 and no other image of the resource, deletes the image without asking CloudFormation', async () => {
    imagesOfTheResource([ownImage(OLD, '2026-02-01T00:00:00.000Z')]);

    await expect(onEvent(deleteOf(OLD, 0))).resolves.toEqual({ PhysicalResourceId: OLD, Data: { RequestStartedAt: expect.any(String) } });

    expect(cfn.calls()).toHaveLength(0);
    expect(deregistered()).toEqual([OLD]);
  });
});
