/**
 * What the handlers do to one image in one region: find it, share it, set its lifecycle, delete it with its
 * snapshots. The image in the stack's region and its copies in other regions go through the same code.
 */
import {
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  DisableImageDeprecationCommand,
  DisableImageDeregistrationProtectionCommand,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  type Image,
  ModifyImageAttributeCommand,
} from '@aws-sdk/client-ec2';
import { ec2In, homeRegion } from './clients';
import { describeError, errorCode, isImageGone, withContext } from './errors';
import { log, warn } from './log';
import { launchPermissionChange, type LaunchPermission } from './sharing';
import { ownedBy, type Owner } from './tags';
import type { BakeProperties, Sharing } from '../../src/private/contract';
import { Tag } from '../../src/private/contract';

export type { Owner } from './tags';

/** ` in us-west-2` for a copy's region, nothing for the stack's own: the messages name the region only when it helps. */
export function inRegion(region: string): string {
  return region === homeRegion() ? '' : ` in ${region}`;
}

/** Log fields that name the region of a copy. */
function regionField(region: string): Record<string, string> {
  return region === homeRegion() ? {} : { region };
}

/** The image, or undefined when EC2 no longer knows it. */
export async function describeImage(region: string, imageId: string): Promise<Image | undefined> {
  try {
    const response = await ec2In(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return response.Images?.find((image) => image.ImageId === imageId);
  } catch (error) {
    if (isImageGone(error)) {
      return undefined;
    }
    throw withContext(error, `DescribeImages for image ${imageId}${inRegion(region)}`);
  }
}

/** This account's image of that name in the region (AMI names are unique per account and region). */
export async function findImageByName(region: string, name: string): Promise<Image | undefined> {
  try {
    const response = await ec2In(region).send(new DescribeImagesCommand({
      Owners: ['self'],
      Filters: [{ Name: 'name', Values: [name] }],
    }));
    return response.Images?.find((image) => image.Name === name && image.State !== 'deregistered');
  } catch (error) {
    throw withContext(error, `DescribeImages for the image named ${name}${inRegion(region)}`);
  }
}

/** True when the image carries the tags of this custom resource (and so was made by it). */
export function madeByThisResource(image: Image, owner: Owner): boolean {
  return ownedBy(new Map((image.Tags ?? []).map((tag) => [tag.Key, tag.Value])), owner, true);
}

/** The EBS snapshots of an image, each once. */
export function snapshotsOf(image: Image): string[] {
  return [...new Set((image.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : [])))];
}

/** A snapshot EC2 would not delete yet (`InvalidSnapshot.InUse`), as `region/snap-...`: the Delete retries it. */
export type SnapshotInUse = string;

/**
 * Deregisters one image of this resource and deletes its snapshots. Repeatable: an image already gone is
 * fine, and its snapshots are still found by their tags. An image without this resource's tags is left alone.
 *
 * The image is deregistered with DeleteAssociatedSnapshots, and each snapshot is then deleted explicitly as well
 * (already gone is fine). A snapshot that EC2 still reports in use (for a while after its image was deregistered,
 * or because another image was registered from it) is returned, never kept silently: the Delete retries it until
 * it is gone or fails naming it.
 *
 * @param name the image's name when EC2 no longer knows the image (its snapshots carry it as a tag)
 * @param protectedByProps whether the properties asked for deregistration protection (lifted even when
 *   DescribeImages does not report it)
 * @param described what DescribeImages answered for `imageId`, when the caller asked already
 * @returns the snapshots still in use
 */
export async function deleteImage(
  region: string,
  owner: Owner,
  imageId: string | undefined,
  name: string,
  protectedByProps: boolean,
  described?: { readonly image: Image | undefined },
): Promise<SnapshotInUse[]> {
  const image = described ? described.image : imageId ? await describeImage(region, imageId) : undefined;
  if (image && !madeByThisResource(image, owner)) {
    warn('image does not carry this resource\'s tags: left alone', { imageId, ...regionField(region) });
    return [];
  }
  const snapshotIds = new Set<string>(image ? snapshotsOf(image) : []);
  // Snapshots carry the image name: a Delete repeated after the image was deregistered still finds them.
  const label = imageId ?? name;
  for (const snapshotId of await findSnapshotsByImageName(region, owner, image?.Name ?? name, label)) {
    snapshotIds.add(snapshotId);
  }

  if (imageId) {
    // Also when DescribeImages did not show it: EC2 is eventually consistent, and a new image may not be visible
    // yet. An id the caller has is this resource's own (its physical id, or an image found with its tags).
    if (protectedByProps || image?.DeregistrationProtection?.startsWith('enabled')) {
      await liftDeregistrationProtection(region, imageId, image?.DeregistrationProtection);
    }
    await deregister(region, imageId);
  } else {
    log('image already gone', { imageId: label, ...regionField(region) });
  }
  return deleteSnapshots(region, [...snapshotIds], label);
}

