/**
 * keepSupersededImages: which images of this resource a Delete removes. CloudFormation tells why it deletes the
 * image (DescribeStacks, DescribeStackResource): replaced by a successful update (kept among the newest superseded
 * images), removed with the resource or the stack, or the half-made image of an update that rolled back.
 */
import { DescribeImagesCommand, type Image } from '@aws-sdk/client-ec2';
import { isImageId } from './bake';
import { cloudFormation, ec2 } from './clients';
import { withContext } from './errors';
import { madeByThisResource } from './images';
import { log } from './log';
import { stackName } from './tags';
import type { OnEventRequest } from './types';
import type { BakeProperties } from '../../src/private/contract';
import { Tag } from '../../src/private/contract';

/**
 * The images a Delete of this image removes, in order: the superseded images beyond those kept (keepSupersededImages),
 * and the image itself unless a successful update replaced it and it is kept.
 */
export async function imagesToDelete(event: OnEventRequest, imageId: string, props: BakeProperties): Promise<string[]> {
  const doomed: string[] = [];
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
          doomed.push(image.ImageId ?? '');
        }
        return doomed;
      }
      case 'removed':
        // The resource leaves the stack: the superseded images it kept go with it.
        for (const image of await ownImages(event)) {
          if (image.ImageId !== imageId) {
            doomed.push(image.ImageId ?? '');
          }
        }
        break;
      case 'rolled-back':
        // The half-made image of a failed update: nothing ever used it.
        break;
    }
  }
  doomed.push(imageId);
  return doomed;
}

/** True when the resource has images older than this one (superseded images an earlier template kept). */
function keptBefore(images: Image[], imageId: string): boolean {
  const self = images.find((image) => image.ImageId === imageId);
  const created = Date.parse(self?.CreationDate ?? '');
  // Not newer is enough: images of the same second, or without a date, are asked about rather than leaked.
  return images.some((image) => image.ImageId !== imageId
    && (!self || Number.isNaN(created) || !((Date.parse(image.CreationDate ?? '') || 0) > created)));
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
  const { client, sdk } = cloudFormation();
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
