/**
 * Keeping the last N superseded images, through the shipped handler bundle against moto_server. The
 * handler asks CloudFormation why an image is deleted; the harness proxy answers as CloudFormation would
 * in each phase (test/lambda/moto-server.ts, setStack).
 */
import { DescribeImagesCommand, DescribeSnapshotsCommand, type Image } from '@aws-sdk/client-ec2';
import { customResourceEvent, imageProps, MOTO_STACK_ID as STACK_ID, MOTO_STACK_NAME as STACK_NAME, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest } from '../../lambda/bake-image/types';
import { Prop } from '../../src/private/contract';

jest.setTimeout(90_000);

const LOGICAL_ID = 'RetainedImage';

const suite = useMotoSuite();

function props(instanceId: string, keep: number, logicalSuffix = ''): Record<string, string> {
  return imageProps(instanceId, `retained${logicalSuffix}`, { [Prop.KEEP_SUPERSEDED]: String(keep) });
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Record<string, string>, physicalId?: string, logicalId = LOGICAL_ID) {
  return customResourceEvent(type, logicalId, resourceProperties, { physicalId });
}

/** Bakes a new image (Create or replacing Update) and waits a moment, so that creation dates differ. */
async function bake(keep: number, physicalId?: string, logicalId = LOGICAL_ID): Promise<{ imageId: string; props: Record<string, string> }> {
  const bakeProps = props(await suite.harness().launchBuilder(), keep, logicalId === LOGICAL_ID ? '' : '-other');
  const request = event(physicalId ? 'Update' : 'Create', bakeProps, physicalId, logicalId);
  const response = await suite.handler().onEvent(request);
  const complete: IsCompleteRequest = { ...request, PhysicalResourceId: response.PhysicalResourceId ?? '', Data: response.Data };
  expect((await suite.handler().isComplete(complete)).IsComplete).toBe(true);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  return { imageId: complete.PhysicalResourceId, props: bakeProps };
}

/** The cleanup Delete CloudFormation sends for a replaced image after a successful update. */
async function cleanUpReplaced(old: { imageId: string; props: Record<string, string> }, current: string): Promise<void> {
  suite.harness().proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: current } });
  await suite.handler().onEvent(event('Delete', old.props, old.imageId));
}

async function images(): Promise<Image[]> {
  return (await suite.harness().ec2.send(new DescribeImagesCommand({ Owners: ['self'] }))).Images ?? [];
}

async function imageIds(): Promise<string[]> {
  return (await images()).map((image) => image.ImageId!).sort();
}

/** Which of these snapshots still exist (moto's own AMIs have many more snapshots, so ask by id). */
async function existingSnapshots(ids: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const id of ids) {
    try {
      await suite.harness().ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
      found.push(id);
    } catch (error) {
      if ((error as { name?: string }).name !== 'InvalidSnapshot.NotFound') {
        throw error;
      }
    }
  }
  return found.sort();
}

async function snapshotsOf(imageId: string): Promise<string[]> {
  const image = (await images()).find((i) => i.ImageId === imageId)!;
  return (image.BlockDeviceMappings ?? []).map((m) => m.Ebs!.SnapshotId!);
}

describe('keeping superseded images through moto', () => {
  test('keeps the two newest superseded images and deletes older ones with their snapshots', async () => {
    const a = await bake(2);
    const b = await bake(2, a.imageId);
    await cleanUpReplaced(a, b.imageId);
    const c = await bake(2, b.imageId);
    await cleanUpReplaced(b, c.imageId);
    expect(await imageIds()).toEqual([a.imageId, b.imageId, c.imageId].sort());

    const snapshotsOfA = await snapshotsOf(a.imageId);
    const kept = [...await snapshotsOf(b.imageId), ...await snapshotsOf(c.imageId)];
    const d = await bake(2, c.imageId);
    await cleanUpReplaced(c, d.imageId);

    expect(await imageIds()).toEqual([b.imageId, c.imageId, d.imageId].sort());
    expect(snapshotsOfA).toHaveLength(1);
    expect(await existingSnapshots(snapshotsOfA)).toEqual([]);
    expect(await existingSnapshots(kept)).toEqual(kept.sort());
  });

  test('deletes the image and every superseded one it kept when the stack is deleted, and nothing of another resource', async () => {
    const other = await bake(0, undefined, 'OtherImage');
    const a = await bake(3);
    const b = await bake(3, a.imageId);
    await cleanUpReplaced(a, b.imageId);
    const ours = [...await snapshotsOf(a.imageId), ...await snapshotsOf(b.imageId)];
    const others = await snapshotsOf(other.imageId);

    suite.harness().proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'DELETE_IN_PROGRESS', resources: { [LOGICAL_ID]: b.imageId } });
    await suite.handler().onEvent(event('Delete', b.props, b.imageId));

    expect(await imageIds()).toEqual([other.imageId]);
    expect(await existingSnapshots(ours)).toEqual([]);
    expect(await existingSnapshots(others)).toEqual(others);
  });

  test('deletes only the half-made image of a failed update, keeping the superseded ones', async () => {
    const a = await bake(1);
    const b = await bake(1, a.imageId);
    await cleanUpReplaced(a, b.imageId);
    const failed = await bake(1, b.imageId);

    suite.harness().proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: b.imageId } });
    await suite.handler().onEvent(event('Delete', failed.props, failed.imageId));

    expect(await imageIds()).toEqual([a.imageId, b.imageId].sort());
  });

  test('deletes the image and the kept ones when the resource leaves the stack in an update', async () => {
    const a = await bake(2);
    const b = await bake(2, a.imageId);
    await cleanUpReplaced(a, b.imageId);
    const ours = [...await snapshotsOf(a.imageId), ...await snapshotsOf(b.imageId)];

    suite.harness().proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: {} });
    await suite.handler().onEvent(event('Delete', b.props, b.imageId));

    expect(await imageIds()).toEqual([]);
    expect(await existingSnapshots(ours)).toEqual([]);
  });

  test('asks CloudFormation nothing when no superseded image is kept', async () => {
    const a = await bake(0);
    suite.harness().proxy.clearRequests();
    await suite.handler().onEvent(event('Delete', a.props, a.imageId));
    expect(suite.harness().proxy.actions().filter((action) => action.startsWith('DescribeStack'))).toEqual([]);
    expect(await imageIds()).toEqual([]);
  });
});
