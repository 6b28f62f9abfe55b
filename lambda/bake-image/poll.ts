/**
 * Waiting for the bake (isComplete of a Create or an Update): one DescribeImages call per poll until the image is
 * available, then its validation and its copies, all within bakeTimeout. The image is made IMDSv2-only as soon as it
 * is available, its copies once they are; once everything is ready, the builder is settled, the image and its
 * copies are shared and given their lifecycle, the image's snapshots get fast snapshot restore, and the ids are published.
 */
import type { Image } from '@aws-sdk/client-ec2';
import { settleBuilder } from './builder';
import { homeRegion } from './clients';
import { pollCopies } from './copies';
import { disableFastSnapshotRestores, enableFastSnapshotRestores } from './fast-restore';
import { bakeProgress } from './image-state';
import { describeImage, requireImdsv2, setLifecycle, shareImage } from './images';
import { log, warn } from './log';
import { publishCopyIds } from './parameters';
import { NOT_VISIBLE_GRACE_SECONDS, secondsSinceStart } from './request-clock';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest } from './types';
import { terminateTestInstances, validateImage } from './validation';
import { type BakeProperties, decodeProperties, decodeSharing, sharesWithAnyone } from '../../src/private/contract';
import { imageName, Attr, copyImageIdAttribute, Tag } from '../../src/private/contract';

/** One poll of the bake started by onEvent: complete once the image (and its copies) are ready to use. */
export async function pollBake(event: IsCompleteRequest, props: BakeProperties): Promise<IsCompleteResponse> {
  const imageId = event.PhysicalResourceId;
  const image = await describeImage(homeRegion(), imageId);
  if (!image) {
    // Just created, it may not be visible yet (EC2 is eventually consistent): pending for a while.
    const elapsedSeconds = secondsSinceStart(event);
    if (elapsedSeconds === undefined || elapsedSeconds <= NOT_VISIBLE_GRACE_SECONDS) {
      log('image not visible yet', { imageId, elapsedSeconds });
      return { IsComplete: false };
    }
    throw new Error(
      `Image ${imageId} from builder ${props.instanceId} is not found ${Math.round(elapsedSeconds)} s after this request started ` +
      '(deregistered outside this stack?). Change rebakeTrigger to bake a new image.',
    );
  }
  const progress = bakeProgress(image);
  switch (progress.kind) {
    case 'pending': {
      const elapsedSeconds = failIfPastBakeTimeout(event, props, `Image ${imageId} from builder ${props.instanceId} is still pending`);
      log('image pending', { imageId, elapsedSeconds });
      return { IsComplete: false };
    }
    case 'failed':
      throw new Error(
        `Image ${imageId} from builder ${props.instanceId} is ${progress.state} (${progress.reason}). ` +
        'Check the image in the EC2 console, and the builder\'s cfn-init log (/var/log/cfn-init.log; also in the builder\'s ' +
        'system log, EC2 console "Get system log", unless initOptions.printLog is false); the image is deleted with this resource.',
      );
    case 'available':
      return finishBake(event, image, props);
  }
}

/**
 * The image is available: copies it to the other regions and waits for the copies, then settles the builder
 * and shares and sets the lifecycle of the image and of every copy.
 */
