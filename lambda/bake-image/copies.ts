/**
 * Copies of the image in other regions (copyToRegions). A copy has the source's name, description and tags,
 * so it is found by name in its region (AMI names are unique per account and region): a retried poll adopts
 * the copy an earlier poll started, and a Delete finds the copies of an image it no longer knows the id of.
 */
import { CopyImageCommand, CreateTagsCommand, type Image, type Tag as Ec2Tag } from '@aws-sdk/client-ec2';
import { ec2, ec2In, homeRegion } from './clients';
import { describeError, errorCode, withContext } from './errors';
import { bakeProgress } from './image-state';
import { deleteImage, findImageByName, madeByThisResource, type Owner, type SnapshotInUse } from './images';
import { log } from './log';
import type { BakeProperties } from '../../src/private/contract';
import { MAX_TAG_VALUE_LENGTH, Tag } from '../../src/private/contract';

/** Where the copies of an image are: the ones still pending, and the available ones by region. */
export interface CopiesProgress {
  readonly pending: string[];
  readonly available: ReadonlyArray<{ readonly region: string; readonly image: Image }>;
}

/**
 * One step for every copy the properties ask for: starts the copies not started yet, and reports which are
 * pending and which available. Throws when a copy failed, naming the region and EC2's reason. One
 * DescribeImages call per region and poll, in parallel.
 */
export async function pollCopies(owner: Owner, source: Image, props: BakeProperties): Promise<CopiesProgress> {
  await recordCopyRegions(source, otherRegions(props.copyToRegions));
  const results = await Promise.all(otherRegions(props.copyToRegions).map((region) => pollCopy(owner, source, region, props)));
  return {
    pending: results.filter((result) => !result.image).map((result) => result.region),
    available: results.flatMap((result) => (result.image ? [{ region: result.region, image: result.image }] : [])),
  };
}

async function pollCopy(owner: Owner, source: Image, region: string, props: BakeProperties): Promise<{ region: string; image?: Image }> {
  const name = source.Name ?? '';
  const copy = await findImageByName(region, name);
  if (!copy) {
    await startCopy(source, region, props);
    return { region };
  }
  if (!madeByThisResource(copy, owner)) {
    throw new Error(
      `An image named ${name} already exists in ${region} (${copy.ImageId}) without the tags of this resource: ` +
      'it was not copied by this stack and is left alone. Deregister or rename it, or change imageName.',
    );
  }
  const progress = bakeProgress(copy);
  switch (progress.kind) {
    case 'pending':
      return { region };
    case 'available':
      return { region, image: copy };
    case 'failed':
      throw new Error(
        `Copy ${copy.ImageId} of image ${source.ImageId} in ${region} is ${progress.state} (${progress.reason}). ` +
        'The copies and the image are deleted with this resource.',
      );
  }
}

async function startCopy(source: Image, region: string, props: BakeProperties): Promise<void> {
  const name = source.Name ?? '';
  const tags = copyTags(source);
  const kmsKeyId = props.copyKmsKeyIds[region];
  try {
    const response = await ec2In(region).send(new CopyImageCommand({
      SourceImageId: source.ImageId,
      SourceRegion: homeRegion(),
      Name: name,
      Description: source.Description,
      // The source's snapshots are encrypted, so the copy's are: with the key given for the region, or the
      // region's default EBS key.
      Encrypted: true,
      ...(kmsKeyId ? { KmsKeyId: kmsKeyId } : {}),
      // EC2 makes one copy per token and region, however often a lost answer is retried.
      ClientToken: `${source.ImageId}-copy`,
      TagSpecifications: [
        { ResourceType: 'image', Tags: tags },
        { ResourceType: 'snapshot', Tags: tags },
      ],
    }));
    log('image copy started', { imageId: source.ImageId, region, copyImageId: response.ImageId, kmsKeyId });
  } catch (error) {
    if (errorCode(error) === 'InvalidAMIName.Duplicate') {
      // A concurrent poll started it between our lookup and CopyImage: the next poll finds it by name.
      log('image copy already started', { imageId: source.ImageId, region, imageName: name });
      return;
    }
    throw new Error(`CopyImage of image ${source.ImageId} (${name}) to ${region} failed: ${describeError(error)}`);
  }
}

/** The regions an image was copied to, as its tag records them. */
export function recordedCopyRegions(image: Image | undefined): string[] {
  const value = image?.Tags?.find((tag) => tag.Key === Tag.COPY_REGIONS)?.Value ?? '';
  return value.split(' ').filter((region) => region !== '');
}

/**
 * Records on the image every region it is copied to, before the copies start: the Delete of this image may
 * come with properties that list other regions (an update changed them, and the image was kept as a
 * superseded one), and must still find every copy. One CreateTags call when the list grows, none otherwise.
 */
async function recordCopyRegions(source: Image, regions: string[]): Promise<void> {
  const recorded = recordedCopyRegions(source);
  const all = [...new Set([...recorded, ...regions])].sort();
  if (all.length === recorded.length) {
    return;
  }
  const value = all.join(' ').length <= MAX_TAG_VALUE_LENGTH ? all.join(' ') : [...regions].sort().join(' ').slice(0, MAX_TAG_VALUE_LENGTH);
  try {
    await ec2.send(new CreateTagsCommand({ Resources: [source.ImageId ?? ''], Tags: [{ Key: Tag.COPY_REGIONS, Value: value }] }));
  } catch (error) {
    throw withContext(error, `CreateTags (${Tag.COPY_REGIONS}) for image ${source.ImageId}`);
  }
  source.Tags = [...(source.Tags ?? []).filter((tag) => tag.Key !== Tag.COPY_REGIONS), { Key: Tag.COPY_REGIONS, Value: value }];
}

/** The source's own tags (not the aws: ones EC2 keeps for itself), and where the copy comes from. */
function copyTags(source: Image): Ec2Tag[] {
  const own = new Set<string>([Tag.COPIED_FROM, Tag.COPY_REGIONS]);
  return [
    ...(source.Tags ?? []).filter((tag) => tag.Key && !tag.Key.startsWith('aws:') && !own.has(tag.Key)),
    { Key: Tag.COPIED_FROM, Value: `${homeRegion()}/${source.ImageId}` },
  ];
}

/**
 * Deletes the copies of the image named `name` in these regions, with their snapshots; copies that carry
 * another resource's tags are left alone. Repeatable: a copy already gone still has its snapshots found by tag.
 * Returns the snapshots EC2 still reports in use.
 */
export async function deleteCopies(owner: Owner, name: string, regions: string[], protectedByProps: boolean): Promise<SnapshotInUse[]> {
  const inUse: SnapshotInUse[] = [];
  for (const region of otherRegions(regions)) {
    const copy = await findImageByName(region, name);
    inUse.push(...await deleteImage(region, owner, copy?.ImageId, name, protectedByProps));
  }
  return inUse;
}

/**
 * The regions to copy to, without the stack's own: the construct refuses it where it knows the stack's region,
 * and an environment-agnostic stack deployed there must not take its own image for a copy.
 */
function otherRegions(regions: string[]): string[] {
  return regions.filter((region) => region !== homeRegion());
}
