/**
 * onEvent and isComplete handlers of the BakedImage provider (CDK provider framework).
 *
 * onEvent starts the work and answers at once: Create and image-changing Updates call CreateImage and
 * return the AMI id as PhysicalResourceId immediately, so that a bake which later fails or times out
 * still receives the Delete that cleans it up. isComplete makes one DescribeImages call per poll.
 * Delete deregisters the image and deletes its snapshots, and is safe to repeat; isComplete then retries the
 * snapshots EC2 still held. Every answer of onEvent records when the request's work started (request-clock.ts).
 *
 * The steps, one module each:
 * - bake.ts: CreateImage from the builder, or adopt the image these inputs already produced (onEvent).
 * - keep.ts: an Update that keeps the image: withdraw the copies and parameters no longer asked for (onEvent).
 * - poll.ts: wait for the image, its validation and its copies; then share them, set their lifecycle and publish
 *   the copies' ids (isComplete), with builder.ts settling the builder.
 * - delete.ts: delete the image everywhere, with the superseded images retention.ts no longer keeps (onEvent), and
 *   the snapshots EC2 released since (isComplete).
 */
import { bakeOrAdopt, isImageId } from './bake';
import { releaseSnapshots, remove } from './delete';
import { forCloudFormation } from './errors';
import { keepImage } from './keep';
import { log } from './log';
import { pollBake } from './poll';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest, OnEventResponse } from './types';
import { imageInputsChanged, decodeProperties } from '../../src/private/contract';

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
      return bakeOrAdopt(event, decodeProperties(event.ResourceProperties));
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
      return pollBake(event, decodeProperties(event.ResourceProperties));
    default: {
      const unknown: never = requestType;
      throw new Error(`Unknown request type: ${unknown}`);
    }
  }
}

async function update(event: OnEventRequest): Promise<OnEventResponse> {
  const props = decodeProperties(event.ResourceProperties);
  const physicalId = event.PhysicalResourceId;
  if (!isImageId(physicalId) || imageInputsChanged(event.OldResourceProperties ?? {}, event.ResourceProperties)) {
    // A new physical id makes this a replacement: CloudFormation deletes the old image once the whole
    // stack update has succeeded, and keeps it if the update rolls back.
    return bakeOrAdopt(event, props);
  }
  return keepImage(event, physicalId, props);
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