async function finishBake(event: IsCompleteRequest, available: Image, props: BakeProperties): Promise<IsCompleteResponse> {
  const imageId = event.PhysicalResourceId;
  let image = available;
  if (props.requireImdsv2) {
    // First: the validation then tests the image as the fleet will launch it, and the copies start from it.
    await requireImdsv2(homeRegion(), image);
  } else if (image.ImdsSupport === 'v2.0') {
    // CreateImage keeps the base image's attribute (Amazon Linux 2023's are IMDSv2-only), and EC2 cannot take it back.
    warn('image is IMDSv2-only although requireImdsv2 is false: its base image was; launch with HttpTokens optional to allow IMDSv1',
      { imageId, baseImage: props.manifest.baseImageId });
  }
  if (props.validation) {
    // Before the copies: only a tested image is copied.
    if (await validateImage(event, image, props) === 'running') {
      try {
        failIfPastBakeTimeout(event, props, `The validation of image ${imageId} is still running`);
      } catch (error) {
        await terminateTestInstances(event, imageId);
        throw error;
      }
      return { IsComplete: false };
    }
    if (!image.Tags?.some((tag) => tag.Key === Tag.VALIDATED && tag.Value === props.validation?.fingerprint)) {
      // Passed in this poll: the copies started below carry the tag as well.
      const tags = (image.Tags ?? []).filter((tag) => tag.Key !== Tag.VALIDATED);
      image = { ...image, Tags: [...tags, { Key: Tag.VALIDATED, Value: props.validation.fingerprint }] };
    }
  }
  const copies = props.copyToRegions.length > 0 ? await pollCopies(event, image, props) : { pending: [], available: [] };
  if (copies.pending.length > 0) {
    const elapsedSeconds = failIfPastBakeTimeout(event, props,
      `The copies of image ${imageId} to ${copies.pending.join(', ')} are still pending`);
    log('image copies pending', { imageId, pending: copies.pending, elapsedSeconds });
    return { IsComplete: false };
  }

  await settleBuilder(props);
  const sharedBefore = event.RequestType === 'Update' && !!sharesWithAnyone(decodeSharing(event.OldResourceProperties ?? {}));
  const before = event.RequestType === 'Update' ? previousProperties(event) : undefined;
  const images = [{ region: homeRegion(), imageId }, ...copies.available.map((copy) => ({ region: copy.region, imageId: copy.image.ImageId ?? '' }))];
  if (props.requireImdsv2) {
    // Before the copies are shared and published: nobody launches a copy that is not IMDSv2-only yet.
    for (const copy of copies.available) {
      await requireImdsv2(copy.region, copy.image);
    }
  }
  for (const target of images) {
    if (!!sharesWithAnyone(props.sharing) || sharedBefore) {
      await shareImage(target.region, target.imageId, props.sharing);
    }
    // Copies deprecate together with their source: the date counts from the source's creation.
    await setLifecycle(target.region, target.imageId, image.CreationDate, props, before);
  }
  const droppedZones = (before?.fastSnapshotRestoreZones ?? []).filter((zone) => !props.fastSnapshotRestoreZones.includes(zone));
  if (droppedZones.length > 0) {
    // An Update that kept the image and no longer lists these zones: billed while enabled.
    await disableFastSnapshotRestores(homeRegion(), image, props.fastSnapshotRestoreZones);
  }
  // Last before the ids are published: only the stack's region (the zones are its own), never the copies.
  await enableFastSnapshotRestores(homeRegion(), image, props.fastSnapshotRestoreZones);
  if (props.copyParameterName !== undefined && copies.available.length > 0) {
    // Last: consumers in the copy regions see a copy only once it is shared and has its lifecycle.
    await publishCopyIds(event, props.copyParameterName,
      copies.available.map((copy) => ({ region: copy.region, imageId: copy.image.ImageId ?? '' })));
  }

  const name = image.Name ?? imageName(props);
  const data: Record<string, string> = { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name };
  for (const copy of copies.available) {
    data[copyImageIdAttribute(copy.region)] = copy.image.ImageId ?? '';
  }
  if (props.copyToRegions.includes(homeRegion())) {
    // An environment-agnostic stack deployed to a region it also lists: the image is its own copy there.
    data[copyImageIdAttribute(homeRegion())] = imageId;
  }
  log('image available', { imageId, imageName: name, ...(copies.available.length > 0 ? { copies: data } : {}) });
  return { IsComplete: true, Data: data };
}

/**
 * bakeTimeout covers the whole wait of this request: the image, its validation and its copies, counted from when
 * onEvent started the request (never from the image's creation: an Update may validate or copy an old image).
 * Throws once it has passed; returns the seconds elapsed so far otherwise.
 */
function failIfPastBakeTimeout(event: IsCompleteRequest, props: BakeProperties, what: string): number | undefined {
  const elapsedSeconds = secondsSinceStart(event);
  if (props.bakeTimeoutSeconds !== undefined && elapsedSeconds !== undefined && elapsedSeconds > props.bakeTimeoutSeconds) {
    throw new Error(
      `${what} after ${Math.round(elapsedSeconds)} s, longer than bakeTimeout (${props.bakeTimeoutSeconds} s). ` +
      'Raise bakeTimeout for large volumes, long validations or many regions; the pending image and its copies are deleted with this resource.',
    );
  }
  return elapsedSeconds;
}

/** The properties of the resource before an Update; undefined when they cannot be read. */
function previousProperties(event: OnEventRequest): BakeProperties | undefined {
  try {
    return event.OldResourceProperties ? decodeProperties(event.OldResourceProperties) : undefined;
  } catch {
    return undefined;
  }
}
