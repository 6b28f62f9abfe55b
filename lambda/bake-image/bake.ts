/**
 * Starting the bake (onEvent of a Create, or of an Update that changes the image's inputs): CreateImage from the
 * builder, or the adoption of the image these inputs already produced, found by its deterministic name. The AMI id
 * becomes the resource's physical id at once, so that a bake which later fails still receives the Delete.
 */
import { CreateImageCommand } from '@aws-sdk/client-ec2';
import { ec2, homeRegion } from './clients';
import { describeError, errorCode } from './errors';
import { findImageByName } from './images';
import { log } from './log';
import { startData } from './request-clock';
import { imageTags } from './tags';
import type { OnEventRequest, OnEventResponse } from './types';
import type { BakeProperties } from '../../src/private/contract';
import { imageName, Attr } from '../../src/private/contract';

/**
 * Creates the image, or adopts the one these inputs already produced: a retried Create, or the Update
 * of a rollback that asks for the previous image again, must not leave a second image behind.
 */
export async function bakeOrAdopt(event: OnEventRequest, props: BakeProperties): Promise<OnEventResponse> {
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

/**
 * True when a physical resource id names an image: the id bakeOrAdopt answers with. A Create that failed before
 * CreateImage answered leaves the framework's own id instead.
 */
export function isImageId(id: string | undefined): id is string {
  return typeof id === 'string' && /^ami-[0-9a-f]+$/.test(id);
}

function bakeStarted(imageId: string, name: string): OnEventResponse {
  return { PhysicalResourceId: imageId, Data: { ...startData(), [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
}

function createImageFailure(props: BakeProperties, name: string, error: unknown): string {
  const code = errorCode(error);
  const hint = code === 'IncorrectState' || code === 'IncorrectInstanceState' || code === 'InvalidInstanceID.NotFound'
    ? ' The builder is no longer there to image (terminated after an earlier bake?): change rebakeTrigger to bake from a new builder.'
    : '';
  return `CreateImage for builder ${props.instanceId} (image name ${name}) failed: ${describeError(error)}.${hint}`;
}
