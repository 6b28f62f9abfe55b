/**
 * Fast snapshot restore (fastSnapshotRestoreZones): enabled for the image's snapshots in the zones asked for once the
 * image is available, disabled for zones no longer asked for, for a superseded image that is kept, and for an image
 * before it is deleted. EBS disables it for a snapshot its owner deletes ("Configure fast snapshot restore", Amazon EBS
 * User Guide), but a snapshot EC2 does not delete (still in use) would keep it. It is billed per snapshot and zone while
 * enabled, so nothing the construct no longer asks for is left enabled.
 */
import {
  DescribeFastSnapshotRestoresCommand,
  DisableFastSnapshotRestoresCommand,
  EnableFastSnapshotRestoresCommand,
  type Image,
} from '@aws-sdk/client-ec2';
import { ec2In } from './clients';
import { describeError, withContext } from './errors';
import { snapshotsOf } from './images';
import { log } from './log';

/** A snapshot EnableFastSnapshotRestores or DisableFastSnapshotRestores could not change, with a reason per zone. */
interface Refusal {
  readonly SnapshotId?: string;
  readonly FastSnapshotRestoreStateErrors?: ReadonlyArray<{
    readonly AvailabilityZone?: string;
    readonly Error?: { readonly Code?: string; readonly Message?: string };
  }>;
}

/** The states in which fast snapshot restore is on (and billed) for a snapshot in a zone. */
const ON_STATES = ['enabling', 'optimizing', 'enabled'];

/**
 * Enables fast snapshot restore for every snapshot of the image in each of the zones, unless it is on already (one
 * DescribeFastSnapshotRestores per call; EnableFastSnapshotRestores only for what is off). Fails naming each
 * snapshot and zone EBS refused, with its reason.
 */
export async function enableFastSnapshotRestores(region: string, image: Image, zones: string[]): Promise<void> {
  const snapshotIds = snapshotsOf(image);
  if (zones.length === 0 || snapshotIds.length === 0) {
    return;
  }
  const on = await zonesOn(region, snapshotIds);
  const missing = zones.filter((zone) => snapshotIds.some((snapshotId) => !on.get(snapshotId)?.has(zone)));
  if (missing.length === 0) {
    return;
  }
  let unsuccessful: Refusal[];
  try {
    const response = await ec2In(region).send(new EnableFastSnapshotRestoresCommand({ SourceSnapshotIds: snapshotIds, AvailabilityZones: missing }));
    unsuccessful = response.Unsuccessful ?? [];
  } catch (error) {
    throw new Error(`Could not enable fast snapshot restore for image ${image.ImageId} (${snapshotIds.join(', ')}) in ${missing.join(', ')}: ${describeError(error)}`);
  }
  // A refusal of a pair that is on after all (one snapshot of the image had it already) is what was asked for.
  const nowOn = unsuccessful.length > 0 ? await zonesOn(region, snapshotIds) : on;
  const real = unsuccessful.flatMap((item) => {
    const failures = (item.FastSnapshotRestoreStateErrors ?? []).filter((failure) => !nowOn.get(item.SnapshotId ?? '')?.has(failure.AvailabilityZone ?? ''));
    return failures.length > 0 ? [{ ...item, FastSnapshotRestoreStateErrors: failures }] : [];
  });
  if (real.length > 0) {
    throw new Error(`EBS refused fast snapshot restore for image ${image.ImageId}: ${refusals(real)}. ` +
      'Check fastSnapshotRestoreZones (zones of the stack\'s region) and the Region\'s fast snapshot restore quota (5 snapshots by default).');
  }
  log('fast snapshot restore enabled', { imageId: image.ImageId, snapshots: snapshotIds, zones: missing });
}

/**
 * Disables fast snapshot restore for the image's snapshots in every zone where it is on, but `keep`. Repeatable: a
 * snapshot or zone where it is off already is left alone.
 */
export async function disableFastSnapshotRestores(region: string, image: Image, keep: string[] = []): Promise<void> {
  const snapshotIds = snapshotsOf(image);
  if (snapshotIds.length === 0) {
    return;
  }
  const on = await zonesOn(region, snapshotIds);
  const zones = [...new Set([...on.values()].flatMap((set) => [...set]))].filter((zone) => !keep.includes(zone));
  if (zones.length === 0) {
    return;
  }
  const ids = snapshotIds.filter((snapshotId) => zones.some((zone) => on.get(snapshotId)?.has(zone)));
  let unsuccessful: Refusal[];
  try {
    const response = await ec2In(region).send(new DisableFastSnapshotRestoresCommand({ SourceSnapshotIds: ids, AvailabilityZones: zones }));
    unsuccessful = response.Unsuccessful ?? [];
  } catch (error) {
    throw new Error(`Could not disable fast snapshot restore for image ${image.ImageId} (${ids.join(', ')}) in ${zones.join(', ')}: ${describeError(error)}`);
  }
  // A pair that was not on (this snapshot in that zone, when the others were) is refused; it costs nothing.
  const real = unsuccessful.filter((item) => (item.FastSnapshotRestoreStateErrors ?? [])
    .some((failure) => on.get(item.SnapshotId ?? '')?.has(failure.AvailabilityZone ?? '')));
  if (real.length > 0) {
    throw new Error(`EBS refused to disable fast snapshot restore for image ${image.ImageId}: ${refusals(real)}. It is billed while enabled: disable it yourself.`);
  }
  log('fast snapshot restore disabled', { imageId: image.ImageId, snapshots: ids, zones });
}

/** snapshot id -> the zones where fast snapshot restore is on for it. */
async function zonesOn(region: string, snapshotIds: string[]): Promise<Map<string, Set<string>>> {
  const on = new Map<string, Set<string>>();
  let nextToken: string | undefined;
  try {
    do {
      const response = await ec2In(region).send(new DescribeFastSnapshotRestoresCommand({
        Filters: [{ Name: 'snapshot-id', Values: snapshotIds }, { Name: 'state', Values: ON_STATES }],
        NextToken: nextToken,
      }));
      for (const item of response.FastSnapshotRestores ?? []) {
        if (item.SnapshotId && item.AvailabilityZone && ON_STATES.includes(item.State ?? '')) {
          on.set(item.SnapshotId, new Set([...on.get(item.SnapshotId) ?? [], item.AvailabilityZone]));
        }
      }
      nextToken = response.NextToken;
    } while (nextToken);
  } catch (error) {
    throw withContext(error, `DescribeFastSnapshotRestores for snapshots ${snapshotIds.join(', ')}`);
  }
  return on;
}

function refusals(items: Refusal[]): string {
  return items.flatMap((item) => (item.FastSnapshotRestoreStateErrors ?? []).map((failure) =>
    `${item.SnapshotId} in ${failure.AvailabilityZone}: ${failure.Error?.Code ?? 'error'} (${failure.Error?.Message ?? 'no message'})`)).join('; ');
}
