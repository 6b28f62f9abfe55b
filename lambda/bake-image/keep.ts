/**
 * An Update that keeps the image (its inputs are unchanged): only the regions and the parameter of its copies may
 * have changed. The parameters no longer published are withdrawn and the copies in the regions dropped deleted;
 * isComplete then copies to the regions added, like after a bake.
 */
import { homeRegion } from './clients';
import { deleteCopies } from './copies';
import { otherRegions, snapshotsInUseData } from './delete';
import { describeImage, type SnapshotInUse } from './images';
import { log } from './log';
import { withdrawCopyIds } from './parameters';
import { startData } from './request-clock';
import type { OnEventRequest, OnEventResponse } from './types';
import { type BakeProperties, decodeCopyParameterName, decodeCopyRegions } from '../../src/private/contract';
import { imageName, RemovalMode } from '../../src/private/contract';

/** Keeps the image of the resource (physicalId) and withdraws what these properties no longer ask for. */
export async function keepImage(event: OnEventRequest, physicalId: string, props: BakeProperties): Promise<OnEventResponse> {
  log('image inputs unchanged: keeping the image', { imageId: physicalId });
  const oldRegions = decodeCopyRegions(event.OldResourceProperties ?? {});
  const dropped = oldRegions.filter((region) => !props.copyToRegions.includes(region));
  // The parameters the previous properties published and these no longer do: in the regions dropped, or all of them
  // when the parameter's name changed or went (these properties publish under the new name once the copies are checked).
  const oldParameterName = previousCopyParameterName(event);
  const withdrawn = oldParameterName === undefined ? [] : oldParameterName === props.copyParameterName ? dropped : oldRegions;
  let name: string | undefined;
  const nameOfImage = async () => (name ??= (await describeImage(homeRegion(), physicalId))?.Name ?? imageName(props));
  if (oldParameterName !== undefined && withdrawn.length > 0) {
    await withdrawCopyIds(event, oldParameterName, await nameOfImage(), otherRegions(withdrawn));
  }
  let inUse: SnapshotInUse[] = [];
  if (dropped.length > 0) {
    if (props.removal === RemovalMode.RETAIN) {
      log('removal policy RETAIN: copies in regions no longer listed are kept', { imageId: physicalId, regions: dropped });
    } else {
      inUse = await deleteCopies(event, await nameOfImage(), dropped, props.deregistrationProtection);
    }
  }
  return { PhysicalResourceId: physicalId, Data: { ...startData(), ...snapshotsInUseData(inUse) } };
}

/** The copy parameter name of the properties before an Update; undefined when they publish none (or cannot be read). */
function previousCopyParameterName(event: OnEventRequest): string | undefined {
  try {
    return decodeCopyParameterName(event.OldResourceProperties ?? {});
  } catch {
    return undefined;
  }
}
