import {
  CopyImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent } from '../../lambda/bake-image';
import { ec2 as homeClient } from '../../lambda/bake-image/clients';
import { RemovalMode } from '../../src/private/contract';
import {
  createEvent,
  HOME_REGION,
  IMAGE_ID,
  isCompleteEvent,
  ownershipTags,
  requestStarted,
  serviceError,
  setUpHandlerTests,
  updateEvent,
  withRawProperties,
} from '../support/fixtures';

const ec2 = mockClient(EC2Client);
const TAGS = ownershipTags();

const COPY_ID = 'ami-0bbbbbbbbbbbbbbbb';
const COPY_SNAPSHOT = 'snap-0bbbbbbbbbbbbbbbb';

/** The region a mocked call went to: the handler's own client serves the stack's region. */
async function regionOf(call: { thisValue: unknown }): Promise<string> {
  const client = call.thisValue as EC2Client;
  return client === homeClient ? HOME_REGION : client.config.region();
}

setUpHandlerTests(ec2);

beforeEach(() => {
  ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({
    Images: [{ ImageId: IMAGE_ID, Name: 'web-1', State: 'available', CreationDate: new Date().toISOString(), Tags: TAGS }],
  });
  ec2.on(StopInstancesCommand).resolves({});
  ec2.on(CreateTagsCommand).resolves({});
});