/** Deletes these snapshots of an image; returns those EC2 still reports in use, as `region/snap-...`. */
export async function deleteSnapshots(region: string, snapshotIds: string[], imageId: string): Promise<SnapshotInUse[]> {
  const inUse: SnapshotInUse[] = [];
  for (const snapshotId of snapshotIds) {
    if (await deleteSnapshot(region, snapshotId, imageId) === 'in-use') {
      inUse.push(`${region}/${snapshotId}`);
    }
  }
  return inUse;
}

async function findSnapshotsByImageName(region: string, owner: Owner, name: string, imageId: string): Promise<string[]> {
  try {
    const response = await ec2In(region).send(new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${Tag.IMAGE_NAME}`, Values: [name] },
        { Name: `tag:${Tag.STACK_ID}`, Values: [owner.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [owner.LogicalResourceId] },
      ],
    }));
    return (response.Snapshots ?? []).flatMap((snapshot) => (snapshot.SnapshotId ? [snapshot.SnapshotId] : []));
  } catch (error) {
    throw withContext(error, `DescribeSnapshots for the snapshots of image ${imageId} (${name})${inRegion(region)}`);
  }
}

/**
 * Deregistration protection must be lifted before the Delete can deregister. Protection enabled with a
 * cooldown (not by this construct) keeps the image for 24 hours after it is lifted: the Delete then fails
 * and says so, and CloudFormation's retry after the cooldown succeeds.
 */
async function liftDeregistrationProtection(region: string, imageId: string, state: string | undefined): Promise<void> {
  try {
    await ec2In(region).send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    log('deregistration protection lifted for the delete', { imageId, state, ...regionField(region) });
  } catch (error) {
    if (isImageGone(error)) {
      return;
    }
    throw new Error(`Could not lift the deregistration protection of image ${imageId}${inRegion(region)}: ${describeError(error)}`);
  }
  // EC2 reports `enabled-without-cooldown` for protection without one: only `enabled-with-cooldown` holds the image.
  if (state === 'enabled-with-cooldown') {
    throw new Error(
      `Image ${imageId}${inRegion(region)} has deregistration protection with a cooldown (${state}): it was lifted now, and EC2 lets ` +
      'the image be deregistered only after the 24-hour cooldown. Retry the delete after that; in an update\'s cleanup, ' +
      'CloudFormation gives up on it and the image stays: deregister it (and delete its snapshots) yourself then.',
    );
  }
}

async function deregister(region: string, imageId: string): Promise<void> {
  try {
    // EC2 deletes the snapshots with the image where it can; the caller deletes whatever it left.
    await ec2In(region).send(new DeregisterImageCommand({ ImageId: imageId, DeleteAssociatedSnapshots: true }));
    log('image deregistered', { imageId, ...regionField(region) });
  } catch (error) {
    if (isImageGone(error)) {
      log('image already gone', { imageId, code: errorCode(error), ...regionField(region) });
      return;
    }
    throw new Error(`Could not deregister image ${imageId}${inRegion(region)}: ${describeError(error)}`);
  }
}

async function deleteSnapshot(region: string, snapshotId: string, imageId: string): Promise<'deleted' | 'gone' | 'in-use'> {
  try {
    await ec2In(region).send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    log('snapshot deleted', { snapshotId, imageId, ...regionField(region) });
    return 'deleted';
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidSnapshot.NotFound') {
      log('snapshot already gone', { snapshotId, imageId, ...regionField(region) });
      return 'gone';
    }
    if (code === 'InvalidSnapshot.InUse') {
      // Shortly after DeregisterImage EC2 may still hold it; the Delete tries again until its deadline.
      log('snapshot still in use: the delete retries it', { snapshotId, imageId, ...regionField(region) });
      return 'in-use';
    }
    throw new Error(`Could not delete snapshot ${snapshotId} of image ${imageId}${inRegion(region)}: ${describeError(error)}`);
  }
}

/**
 * Makes the image launchable by exactly the accounts, organizations and units asked for: adds what is
 * missing, removes what is no longer asked for.
 */
export async function shareImage(region: string, imageId: string, sharing: Sharing): Promise<void> {
  const client = ec2In(region);
  let current: LaunchPermission[];
  try {
    const response = await client.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }));
    current = response.LaunchPermissions ?? [];
  } catch (error) {
    throw withContext(error, `DescribeImageAttribute (launchPermission) for image ${imageId}${inRegion(region)}`);
  }
  const change = launchPermissionChange(current, sharing);
  if (change.add.length === 0 && change.remove.length === 0) {
    log('launch permissions already as asked', { imageId, ...regionField(region) });
    return;
  }
  try {
    await client.send(new ModifyImageAttributeCommand({
      ImageId: imageId,
      LaunchPermission: {
        ...(change.add.length > 0 ? { Add: change.add } : {}),
        ...(change.remove.length > 0 ? { Remove: change.remove } : {}),
      },
    }));
  } catch (error) {
    throw new Error(`Could not share image ${imageId}${inRegion(region)} (launch permissions): ${describeError(error)}`);
  }
  log('launch permissions updated', { imageId, added: change.add, removed: change.remove, ...regionField(region) });
}

/** The value of an image's `ImdsSupport` that makes instances launched from it require IMDSv2. */
export const IMDS_V2_ONLY = 'v2.0';

/**
 * Makes the image IMDSv2-only (`ImdsSupport` `v2.0`) unless DescribeImages already shows it so. EC2 cannot take
 * the attribute back, and setting it again is harmless: a poll that does not see it yet (EC2 is eventually
 * consistent) sets it again.
 *
 * @param image the image as DescribeImages answered for it
 */
export async function requireImdsv2(region: string, image: Image): Promise<void> {
  const imageId = image.ImageId ?? '';
  if (image.ImdsSupport === IMDS_V2_ONLY) {
    return;
  }
  try {
    await ec2In(region).send(new ModifyImageAttributeCommand({ ImageId: imageId, ImdsSupport: { Value: IMDS_V2_ONLY } }));
  } catch (error) {
    // EC2's docs do not say whether setting it again is accepted: an image that has it (a poll before DescribeImages
    // showed it set it already) is what was asked for.
    if (await imdsSupportOf(region, imageId) === IMDS_V2_ONLY) {
      log('image already IMDSv2-only', { imageId, code: errorCode(error), ...regionField(region) });
      return;
    }
    throw new Error(
      `Could not make image ${imageId}${inRegion(region)} IMDSv2-only (ModifyImageAttribute ImdsSupport ${IMDS_V2_ONLY}): ` +
      `${describeError(error)}. Set requireImdsv2: false only for software that needs IMDSv1.`,
    );
  }
  log('image made IMDSv2-only', { imageId, ...regionField(region) });
}

/** The image's ImdsSupport as DescribeImageAttribute reports it; undefined when unset or unknown. */
async function imdsSupportOf(region: string, imageId: string): Promise<string | undefined> {
  try {
    const response = await ec2In(region).send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'imdsSupport' }));
    return response.ImdsSupport?.Value;
  } catch {
    return undefined;
  }
}

/**
 * Deprecation and deregistration protection, as asked; what the previous properties asked for and these
 * no longer do is lifted. No call at all when neither is asked for now or before.
 *
 * @param creationDate the creation of the image the deprecation counts from (a copy deprecates with its source)
 */
export async function setLifecycle(
  region: string,
  imageId: string,
  creationDate: string | undefined,
  props: BakeProperties,
  before: BakeProperties | undefined,
): Promise<void> {
  const client = ec2In(region);
  const where = `image ${imageId}${inRegion(region)}`;
  if (props.deprecateAfterSeconds !== undefined) {
    // Counted from the image's creation, so an Update that rebakes nothing keeps the same date; EC2
    // refuses a date in the past, so a date already passed becomes one minute from now.
    const created = Date.parse(creationDate ?? '') || Date.now();
    const deprecateAt = new Date(Math.max(created + props.deprecateAfterSeconds * 1000, Date.now() + 60_000));
    await lifecycleCall(`EnableImageDeprecation for ${where}`,
      () => client.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: deprecateAt })));
    log('image deprecation set', { imageId, deprecateAt: deprecateAt.toISOString(), ...regionField(region) });
  } else if (before?.deprecateAfterSeconds !== undefined) {
    await lifecycleCall(`DisableImageDeprecation for ${where}`,
      () => client.send(new DisableImageDeprecationCommand({ ImageId: imageId })));
    log('image deprecation removed', { imageId, ...regionField(region) });
  }
  if (props.deregistrationProtection) {
    await lifecycleCall(`EnableImageDeregistrationProtection for ${where}`,
      () => client.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: false })));
    log('deregistration protection enabled', { imageId, ...regionField(region) });
  } else if (before?.deregistrationProtection) {
    await lifecycleCall(`DisableImageDeregistrationProtection for ${where}`,
      () => client.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId })));
    log('deregistration protection removed', { imageId, ...regionField(region) });
  }
}

async function lifecycleCall(what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (error) {
    throw new Error(`${what} failed: ${describeError(error)}`);
  }
}
