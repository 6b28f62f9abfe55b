/**
 * onEvent and isComplete handlers of the BakedImage provider (CDK provider framework).
 *
 * onEvent starts the work and answers at once: Create and image-changing Updates call CreateImage and
 * return the AMI id as PhysicalResourceId immediately, so that a bake which later fails or times out
 * still receives the Delete that cleans it up. isComplete makes one DescribeImages call per poll.
 * Delete deregisters the image and deletes its snapshots, and is safe to repeat; isComplete then retries the
 * snapshots EC2 still held. Every answer of onEvent records when the request's work started (request-clock.ts).
 */
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import {
  CreateImageCommand,
  DescribeImagesCommand,
  type Image,
  StopInstancesCommand,
  type Tag as Ec2Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { ec2, homeRegion } from './clients';
import { deleteCopies, pollCopies, recordedCopyRegions } from './copies';
import { describeError, errorCode, forCloudFormation, withContext } from './errors';
import { bakeProgress } from './image-state';
import { deleteImage, deleteSnapshots, describeImage, findImageByName, madeByThisResource, setLifecycle, shareImage, type SnapshotInUse } from './images';
import { log, warn } from './log';
import { imageName } from './naming';
import { publishCopyIds, withdrawCopyIds } from './parameters';
import {
  type BakeProperties,
  imageInputsChanged,
  parseCopyParameterName,
  parseCopyRegions,
  parseProperties,
  parseSharing,
  sharesWithNobody,
} from './properties';
import { NOT_VISIBLE_GRACE_SECONDS, secondsSinceStart, SNAPSHOT_RELEASE_SECONDS, startData } from './request-clock';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest, OnEventResponse } from './types';
import { terminateTestInstances, validateImage } from './validation';
import { Attr, BuilderMode, copyImageIdAttribute, MANAGED_BY_VALUE, MAX_TAG_VALUE_LENGTH, RemovalMode, Tag } from '../../src/private/contract';

type CloudFormationSdk = typeof import('@aws-sdk/client-cloudformation');

let cloudFormation: { client: CloudFormationClient; sdk: CloudFormationSdk } | undefined;

/**
 * The CloudFormation client, loaded on first use: only a Delete that keeps superseded images needs it,
 * and loading its SDK costs every cold start about 60 ms.
 */
function cfn(): { client: CloudFormationClient; sdk: CloudFormationSdk } {
  if (!cloudFormation) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sdk = require('@aws-sdk/client-cloudformation') as CloudFormationSdk;
    cloudFormation = { client: new sdk.CloudFormationClient({ maxAttempts: 6 }), sdk };
  }
  return cloudFormation;
}

export async function onEvent(event: OnEventRequest): Promise<OnEventResponse> {
  try {
    return await handleEvent(event);
  } catch (error) {
    throw forCloudFormation(error);
  }
}

export async function isComplete(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  try {
    return await pollEvent(event);
  } catch (error) {
    throw forCloudFormation(error);
  }
}

async function handleEvent(event: OnEventRequest): Promise<OnEventResponse> {
  log('onEvent', eventFields(event));
  const requestType = event.RequestType;
  switch (requestType) {
    case 'Create':
      return bakeOrAdopt(event, parseProperties(event.ResourceProperties));
    case 'Update':
      return update(event);
    case 'Delete':
      return remove(event);
    default: {
      const unknown: never = requestType;
      throw new Error(`Unknown request type: ${unknown}`);
    }
  }
}

async function pollEvent(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const requestType = event.RequestType;
  switch (requestType) {
    case 'Delete':
      // onEvent deleted everything but the snapshots EC2 still held.
      return { IsComplete: await releaseSnapshots(event) };
    case 'Create':
    case 'Update':
      if (!await releaseSnapshots(event)) {
        return { IsComplete: false };
      }
      return pollBake(event, parseProperties(event.ResourceProperties));
    default: {
      const unknown: never = requestType;
      throw new Error(`Unknown request type: ${unknown}`);
    }
  }
}

