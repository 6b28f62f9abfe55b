/**
 * onEvent and isComplete handlers of the BakedImage provider (CDK provider framework).
 *
 * onEvent starts the work and answers at once: Create and image-changing Updates call CreateImage and
 * return the AMI id as PhysicalResourceId immediately, so that a bake which later fails or times out
 * still receives the Delete that cleans it up. isComplete makes one DescribeImages call per poll.
 * Delete deregisters the image and deletes its snapshots, and is safe to repeat.
 */
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import {
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  DisableImageDeprecationCommand,
  DisableImageDeregistrationProtectionCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  ModifyImageAttributeCommand,
  type Image,
  StopInstancesCommand,
  type Tag as Ec2Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { bakeProgress } from './image-state';
import { log, warn } from './log';
import { imageName } from './naming';
import { type BakeProperties, imageInputsChanged, parseProperties, parseSharing, sharesWithNobody } from './properties';
import { launchPermissionChange, type LaunchPermission } from './sharing';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest, OnEventResponse } from './types';
import { Attr, BuilderMode, MANAGED_BY_VALUE, MAX_TAG_VALUE_LENGTH, RemovalMode, Tag } from '../../src/private/contract';

const ec2 = new EC2Client({ maxAttempts: 6 });
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

export async function isComplete(event: IsCompleteRequest): Promise<IsCompleteResponse> {
  const requestType = event.RequestType;
  switch (requestType) {
    case 'Delete':
      // onEvent finished the delete synchronously.
      return { IsComplete: true };
    case 'Create':
    case 'Update':
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
  return { PhysicalResourceId: physicalId };
}

/**
 * Creates the image, or adopts the one these inputs already produced: a retried Create, or the Update
 * of a rollback that asks for the previous image again, must not leave a second image behind.
 */
async function bakeOrAdopt(event: OnEventRequest, props: BakeProperties): Promise<OnEventResponse> {
  const name = imageName(props);
  const existing = await findImageByName(name);
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
      const raced = await findImageByName(name);
      if (raced?.ImageId) {
        log('adopting the image a concurrent request or an earlier attempt created', { imageId: raced.ImageId, imageName: name });
        return bakeStarted(raced.ImageId, name);
      }
    }
    throw new Error(createImageFailure(props, name, error));
  }
}

function bakeStarted(imageId: string, name: string): OnEventResponse {
  return { PhysicalResourceId: imageId, Data: { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
}

async function pollBake(event: IsCompleteRequest, props: BakeProperties): Promise<IsCompleteResponse> {
  const imageId = event.PhysicalResourceId;
  const image = await describeImage(imageId);
  const progress = bakeProgress(image);
  switch (progress.kind) {
    case 'pending': {
      const elapsedSeconds = secondsSince(image?.CreationDate);
      if (props.bakeTimeoutSeconds !== undefined && elapsedSeconds !== undefined && elapsedSeconds > props.bakeTimeoutSeconds) {
        throw new Error(
          `Image ${imageId} from builder ${props.instanceId} is still pending after ${Math.round(elapsedSeconds)} s, ` +
          `longer than bakeTimeout (${props.bakeTimeoutSeconds} s). Raise bakeTimeout for large volumes; ` +
          'the pending image is deleted with this resource.',
        );
      }
      log('image pending', { imageId, elapsedSeconds });
      return { IsComplete: false };
    }
    case 'failed':
      throw new Error(
        `Image ${imageId} from builder ${props.instanceId} is ${progress.state} (${progress.reason}). ` +
        'Check the image in the EC2 console, and the builder\'s cfn-init log (/var/log/cfn-init.log; also in the builder\'s ' +
        'system log, EC2 console "Get system log", unless initOptions.printLog is false); the image is deleted with this resource.',
      );
    case 'available': {
      await settleBuilder(props);
      await applySharing(event, imageId, props);
      await applyLifecycle(event, imageId, image?.CreationDate, props);
      const name = image?.Name ?? imageName(props);
      log('image available', { imageId, imageName: name });
      return { IsComplete: true, Data: { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
    }
  }
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

/**
 * Makes the image launchable by exactly the accounts, organizations and units asked for: adds what is
 * missing, removes what is no longer asked for. No call at all when nothing is shared now or before.
 */
async function applySharing(event: IsCompleteRequest, imageId: string, props: BakeProperties): Promise<void> {
  const sharedBefore = event.RequestType === 'Update' && !sharesWithNobody(parseSharing(event.OldResourceProperties ?? {}));
  if (sharesWithNobody(props.sharing) && !sharedBefore) {
    return;
  }
  let current: LaunchPermission[];
  try {
    const response = await ec2.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }));
    current = response.LaunchPermissions ?? [];
  } catch (error) {
    throw withContext(error, `DescribeImageAttribute (launchPermission) for image ${imageId}`);
  }
  const change = launchPermissionChange(current, props.sharing);
  if (change.add.length === 0 && change.remove.length === 0) {
    log('launch permissions already as asked', { imageId });
    return;
  }
  try {
    await ec2.send(new ModifyImageAttributeCommand({
      ImageId: imageId,
      LaunchPermission: {
        ...(change.add.length > 0 ? { Add: change.add } : {}),
        ...(change.remove.length > 0 ? { Remove: change.remove } : {}),
      },
    }));
  } catch (error) {
    throw new Error(`Could not share image ${imageId} (launch permissions): ${describeError(error)}`);
  }
  log('launch permissions updated', { imageId, added: change.add, removed: change.remove });
}

/**
 * Deprecation and deregistration protection, as asked; what an Update no longer asks for is lifted.
 * No call at all when neither is asked for now or before.
 */
async function applyLifecycle(event: IsCompleteRequest, imageId: string, creationDate: string | undefined, props: BakeProperties): Promise<void> {
  const before = event.RequestType === 'Update' ? previousProperties(event) : undefined;
  if (props.deprecateAfterSeconds !== undefined) {
    // Counted from the image's creation, so an Update that rebakes nothing keeps the same date; EC2
    // refuses a date in the past, so a date already passed becomes one minute from now.
    const created = Date.parse(creationDate ?? '') || Date.now();
    const deprecateAt = new Date(Math.max(created + props.deprecateAfterSeconds * 1000, Date.now() + 60_000));
    await lifecycleCall(`EnableImageDeprecation for image ${imageId}`,
      () => ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: deprecateAt })));
    log('image deprecation set', { imageId, deprecateAt: deprecateAt.toISOString() });
  } else if (before?.deprecateAfterSeconds !== undefined) {
    await lifecycleCall(`DisableImageDeprecation for image ${imageId}`,
      () => ec2.send(new DisableImageDeprecationCommand({ ImageId: imageId })));
    log('image deprecation removed', { imageId });
  }
  if (props.deregistrationProtection) {
    await lifecycleCall(`EnableImageDeregistrationProtection for image ${imageId}`,
      () => ec2.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: false })));
    log('deregistration protection enabled', { imageId });
  } else if (before?.deregistrationProtection) {
    await lifecycleCall(`DisableImageDeregistrationProtection for image ${imageId}`,
      () => ec2.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId })));
    log('deregistration protection removed', { imageId });
  }
}

