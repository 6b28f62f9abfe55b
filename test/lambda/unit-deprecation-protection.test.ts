import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  DisableImageDeregistrationProtectionCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent } from '../../lambda/bake-image';
import { createEvent, deleteEvent, IMAGE_ID, isCompleteEvent, ownershipTags, serviceError, setUpHandlerTests } from '../support/fixtures';

const ec2 = mockClient(EC2Client);

setUpHandlerTests(ec2);

describe('deprecation', () => {
  test('moves a deprecation date already in the past to a minute from now, since EC2 refuses past dates', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'available', CreationDate: '2020-01-01T00:00:00.000Z' }] });
    ec2.on(StopInstancesCommand).resolves({});
    ec2.on(EnableImageDeprecationCommand).resolves({ Return: true });

    const before = Date.now();
    await isComplete(isCompleteEvent(createEvent({ deprecateAfterSeconds: 3600 })));

    const at = ec2.commandCalls(EnableImageDeprecationCommand)[0].args[0].input.DeprecateAt!.getTime();
    expect(at).toBeGreaterThanOrEqual(before + 60_000);
    expect(at).toBeLessThan(Date.now() + 61_000);
  });

  test('names the image and the EC2 error when the deprecation cannot be set', async () => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, State: 'available', CreationDate: new Date().toISOString() }] });
    ec2.on(StopInstancesCommand).resolves({});
    ec2.on(EnableImageDeprecationCommand).rejects(Object.assign(new Error('not authorized'), { name: 'UnauthorizedOperation' }));

    await expect(isComplete(isCompleteEvent(createEvent({ deprecateAfterSeconds: 3600 }))))
      .rejects.toThrow(`EnableImageDeprecation for image ${IMAGE_ID} failed: UnauthorizedOperation: not authorized`);
  });
});

describe('deregistration protection on Delete', () => {
  test('says the Delete must be repeated after the 24-hour cooldown of protection set with a cooldown', async () => {
    ec2.on(DescribeImagesCommand).resolves({
      Images: [{
        ImageId: IMAGE_ID,
        State: 'available',
        DeregistrationProtection: 'enabled-with-cooldown',
        Tags: ownershipTags(),
      }],
    });
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    ec2.on(DisableImageDeregistrationProtectionCommand).resolves({});

    await expect(onEvent(deleteEvent())).rejects.toThrow(/deregistration protection with a cooldown .* after the 24-hour cooldown/);
    expect(ec2.commandCalls(DisableImageDeregistrationProtectionCommand)).toHaveLength(1);
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
  });
});

describe('deregistration protection of an image DescribeImages does not show', () => {
  const notFound = () => serviceError('InvalidAMIID.NotFound', 'not found');

  beforeEach(() => {
    // Neither the listing of the resource's images nor DescribeImages by id shows it: it may just not be visible yet.
    ec2.on(DescribeImagesCommand).resolves({ Images: [] });
    ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).rejects(notFound());
    ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: 'snap-0123456789abcdef0' }] });
    ec2.on(DeleteSnapshotCommand).resolves({});
  });

  test('is lifted as the properties asked, then the physical id is deregistered', async () => {
    ec2.on(DisableImageDeregistrationProtectionCommand).resolves({});
    ec2.on(DeregisterImageCommand).resolves({});

    await expect(onEvent(deleteEvent({ deregistrationProtection: true }))).resolves.toEqual({
      PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) },
    });

    const order = ec2.calls().map((call) => call.args[0].constructor.name);
    expect(order.indexOf('DisableImageDeregistrationProtectionCommand')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('DisableImageDeregistrationProtectionCommand')).toBeLessThan(order.indexOf('DeregisterImageCommand'));
    expect(ec2.commandCalls(DisableImageDeregistrationProtectionCommand).map((call) => call.args[0].input)).toEqual([{ ImageId: IMAGE_ID }]);
    expect(ec2.commandCalls(DeregisterImageCommand).map((call) => call.args[0].input))
      .toEqual([{ ImageId: IMAGE_ID, DeleteAssociatedSnapshots: true }]);
  });

  test('is not lifted when the properties did not ask for it', async () => {
    ec2.on(DeregisterImageCommand).resolves({});

    await onEvent(deleteEvent());

    expect(ec2.commandCalls(DisableImageDeregistrationProtectionCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(1);
  });

  test('an image that is really gone is fine: both calls may answer InvalidAMIID.NotFound', async () => {
    ec2.on(DisableImageDeregistrationProtectionCommand).rejects(notFound());
    ec2.on(DeregisterImageCommand).rejects(notFound());

    await expect(onEvent(deleteEvent({ deregistrationProtection: true }))).resolves.toEqual({
      PhysicalResourceId: IMAGE_ID, Data: { RequestStartedAt: expect.any(String) },
    });
    expect(ec2.commandCalls(DeleteSnapshotCommand).map((call) => call.args[0].input)).toEqual([{ SnapshotId: 'snap-0123456789abcdef0' }]);
  });
});