describe('copies', () => {
  test('a refused CopyImage fails naming the image, its name, the region and the EC2 error', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).rejects(Object.assign(new Error('not authorized to use the key'), { name: 'UnauthorizedOperation' }));
    await expect(isComplete(isCompleteEvent(createEvent({ copyToRegions: ['us-west-2'] }))))
      .rejects.toThrow(`CopyImage of image ${IMAGE_ID} (web-1) to us-west-2 failed: UnauthorizedOperation: not authorized to use the key`);
  });

  test('a copy another poll started meanwhile (duplicate name) is waited for, not an error', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).rejects(Object.assign(new Error('AMI name web-1 is already in use'), { name: 'InvalidAMIName.Duplicate' }));
    await expect(isComplete(isCompleteEvent(createEvent({ copyToRegions: ['us-west-2'] })))).resolves.toEqual({ IsComplete: false });
    expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(0);
  });

  test('the stack\'s own region in the list is not copied to; the image answers for it', async () => {
    const answer = await isComplete(isCompleteEvent(createEvent({ copyToRegions: ['us-east-1'] })));
    expect(answer).toEqual({ IsComplete: true, Data: { 'ImageId': IMAGE_ID, 'ImageName': 'web-1', 'ImageId.us-east-1': IMAGE_ID } });
    expect(ec2.commandCalls(CopyImageCommand)).toHaveLength(0);
  });

  test('records the copy regions on the image once, before copying, and not again while they are the same', async () => {
    ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [] });
    ec2.on(CopyImageCommand).resolves({ ImageId: 'ami-0aaaaaaaaaaaaaaaa' });
    await isComplete(isCompleteEvent(createEvent({ copyToRegions: ['us-west-2', 'eu-west-1'] })));
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
    await isComplete(isCompleteEvent(createEvent({ copyToRegions: ['us-west-2'] })));
    expect(ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
  });

  test('an Update that drops a region keeps that copy with removalPolicy RETAIN', async () => {
    const before = Date.now();
    const response = await onEvent(updateEvent({ copyToRegions: [], removal: RemovalMode.RETAIN }, { copyToRegions: ['us-west-2'], removal: RemovalMode.RETAIN }));
    expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) } });
    expect(Date.parse(response.Data!.RequestStartedAt)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(response.Data!.RequestStartedAt)).toBeLessThanOrEqual(Date.now());
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DescribeSnapshotsCommand)).toHaveLength(0);
  });

  describe('an Update that drops a region with removalPolicy DESTROY', () => {
    beforeEach(() => {
      ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({
        Images: [{ ImageId: COPY_ID, Name: 'web-1', State: 'available', Tags: TAGS, BlockDeviceMappings: [{ Ebs: { SnapshotId: COPY_SNAPSHOT } }] }],
      });
      ec2.on(DescribeImagesCommand, { ImageIds: [COPY_ID] }).resolves({
        Images: [{ ImageId: COPY_ID, Name: 'web-1', State: 'available', Tags: TAGS, BlockDeviceMappings: [{ Ebs: { SnapshotId: COPY_SNAPSHOT } }] }],
      });
      ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
      ec2.on(DeregisterImageCommand).resolves({});
    });

    test('deregisters that copy in its region with its snapshots, and keeps the image', async () => {
      ec2.on(DeleteSnapshotCommand).resolves({});

      const response = await onEvent(updateEvent({ copyToRegions: [] }, { copyToRegions: ['us-west-2'] }));

      expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) } });
      const deregistered = ec2.commandCalls(DeregisterImageCommand);
      expect(deregistered.map((call) => call.args[0].input)).toEqual([{ ImageId: COPY_ID, DeleteAssociatedSnapshots: true }]);
      expect(await regionOf(deregistered[0])).toBe('us-west-2');
      const snapshots = ec2.commandCalls(DeleteSnapshotCommand);
      expect(snapshots.map((call) => call.args[0].input)).toEqual([{ SnapshotId: COPY_SNAPSHOT }]);
      expect(await regionOf(snapshots[0])).toBe('us-west-2');
    });

    test('hands the copy\'s snapshots still in use to isComplete, named with the copy\'s region', async () => {
      ec2.on(DeleteSnapshotCommand).rejects(serviceError('InvalidSnapshot.InUse'));

      const response = await onEvent(updateEvent({ copyToRegions: [] }, { copyToRegions: ['us-west-2'] }));

      expect(response).toEqual({ PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String), SnapshotsInUse: `us-west-2/${COPY_SNAPSHOT}` } });
    });

    test('isComplete deletes those snapshots in the copy\'s region, then finishes the kept image', async () => {
      ec2.on(DeleteSnapshotCommand).resolves({});

      const answer = await isComplete(isCompleteEvent(updateEvent({ copyToRegions: [] }, { copyToRegions: ['us-west-2'] }), IMAGE_ID, {
        ...requestStarted(30),
        SnapshotsInUse: `us-west-2/${COPY_SNAPSHOT}`,
      }));

      expect(answer).toEqual({ IsComplete: true, Data: { ImageId: IMAGE_ID, ImageName: 'web-1' } });
      const snapshots = ec2.commandCalls(DeleteSnapshotCommand);
      expect(snapshots.map((call) => call.args[0].input)).toEqual([{ SnapshotId: COPY_SNAPSHOT }]);
      expect(await regionOf(snapshots[0])).toBe('us-west-2');
    });
  });

  describe('bakeTimeout, counted from the request\'s start', () => {
    // An image made long ago, copied to a region this Update adds: the copy's wait is this request's.
    beforeEach(() => {
      ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).resolves({
        Images: [{ ImageId: IMAGE_ID, Name: 'web-1', State: 'available', CreationDate: '2024-01-01T00:00:00.000Z', Tags: TAGS }],
      });
      ec2.on(DescribeImagesCommand, { Owners: ['self'] }).resolves({ Images: [{ ImageId: COPY_ID, Name: 'web-1', State: 'pending', Tags: TAGS }] });
    });

    test('does not fail a copy of an old image that this request just started', async () => {
      await expect(isComplete(isCompleteEvent(updateEvent({ copyToRegions: ['us-west-2'], bakeTimeoutSeconds: 3000 }, {}), IMAGE_ID, requestStarted(60))))
        .resolves.toEqual({ IsComplete: false });
      expect(ec2.commandCalls(StopInstancesCommand)).toHaveLength(0);
    });

    test('fails naming the pending regions once bakeTimeout has passed since the request started', async () => {
      await expect(isComplete(isCompleteEvent(updateEvent({ copyToRegions: ['us-west-2'], bakeTimeoutSeconds: 3000 }, {}), IMAGE_ID, requestStarted(3100))))
        .rejects.toThrow(new RegExp(`^The copies of image ${IMAGE_ID} to us-west-2 are still pending after 310\\d s, longer than bakeTimeout \\(3000 s\\)`));
    });
  });

  test('rejects copy keys that are not ARNs of a key in their region', async () => {
    // Malformed properties for the decoder: written by hand, over the encoded ones.
    await expect(isComplete(withRawProperties(isCompleteEvent(createEvent()), {
      CopyToRegions: ['eu-west-1'],
      CopyKmsKeyIds: { 'eu-west-1': 'arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' },
    }))).rejects.toThrow(/Property CopyKmsKeyIds must map each region to the ARN of a KMS key in that region, got eu-west-1: 'arn:aws:kms:us-west-2:/);
    await expect(isComplete(withRawProperties(isCompleteEvent(createEvent()), { CopyToRegions: ['Europe'] }))).rejects.toThrow(/Property CopyToRegions must list region names \(us-west-2\), got 'Europe'/);
  });
});