async function lifecycleCall(what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (error) {
    throw new Error(`${what} failed: ${describeError(error)}`);
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
    return { PhysicalResourceId: imageId };
  }
  if (props.keepSuperseded > 0) {
    const situation = await deleteSituation(event, imageId);
    log('delete with retention', { imageId, situation: situation.kind, keep: props.keepSuperseded });
    switch (situation.kind) {
      case 'replaced': {
        // A successful update replaced this image: keep it among the newest superseded ones.
        const superseded = (await ownImages(event)).filter((image) => image.ImageId !== situation.currentImageId);
        for (const image of superseded.slice(props.keepSuperseded)) {
          await deleteImage(event, image.ImageId ?? '', props);
        }
        return { PhysicalResourceId: imageId };
      }
      case 'removed':
        // The resource leaves the stack: the superseded images it kept go with it.
        for (const image of await ownImages(event)) {
          if (image.ImageId !== imageId) {
            await deleteImage(event, image.ImageId ?? '', props);
          }
        }
        break;
      case 'rolled-back':
        // The half-made image of a failed update: nothing ever used it.
        break;
    }
  }
  await deleteImage(event, imageId, props);
  return { PhysicalResourceId: imageId };
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

/** Deregisters one image of this resource and deletes its snapshots. Repeatable. */
async function deleteImage(event: OnEventRequest, imageId: string, props: BakeProperties): Promise<void> {
  const image = await describeImage(imageId);
  if (image && !madeByThisResource(image, event)) {
    warn('image does not carry this resource\'s tags: left alone', { imageId });
    return;
  }
  const name = image?.Name ?? imageName(props);
  const snapshotIds = new Set<string>();
  for (const mapping of image?.BlockDeviceMappings ?? []) {
    if (mapping.Ebs?.SnapshotId) {
      snapshotIds.add(mapping.Ebs.SnapshotId);
    }
  }
  // Snapshots carry the image name: a Delete repeated after the image was deregistered still finds them.
  for (const snapshotId of await findSnapshotsByImageName(event, name, imageId)) {
    snapshotIds.add(snapshotId);
  }

  if (image) {
    if (props.deregistrationProtection || image.DeregistrationProtection?.startsWith('enabled')) {
      await liftDeregistrationProtection(imageId, image.DeregistrationProtection);
    }
    await deregister(imageId);
  } else {
    log('image already gone', { imageId });
  }
  for (const snapshotId of snapshotIds) {
    await deleteSnapshot(snapshotId, imageId);
  }
}

/**
 * Deregistration protection must be lifted before the Delete can deregister. Protection enabled with a
 * cooldown (not by this construct) keeps the image for 24 hours after it is lifted: the Delete then fails
 * and says so, and CloudFormation's retry after the cooldown succeeds.
 */
async function liftDeregistrationProtection(imageId: string, state: string | undefined): Promise<void> {
  try {
    await ec2.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    log('deregistration protection lifted for the delete', { imageId, state });
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Unavailable') {
      return;
    }
    throw new Error(`Could not lift the deregistration protection of image ${imageId}: ${describeError(error)}`);
  }
  if (state?.includes('cooldown')) {
    throw new Error(
      `Image ${imageId} has deregistration protection with a cooldown (${state}): it was lifted now, and EC2 lets ` +
      'the image be deregistered only after the 24-hour cooldown. Delete the stack again after that.',
    );
  }
}

