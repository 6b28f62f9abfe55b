/**
 * Fast snapshot restore (fastSnapshotRestoreZones) through the shipped handler bundle against moto_server. moto 5.2.1
 * has none: the harness proxy emulates it (moto-fast-snapshot-restores.ts), including EBS disabling it for a snapshot
 * its owner deletes. Every request is held to the synthesized handler policy (moto-suite.ts).
 */
import { DescribeImagesCommand, RegisterImageCommand } from '@aws-sdk/client-ec2';
import { customResourceEvent, imageProps, MOTO_STACK_ID as STACK_ID, MOTO_STACK_NAME as STACK_NAME, runToCompletion, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest } from '../../lambda/bake-image/types';
import { Attr, Prop } from '../../src/private/contract';

jest.setTimeout(60_000);

const LOGICAL_ID = 'FastImage';
const ZONES = ['us-east-1a', 'us-east-1b'];

const suite = useMotoSuite();

// The proxy keeps its consistency settings across tests (reset() forgets only the windows): no test leaks its own.
afterEach(() => suite.harness().proxy.setConsistency({}));

function props(instanceId: string, zones: string[] = ZONES, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return imageProps<unknown>(instanceId, 'fast', { ...(zones.length > 0 ? { [Prop.FAST_SNAPSHOT_RESTORE_ZONES]: zones } : {}), ...extra });
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Record<string, unknown>, physicalId?: string, oldProps?: Record<string, unknown>) {
  return customResourceEvent(type, LOGICAL_ID, resourceProperties, { physicalId, oldProps });
}

const complete = (request: ReturnType<typeof event>) => runToCompletion(suite.handler(), request);

