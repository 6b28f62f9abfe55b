/**
 * Deleting (onEvent of a Delete): the image, its copies and the parameters naming them, with their snapshots, and the
 * superseded images keepSupersededImages no longer keeps; safe to repeat. The snapshots EC2 still reports in use
 * travel in the response's Data to isComplete, which deletes them once EC2 has released them (releaseSnapshots).
 */
import { isImageId } from './bake';
import { homeRegion } from './clients';
import { deleteCopies, recordedCopyRegions } from './copies';
import { disableFastSnapshotRestores } from './fast-restore';
import { deleteImage, deleteSnapshots, describeImage, madeByThisResource, type SnapshotInUse } from './images';
import { log, warn } from './log';
import { withdrawCopyIds } from './parameters';
import { secondsSinceStart, SNAPSHOT_RELEASE_SECONDS, startData } from './request-clock';
import { imagesToDelete } from './retention';
import type { IsCompleteRequest, OnEventRequest, OnEventResponse } from './types';
import { terminateTestInstances } from './validation';
import { type BakeProperties, decodeProperties } from '../../src/private/contract';
import { imageName, Attr, RemovalMode } from '../../src/private/contract';

/** Deletes the resource's image (unless the removal policy retains it), and the superseded images no longer kept. */
export async function remove(event: OnEventRequest): Promise<OnEventResponse> {
  const imageId = event.PhysicalResourceId;
  if (!isImageId(imageId)) {
    // The Create failed before CreateImage answered: there is no image to delete.
    log('no image to delete', { physicalResourceId: imageId });
    return { PhysicalResourceId: imageId };
  }
  const props = decodeProperties(event.ResourceProperties);
  if (props.removal === RemovalMode.RETAIN) {
    log('removal policy RETAIN: image and snapshots kept', { imageId });
    // The construct refuses RETAIN with fast snapshot restore; should it reach here, the kept image stops costing.
    await withoutFastSnapshotRestores(event, imageId, props);
    if (props.copyParameterName !== undefined) {
      // The stack's own region's parameter goes with the stack (a CloudFormation resource): so do the copies' while
      // they still name this image's copies (after a rebake they name the new image's, and are left to it).
      const image = await describeImage(homeRegion(), imageId);
      if (!image || madeByThisResource(image, event)) {
        const regions = otherRegions([...new Set([...props.copyToRegions, ...recordedCopyRegions(image)])]);
        await withdrawCopyIds(event, props.copyParameterName, image?.Name ?? imageName(props), regions);
      }
    }
    return { PhysicalResourceId: imageId };
  }
  const inUse: SnapshotInUse[] = [];
  const doomed = await imagesToDelete(event, imageId, props);
  if (!doomed.includes(imageId)) {
    // A superseded image kept for rollback: instances no longer launch from it, so fast snapshot restore goes.
    await withoutFastSnapshotRestores(event, imageId, props);
  }
  for (const image of doomed) {
    inUse.push(...await deleteEverywhere(event, image, props));
  }
  return { PhysicalResourceId: imageId, Data: { ...startData(), ...snapshotsInUseData(inUse) } };
}

/** Disables the fast snapshot restore these properties enabled for an image of this resource that stays. */
async function withoutFastSnapshotRestores(event: OnEventRequest, imageId: string, props: BakeProperties): Promise<void> {
  if (props.fastSnapshotRestoreZones.length === 0) {
    return;
  }
  const image = await describeImage(homeRegion(), imageId);
  if (image && madeByThisResource(image, event)) {
    await disableFastSnapshotRestores(homeRegion(), image);
  }
}

/**
 * Deletes one image of this resource with its snapshots, and its copies in the regions the properties name
 * (copies first: the image's name, which finds them, is known while the image exists). Repeatable.
 */
async function deleteEverywhere(event: OnEventRequest, imageId: string, props: BakeProperties): Promise<SnapshotInUse[]> {
  const image = await describeImage(homeRegion(), imageId);
  if (image && !madeByThisResource(image, event)) {
    warn('image does not carry this resource\'s tags: left alone', { imageId });
    return [];
  }
  if (props.validation) {
    // A bake that failed or timed out while testing: its test instance goes with the image.
    await terminateTestInstances(event, imageId);
  }
  if (image && props.fastSnapshotRestoreZones.length > 0) {
    // EBS disables it with a deleted snapshot; this also covers a snapshot EC2 does not delete (still in use).
    await disableFastSnapshotRestores(homeRegion(), image);
  }
  const name = image?.Name ?? imageName(props);
  // The regions the properties list now, and every region the image was ever copied to.
  const regions = [...new Set([...props.copyToRegions, ...recordedCopyRegions(image)])];
  if (props.copyParameterName !== undefined) {
    // Before the copies go: the parameters that still hold this image's copies are found by the copies' ids.
    await withdrawCopyIds(event, props.copyParameterName, name, otherRegions(regions));
  }
  const inUse = await deleteCopies(event, name, regions, props.deregistrationProtection);
  inUse.push(...await deleteImage(homeRegion(), event, imageId, name, props.deregistrationProtection, { image }));
  return inUse;
}

/** At most this many in-use snapshots travel to isComplete: the custom resource's response must stay within 4 KB. */
const MAX_SNAPSHOTS_IN_USE = 30;

/** The Data attribute that hands the snapshots still in use to isComplete; none when there are none. */
export function snapshotsInUseData(inUse: SnapshotInUse[]): Record<string, string> {
  if (inUse.length === 0) {
    return {};
  }
  if (inUse.length > MAX_SNAPSHOTS_IN_USE) {
    throw new Error(
      `${inUse.length} snapshots (${inUse.slice(0, 3).join(', ')}, ...) are still in use after their images were deregistered. ` +
      'EC2 releases them shortly after a deregistration: retry the delete (they are found again by their tags).',
    );
  }
  return { [Attr.SNAPSHOTS_IN_USE]: inUse.join(' ') };
}

/**
 * Deletes the snapshots onEvent found still in use, now that EC2 may have released them. True once none is left;
 * throws naming them when they are still in use SNAPSHOT_RELEASE_SECONDS after the request started.
 */
export async function releaseSnapshots(event: IsCompleteRequest): Promise<boolean> {
  const listed = (event.Data?.[Attr.SNAPSHOTS_IN_USE] ?? '').split(' ').filter((entry) => entry.includes('/'));
  if (listed.length === 0) {
    return true;
  }
  const still: SnapshotInUse[] = [];
  for (const entry of listed) {
    const slash = entry.indexOf('/');
    still.push(...await deleteSnapshots(entry.slice(0, slash), [entry.slice(slash + 1)], event.PhysicalResourceId));
  }
  if (still.length === 0) {
    log('snapshots released and deleted', { imageId: event.PhysicalResourceId, snapshots: listed });
    return true;
  }
  const elapsedSeconds = secondsSinceStart(event) ?? 0;
  if (elapsedSeconds > SNAPSHOT_RELEASE_SECONDS) {
    throw new Error(
      `Snapshots ${still.join(', ')} of image ${event.PhysicalResourceId} are still in use ${Math.round(elapsedSeconds)} s after ` +
      'their image was deregistered: another image was probably registered from them. Deregister that image and delete ' +
      'the snapshots, then retry; they are not deleted otherwise.',
    );
  }
  log('snapshots still in use: trying again', { imageId: event.PhysicalResourceId, snapshots: still, elapsedSeconds: Math.round(elapsedSeconds) });
  return false;
}

/** The regions without the stack's own, whose parameter is a CloudFormation resource. */
export function otherRegions(regions: string[]): string[] {
  return regions.filter((region) => region !== homeRegion());
}