async function deregister(imageId: string): Promise<void> {
  try {
    await ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
    log('image deregistered', { imageId });
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Unavailable') {
      log('image already gone', { imageId, code });
      return;
    }
    throw new Error(`Could not deregister image ${imageId}: ${describeError(error)}`);
  }
}

async function deleteSnapshot(snapshotId: string, imageId: string): Promise<void> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    log('snapshot deleted', { snapshotId, imageId });
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidSnapshot.NotFound') {
      log('snapshot already gone', { snapshotId, imageId });
      return;
    }
    if (code === 'InvalidSnapshot.InUse') {
      warn('snapshot kept: another image still uses it', { snapshotId, imageId });
      return;
    }
    throw new Error(`Could not delete snapshot ${snapshotId} of image ${imageId}: ${describeError(error)}`);
  }
}

async function describeImage(imageId: string): Promise<Image | undefined> {
  try {
    const response = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return response.Images?.find((image) => image.ImageId === imageId);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Unavailable') {
      return undefined;
    }
    throw withContext(error, `DescribeImages for image ${imageId}`);
  }
}

async function findImageByName(name: string): Promise<Image | undefined> {
  try {
    const response = await ec2.send(new DescribeImagesCommand({
      Owners: ['self'],
      Filters: [{ Name: 'name', Values: [name] }],
    }));
    return response.Images?.find((image) => image.Name === name && image.State !== 'deregistered');
  } catch (error) {
    throw withContext(error, `DescribeImages for the image named ${name}`);
  }
}

async function findSnapshotsByImageName(event: OnEventRequest, name: string, imageId: string): Promise<string[]> {
  try {
    const response = await ec2.send(new DescribeSnapshotsCommand({
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${Tag.IMAGE_NAME}`, Values: [name] },
        { Name: `tag:${Tag.STACK_ID}`, Values: [event.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [event.LogicalResourceId] },
      ],
    }));
    return (response.Snapshots ?? []).flatMap((snapshot) => (snapshot.SnapshotId ? [snapshot.SnapshotId] : []));
  } catch (error) {
    throw withContext(error, `DescribeSnapshots for the snapshots of image ${imageId} (${name})`);
  }
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

function madeByThisResource(image: Image, event: OnEventRequest): boolean {
  const tags = new Map((image.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
  return tags.get(Tag.MANAGED_BY) === MANAGED_BY_VALUE
    && tags.get(Tag.STACK_ID) === event.StackId
    && tags.get(Tag.LOGICAL_ID) === event.LogicalResourceId;
}

/** arn:aws:cloudformation:region:account:stack/NAME/uuid -> NAME */
export function stackName(stackId: string): string {
  return stackId.split('/')[1] ?? stackId;
}

function isImageId(id: string | undefined): id is string {
  return typeof id === 'string' && /^ami-[0-9a-f]+$/.test(id);
}

function secondsSince(date: string | undefined): number | undefined {
  if (!date) {
    return undefined;
  }
  const start = Date.parse(date);
  return Number.isNaN(start) ? undefined : (Date.now() - start) / 1000;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null) {
    const { name, Code } = error as { name?: unknown; Code?: unknown };
    if (typeof Code === 'string') {
      return Code;
    }
    if (typeof name === 'string') {
      return name;
    }
  }
  return undefined;
}

/**
 * `Code: message`, and how many attempts the SDK made when it retried (throttling, 5xx, lost connections) and gave up:
 * the CloudFormation event then tells a persistent problem from a single failed request.
 */
function describeError(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const attempts = (error as { $metadata?: { attempts?: unknown } } | null | undefined)?.$metadata?.attempts;
  const retried = typeof attempts === 'number' && attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return (code && code !== 'Error' ? `${code}: ${message}` : message) + retried;
}

/**
 * Puts what the handler was doing in front of an error's message, which is all CloudFormation shows. The error
 * itself is kept (its name, code and $metadata), so callers can still tell one EC2 error from another.
 */
function withContext(error: unknown, context: string): unknown {
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    (error as { message: string }).message = `${context} failed: ${describeError(error)}`;
  }
  return error;
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