async function snapshotOf(imageId: string): Promise<string> {
  const image = (await suite.harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
  const snapshots = (image?.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
  expect(snapshots).toHaveLength(1);
  return snapshots[0];
}

/** The zones where fast snapshot restore is on (enabling, optimizing or enabled) for a snapshot. */
function zonesOn(snapshotId: string): string[] {
  return Object.entries(suite.harness().proxy.fastSnapshotRestores(snapshotId))
    .filter(([, state]) => ['enabling', 'optimizing', 'enabled'].includes(state))
    .map(([zone]) => zone)
    .sort();
}

/** The fast snapshot restore calls since `from` (an index into the proxy's requests), as `Action zones`. */
function fastRestoreCalls(from = 0): string[] {
  return suite.harness().proxy.requests.slice(from)
    .filter((request) => /FastSnapshotRestores$/.test(request.action) && request.action !== 'DescribeFastSnapshotRestores')
    .map((request) => `${request.action} ${[...request.params.entries()].filter(([key]) => key.startsWith('AvailabilityZone.')).map(([, zone]) => zone).join(',')}`);
}

describe('fast snapshot restore through moto', () => {
  test('is enabled for the image\'s snapshot in each zone once the image is available, with one call', async () => {
    const imageId = await complete(event('Create', props(await suite.harness().launchBuilder())));

    expect(zonesOn(await snapshotOf(imageId))).toEqual(ZONES);
    expect(fastRestoreCalls()).toEqual([`EnableFastSnapshotRestores ${ZONES.join(',')}`]);
  });

  test('is neither read nor enabled without zones', async () => {
    const imageId = await complete(event('Create', props(await suite.harness().launchBuilder(), [])));

    expect(zonesOn(await snapshotOf(imageId))).toEqual([]);
    expect(suite.harness().proxy.actions().filter((action) => action.includes('FastSnapshotRestores'))).toEqual([]);
  });

  test('a retried Create adopts its image, whose fast snapshot restore is on already: not enabled again', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder()));
    const imageId = await complete(create);
    const from = suite.harness().proxy.requests.length;

    expect(await complete(create)).toBe(imageId);
    expect(fastRestoreCalls(from)).toEqual([]);
    expect(zonesOn(await snapshotOf(imageId))).toEqual(ZONES);
  });

  test('an Update that keeps the image and changes the zones disables the zones dropped and enables the zones added', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const before = props(instanceId);
    const imageId = await complete(event('Create', before));
    const from = suite.harness().proxy.requests.length;

    expect(await complete(event('Update', props(instanceId, ['us-east-1b', 'us-east-1c']), imageId, before))).toBe(imageId);

    expect(zonesOn(await snapshotOf(imageId))).toEqual(['us-east-1b', 'us-east-1c']);
    expect(fastRestoreCalls(from)).toEqual(['DisableFastSnapshotRestores us-east-1a', 'EnableFastSnapshotRestores us-east-1c']);
  });

  test('an Update that drops fastSnapshotRestoreZones disables it everywhere', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const before = props(instanceId);
    const imageId = await complete(event('Create', before));

    expect(await complete(event('Update', props(instanceId, []), imageId, before))).toBe(imageId);
    expect(zonesOn(await snapshotOf(imageId))).toEqual([]);
  });

  test('the Delete disables it before it deletes the snapshot (EBS would too, but not for a snapshot it keeps in use)', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder()));
    const imageId = await complete(create);
    const snapshotId = await snapshotOf(imageId);
    const from = suite.harness().proxy.requests.length;

    await suite.handler().onEvent(event('Delete', create.ResourceProperties, imageId));

    expect(zonesOn(snapshotId)).toEqual([]);
    expect(fastRestoreCalls(from)).toEqual([`DisableFastSnapshotRestores ${ZONES.join(',')}`]);
    const actions = suite.harness().proxy.actions(from);
    expect(actions.indexOf('DisableFastSnapshotRestores')).toBeLessThan(actions.indexOf('DeregisterImage'));
    const left = await suite.harness().leftovers(['us-east-1']);
    expect({ images: left.images, snapshots: left.snapshots }).toEqual({ images: [], snapshots: [] });
  });

  test('a superseded image kept for rollback (keepSupersededImages) loses its fast snapshot restore; the new one has it', async () => {
    const oldProps = props(await suite.harness().launchBuilder(), ZONES, { [Prop.KEEP_SUPERSEDED]: '1' });
    const oldImage = await complete(event('Create', oldProps));
    const newProps = props(await suite.harness().launchBuilder(), ZONES, { [Prop.KEEP_SUPERSEDED]: '1' });
    const newImage = await complete(event('Update', newProps, oldImage, oldProps));

    // The cleanup Delete CloudFormation sends for the replaced image after a successful update.
    suite.harness().proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: newImage } });
    await suite.handler().onEvent(event('Delete', oldProps, oldImage));

    expect(zonesOn(await snapshotOf(oldImage))).toEqual([]);
    expect(zonesOn(await snapshotOf(newImage))).toEqual(ZONES);
  });

  test('a snapshot EC2 keeps in use past the Delete\'s deadline does not keep fast snapshot restore', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder()));
    const imageId = await complete(create);
    const snapshotId = await snapshotOf(imageId);
    // Another image registered from the snapshot keeps it in use: EC2 will not delete it.
    await suite.harness().ec2ViaProxy.send(new RegisterImageCommand({
      Name: 'registered-from-the-fast-snapshot',
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snapshotId } }],
    }));

    const deleted = await suite.handler().onEvent(event('Delete', create.ResourceProperties, imageId));

    expect(deleted.Data?.[Attr.SNAPSHOTS_IN_USE]).toBe(`us-east-1/${snapshotId}`);
    expect(zonesOn(snapshotId)).toEqual([]);
  });

  test('with EC2\'s consistency faults on, an IMDSv2-only image with fast snapshot restore bakes, and its Delete leaves nothing on', async () => {
    // The image unseen by the first poll, its attribute shown late, its snapshot in use for a while after deregistration.
    suite.harness().proxy.setConsistency({ newImageHiddenFor: 1, changedAttributeStaleFor: 2, deregisteredSnapshotsInUseFor: 2 });
    const create = event('Create', props(await suite.harness().launchBuilder(), ZONES, { [Prop.REQUIRE_IMDSV2]: 'true' }));
    const started = await suite.handler().onEvent(create);
    const poll: IsCompleteRequest = { ...create, PhysicalResourceId: started.PhysicalResourceId ?? '', Data: started.Data };
    const answers: boolean[] = [];
    while (!answers.includes(true) && answers.length < 6) {
      answers.push((await suite.handler().isComplete(poll)).IsComplete ?? false);
    }
    expect(answers).toEqual([false, true]);
    const snapshotId = await snapshotOf(poll.PhysicalResourceId);
    expect(zonesOn(snapshotId)).toEqual(ZONES);
    expect(suite.harness().proxy.imageLifecycle(poll.PhysicalResourceId).imdsSupport).toBe('v2.0');

    const deleteRequest = event('Delete', create.ResourceProperties, poll.PhysicalResourceId);
    const deleted = await suite.handler().onEvent(deleteRequest);
    const release: IsCompleteRequest = { ...deleteRequest, PhysicalResourceId: poll.PhysicalResourceId, Data: deleted.Data };
    const releases: boolean[] = [];
    while (!releases.includes(true) && releases.length < 6) {
      releases.push((await suite.handler().isComplete(release)).IsComplete ?? false);
    }
    expect(releases[releases.length - 1]).toBe(true);
    // The snapshot was in use at first (EC2 still saw the image), then deleted, and its fast snapshot restore with it.
    expect(releases.length).toBeGreaterThan(1);
    expect(zonesOn(snapshotId)).toEqual([]);
    const left = await suite.harness().leftovers(['us-east-1']);
    expect({ images: left.images, snapshots: left.snapshots }).toEqual({ images: [], snapshots: [] });
  });

  test('a zone EBS refuses fails the bake naming the snapshot, the zone and the reason; the Delete cleans up', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder(), ['us-east-1a', 'us-east-1z']));
    const started = await suite.handler().onEvent(create);
    const imageId = started.PhysicalResourceId ?? '';

    const failure = await suite.handler().isComplete({ ...create, PhysicalResourceId: imageId, Data: started.Data })
      .then(() => undefined, (error: Error) => error.message);

    const snapshotId = await snapshotOf(imageId);
    expect(failure).toMatch(new RegExp(`EBS refused fast snapshot restore for image ${imageId}: ${snapshotId} in us-east-1z: \\S+`));
    await suite.handler().onEvent(event('Delete', create.ResourceProperties, imageId));
    expect(zonesOn(snapshotId)).toEqual([]);
    const left = await suite.harness().leftovers(['us-east-1']);
    expect({ images: left.images, snapshots: left.snapshots }).toEqual({ images: [], snapshots: [] });
  });
});