async function update(event: OnEventRequest): Promise<OnEventResponse> {
  const props = parseProperties(event.ResourceProperties);
  const physicalId = event.PhysicalResourceId;
  if (!isImageId(physicalId) || imageInputsChanged(event.OldResourceProperties ?? {}, event.ResourceProperties)) {
    // A new physical id makes this a replacement: CloudFormation deletes the old image once the whole
    // stack update has succeeded, and keeps it if the update rolls back.
    return bakeOrAdopt(event, props);
  }
  log('image inputs unchanged: keeping the image', { imageId: physicalId });
  const oldRegions = parseCopyRegions(event.OldResourceProperties ?? {});
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

/**
 * Creates the image, or adopts the one these inputs already produced: a retried Create, or the Update
 * of a rollback that asks for the previous image again, must not leave a second image behind.
 */
async function bakeOrAdopt(event: OnEventRequest, props: BakeProperties): Promise<OnEventResponse> {
  const name = imageName(props);
  const existing = await findImageByName(homeRegion(), name);
  if (existing?.ImageId) {
    log('adopting the image these inputs already produced', { imageId: existing.ImageId, imageName: name, state: existing.State });
    return bakeStarted(existing.ImageId, name);
  }

  const tags = imageTags(event, name, props);
  try {
    const response = await ec2.send(new CreateImageCommand({
      InstanceId: props.instanceId,
      Name: name,
      Description: props.description,
      NoReboot: props.noReboot,
      TagSpecifications: [
        { ResourceType: 'image', Tags: tags },
        { ResourceType: 'snapshot', Tags: tags },
      ],
    }));
    if (!response.ImageId) {
      throw new Error('CreateImage returned no ImageId');
    }
    log('image creation started', { imageId: response.ImageId, imageName: name, instanceId: props.instanceId, noReboot: props.noReboot });
    return bakeStarted(response.ImageId, name);
  } catch (error) {
    if (errorCode(error) === 'InvalidAMIName.Duplicate') {
      // Another invocation created it between our lookup and CreateImage, or an earlier attempt of this very
      // CreateImage did and its answer was lost (the SDK retries on 5xx and lost connections).
      const raced = await findImageByName(homeRegion(), name);
      if (raced?.ImageId) {
        log('adopting the image a concurrent request or an earlier attempt created', { imageId: raced.ImageId, imageName: name });
        return bakeStarted(raced.ImageId, name);
      }
    }
    throw new Error(createImageFailure(props, name, error));
  }
}

function bakeStarted(imageId: string, name: string): OnEventResponse {
  return { PhysicalResourceId: imageId, Data: { ...startData(), [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
}

async function pollBake(event: IsCompleteRequest, props: BakeProperties): Promise<IsCompleteResponse> {
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
  const sharedBefore = event.RequestType === 'Update' && !sharesWithNobody(parseSharing(event.OldResourceProperties ?? {}));
  const before = event.RequestType === 'Update' ? previousProperties(event) : undefined;
  const images = [{ region: homeRegion(), imageId }, ...copies.available.map((copy) => ({ region: copy.region, imageId: copy.image.ImageId ?? '' }))];
  for (const target of images) {
    if (!sharesWithNobody(props.sharing) || sharedBefore) {
      await shareImage(target.region, target.imageId, props.sharing);
    }
    // Copies deprecate together with their source: the date counts from the source's creation.
    await setLifecycle(target.region, target.imageId, image.CreationDate, props, before);
  }
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

/** Stops, terminates or leaves the builder once the image is available. Repeatable. */
async function settleBuilder(props: BakeProperties): Promise<void> {
  const instanceId = props.instanceId;
  try {
    switch (props.builderAfterBake) {
      case BuilderMode.STOP:
        await ec2.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));
        log('builder stopping', { instanceId });
        return;
      case BuilderMode.TERMINATE:
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
        log('builder terminating', { instanceId });
        return;
      case BuilderMode.KEEP_RUNNING:
        log('builder left running', { instanceId });
        return;
    }
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidInstanceID.NotFound' || code === 'IncorrectInstanceState') {
      // Already terminated (or terminating): nothing left to stop.
      log('builder already gone', { instanceId, code });
      return;
    }
    throw new Error(`Could not ${props.builderAfterBake} builder ${instanceId}: ${describeError(error)}`);
  }
}

/** The properties of the resource before an Update; undefined when they cannot be read. */
function previousProperties(event: OnEventRequest): BakeProperties | undefined {
  try {
    return event.OldResourceProperties ? parseProperties(event.OldResourceProperties) : undefined;
  } catch {
    return undefined;
  }
}

async function remove(event: OnEventRequest): Promise<OnEventResponse> {
  const imageId = event.PhysicalResourceId;
  if (!isImageId(imageId)) {
    // The Create failed before CreateImage answered: there is no image to delete.
    log('no image to delete', { physicalResourceId: imageId });
    return { PhysicalResourceId: imageId };
  }
  const props = parseProperties(event.ResourceProperties);
  if (props.removal === RemovalMode.RETAIN) {
    log('removal policy RETAIN: image and snapshots kept', { imageId });
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
  const inUse = await deleteWithRetention(event, imageId, props);
  return { PhysicalResourceId: imageId, Data: { ...startData(), ...snapshotsInUseData(inUse) } };
}

/**
 * Deletes the image, or keeps it among the superseded images (keepSupersededImages) and deletes the oldest
 * beyond them. Returns the snapshots EC2 still reports in use.
 */
async function deleteWithRetention(event: OnEventRequest, imageId: string, props: BakeProperties): Promise<SnapshotInUse[]> {
  const inUse: SnapshotInUse[] = [];
  // Superseded images kept under an earlier keepSupersededImages (older than this one) still go when their time
  // comes, whatever these properties say: look for them unless these properties keep some (then CloudFormation is
  // asked in any case). A newer image of this resource is its replacement and needs no question.
  if (props.keepSuperseded > 0 || keptBefore(await ownImages(event), imageId)) {
    const situation = await deleteSituation(event, imageId);
    log('delete with retention', { imageId, situation: situation.kind, keep: props.keepSuperseded });
    switch (situation.kind) {
      case 'replaced': {
        // A successful update replaced this image: keep it among the newest superseded ones.
        const superseded = (await ownImages(event)).filter((image) => image.ImageId !== situation.currentImageId);
        for (const image of superseded.slice(props.keepSuperseded)) {
          inUse.push(...await deleteEverywhere(event, image.ImageId ?? '', props));
        }
        return inUse;
      }
      case 'removed':
        // The resource leaves the stack: the superseded images it kept go with it.
        for (const image of await ownImages(event)) {
          if (image.ImageId !== imageId) {
            inUse.push(...await deleteEverywhere(event, image.ImageId ?? '', props));
          }
        }
        break;
      case 'rolled-back':
        // The half-made image of a failed update: nothing ever used it.
        break;
    }
  }
  inUse.push(...await deleteEverywhere(event, imageId, props));
  return inUse;
}

/** True when the resource has images older than this one (superseded images an earlier template kept). */
function keptBefore(images: Image[], imageId: string): boolean {
  const self = images.find((image) => image.ImageId === imageId);
  const created = Date.parse(self?.CreationDate ?? '');
  // Not newer is enough: images of the same second, or without a date, are asked about rather than leaked.
  return images.some((image) => image.ImageId !== imageId
    && (!self || Number.isNaN(created) || !((Date.parse(image.CreationDate ?? '') || 0) > created)));
}

/** At most this many in-use snapshots travel to isComplete: the custom resource's response must stay within 4 KB. */
const MAX_SNAPSHOTS_IN_USE = 30;

function snapshotsInUseData(inUse: SnapshotInUse[]): Record<string, string> {
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
async function releaseSnapshots(event: IsCompleteRequest): Promise<boolean> {
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

type DeleteSituation =
  | { readonly kind: 'replaced'; readonly currentImageId: string }
  | { readonly kind: 'removed' }
  | { readonly kind: 'rolled-back' };

/**
 * Why CloudFormation deletes this image, from the stack's status and the resource's current physical id:
 * replaced by a successful update (keep it), cleaned up after a failed update (delete it), or removed
 * with the resource or the stack (delete it and every superseded image kept).
 */
async function deleteSituation(event: OnEventRequest, imageId: string): Promise<DeleteSituation> {
  const { client, sdk } = cfn();
  let status: string;
  try {
    const stacks = await client.send(new sdk.DescribeStacksCommand({ StackName: event.StackId }));
    status = stacks.Stacks?.[0]?.StackStatus ?? '';
  } catch (error) {
    throw withContext(error, `DescribeStacks for ${stackName(event.StackId)} (to decide which images to keep)`);
  }
  if (status === 'DELETE_IN_PROGRESS') {
    return { kind: 'removed' };
  }
  if (status.startsWith('UPDATE_ROLLBACK')) {
    return { kind: 'rolled-back' };
  }
  try {
    const resource = await client.send(new sdk.DescribeStackResourceCommand({
      StackName: event.StackId,
      LogicalResourceId: event.LogicalResourceId,
    }));
    const current = resource.StackResourceDetail?.PhysicalResourceId;
    return current && current !== imageId && isImageId(current) ? { kind: 'replaced', currentImageId: current } : { kind: 'removed' };
  } catch (error) {
    if (/does not exist/i.test(error instanceof Error ? error.message : '')) {
      return { kind: 'removed' };
    }
    throw withContext(error, `DescribeStackResource for ${event.LogicalResourceId} (to decide which images to keep)`);
  }
}

/** This resource's images (tagged with its stack id and logical id), newest first. */
async function ownImages(event: OnEventRequest): Promise<Image[]> {
  try {
    const response = await ec2.send(new DescribeImagesCommand({
      Owners: ['self'],
      Filters: [
        { Name: `tag:${Tag.STACK_ID}`, Values: [event.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [event.LogicalResourceId] },
      ],
    }));
    return (response.Images ?? [])
      .filter((image) => image.ImageId && madeByThisResource(image, event))
      .sort((a, b) => (Date.parse(b.CreationDate ?? '') || 0) - (Date.parse(a.CreationDate ?? '') || 0));
  } catch (error) {
    throw withContext(error, `DescribeImages for the images of ${event.LogicalResourceId}`);
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

function imageTags(event: OnEventRequest, name: string, props: BakeProperties): Ec2Tag[] {
  const manifest: Array<[string, string | undefined]> = [
    [Tag.BASE_IMAGE, props.manifest.baseImageId],
    [Tag.CONFIG_SETS, props.manifest.configSets],
    [Tag.INIT_FINGERPRINT, props.manifest.initFingerprint],
    [Tag.VERSION, props.manifest.libraryVersion],
    [Tag.BAKED_AT, new Date().toISOString()],
  ];
  return [
    { Key: 'Name', Value: name },
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_NAME, Value: stackName(event.StackId) },
    { Key: Tag.STACK_ID, Value: event.StackId },
    { Key: Tag.LOGICAL_ID, Value: event.LogicalResourceId },
    { Key: Tag.IMAGE_NAME, Value: name },
    ...manifest.flatMap(([Key, value]) => (value ? [{ Key, Value: tagValue(value) }] : [])),
  ];
}

/** EC2 takes tag values of at most 256 characters: a longer value is cut, and says so. */
export function tagValue(value: string): string {
  return value.length <= MAX_TAG_VALUE_LENGTH ? value : `${value.slice(0, MAX_TAG_VALUE_LENGTH - 3)}...`;
}

/** arn:aws:cloudformation:region:account:stack/NAME/uuid -> NAME */
export function stackName(stackId: string): string {
  return stackId.split('/')[1] ?? stackId;
}

/** The copy parameter name of the properties before an Update; undefined when they publish none (or cannot be read). */
function previousCopyParameterName(event: OnEventRequest): string | undefined {
  try {
    return parseCopyParameterName(event.OldResourceProperties ?? {});
  } catch {
    return undefined;
  }
}

/** The regions without the stack's own, whose parameter is a CloudFormation resource. */
function otherRegions(regions: string[]): string[] {
  return regions.filter((region) => region !== homeRegion());
}

function isImageId(id: string | undefined): id is string {
  return typeof id === 'string' && /^ami-[0-9a-f]+$/.test(id);
}

function createImageFailure(props: BakeProperties, name: string, error: unknown): string {
  const code = errorCode(error);
  const hint = code === 'IncorrectState' || code === 'IncorrectInstanceState' || code === 'InvalidInstanceID.NotFound'
    ? ' The builder is no longer there to image (terminated after an earlier bake?): change rebakeTrigger to bake from a new builder.'
    : '';
  return `CreateImage for builder ${props.instanceId} (image name ${name}) failed: ${describeError(error)}.${hint}`;
}

/** The fields of an event that are safe and useful to log (never the ResponseURL). */
function eventFields(event: OnEventRequest): Record<string, unknown> {
  return {
    requestType: event.RequestType,
    requestId: event.RequestId,
    logicalResourceId: event.LogicalResourceId,
    physicalResourceId: event.PhysicalResourceId,
  };
}
