/**
 * Deprecation and deregistration protection through the shipped handler bundle against moto_server. moto
 * 5.2.1 lacks both calls: the harness proxy emulates them (and EC2's refusal to deregister a protected image).
 */
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { type BakeImageHandler, MotoHarness } from './moto-server';
import type { IsCompleteRequest, OnEventRequest } from '../../lambda/bake-image/types';
import { Prop } from '../../src/private/contract';

jest.setTimeout(60_000);

const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/MotoStack/11111111-2222-3333-4444-555555555555';
const NINETY_DAYS = 90 * 24 * 3600;

let harness: MotoHarness;
let handler: BakeImageHandler;
let requestNumber = 0;

beforeAll(async () => {
  harness = await MotoHarness.start();
  handler = harness.loadHandler();
});

afterAll(async () => {
  await harness?.stop();
});

beforeEach(async () => {
  await harness.reset();
  jest.spyOn(console, 'log').mockImplementation(() => undefined);
  jest.spyOn(console, 'warn').mockImplementation(() => undefined);
});

afterEach(() => {
  jest.restoreAllMocks();
  expect(harness.proxy.takeErrors()).toEqual([]);
});

function props(instanceId: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider',
    [Prop.INSTANCE_ID]: instanceId,
    [Prop.NAME_PREFIX]: 'lifecycle',
    [Prop.REMOVAL]: 'destroy',
    [Prop.BUILDER_AFTER_BAKE]: 'stop',
    ...extra,
  };
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Record<string, string>, physicalId?: string, oldProps?: Record<string, string>): OnEventRequest {
  requestNumber += 1;
  return {
    RequestType: type,
    RequestId: `00000000-0000-0000-0000-${String(requestNumber).padStart(12, '0')}`,
    StackId: STACK_ID,
    LogicalResourceId: 'LifecycleImage',
    ResourceType: 'Custom::BakedImage',
    ResourceProperties: resourceProperties,
    PhysicalResourceId: physicalId,
    OldResourceProperties: oldProps,
  };
}

async function complete(request: OnEventRequest): Promise<string> {
  const response = await handler.onEvent(request);
  const completeRequest: IsCompleteRequest = { ...request, PhysicalResourceId: response.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: response.Data };
  expect((await handler.isComplete(completeRequest)).IsComplete).toBe(true);
  return completeRequest.PhysicalResourceId;
}

async function imageExists(imageId: string): Promise<boolean> {
  try {
    const response = await harness.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return (response.Images ?? []).length > 0;
  } catch {
    return false;
  }
}

describe('deprecation and deregistration protection through moto', () => {
  test('deprecates the image ninety days after its creation once it is available', async () => {
    const imageId = await complete(event('Create', props(await harness.launchBuilder(), { [Prop.DEPRECATE_AFTER_SECONDS]: String(NINETY_DAYS) })));
    const image = (await harness.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0];

    const deprecateAt = Date.parse(harness.proxy.imageLifecycle(imageId).deprecateAt ?? '');
    expect(deprecateAt - Date.parse(image.CreationDate!)).toBeGreaterThanOrEqual(NINETY_DAYS * 1000 - 1000);
    expect(deprecateAt - Date.parse(image.CreationDate!)).toBeLessThanOrEqual(NINETY_DAYS * 1000 + 1000);
  });

  test('an Update that drops deprecateAfter removes the deprecation of the same image', async () => {
    const instanceId = await harness.launchBuilder();
    const before = props(instanceId, { [Prop.DEPRECATE_AFTER_SECONDS]: String(NINETY_DAYS) });
    const imageId = await complete(event('Create', before));

    expect(await complete(event('Update', props(instanceId), imageId, before))).toBe(imageId);
    expect(harness.proxy.imageLifecycle(imageId).deprecateAt).toBeUndefined();
  });

  test('protects the image from deregistration, and the Delete lifts the protection before deregistering', async () => {
    const protectedProps = props(await harness.launchBuilder(), { [Prop.DEREGISTRATION_PROTECTION]: 'true' });
    const imageId = await complete(event('Create', protectedProps));
    expect(harness.proxy.imageLifecycle(imageId).protection).toBe('enabled');
    harness.proxy.clearRequests();

    await handler.onEvent(event('Delete', protectedProps, imageId));

    expect(await imageExists(imageId)).toBe(false);
    const actions = harness.proxy.actions();
    expect(actions.indexOf('DisableImageDeregistrationProtection')).toBeGreaterThanOrEqual(0);
    expect(actions.indexOf('DisableImageDeregistrationProtection')).toBeLessThan(actions.indexOf('DeregisterImage'));
  });

  test('asks for neither when neither is set', async () => {
    harness.proxy.clearRequests();
    await complete(event('Create', props(await harness.launchBuilder())));
    expect(harness.proxy.actions().filter((action) => /Deprecation|DeregistrationProtection/.test(action))).toEqual([]);
  });
});
