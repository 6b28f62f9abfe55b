/**
 * Deprecation and deregistration protection through the shipped handler bundle against moto_server. moto
 * 5.2.1 lacks both calls: the harness proxy emulates them (and EC2's refusal to deregister a protected image).
 */
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { customResourceEvent, imageProps, runToCompletion, useMotoSuite } from './moto-suite';
import { Attr, Prop } from '../../src/private/contract';

jest.setTimeout(60_000);

const NINETY_DAYS = 90 * 24 * 3600;

const suite = useMotoSuite();

function props(instanceId: string, extra: Record<string, string> = {}): Record<string, string> {
  return imageProps(instanceId, 'lifecycle', extra);
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Record<string, string>, physicalId?: string, oldProps?: Record<string, string>) {
  return customResourceEvent(type, 'LifecycleImage', resourceProperties, { physicalId, oldProps });
}

const complete = (request: ReturnType<typeof event>) => runToCompletion(suite.handler(), request);

/**
 * Whether moto still has the image. Only EC2's answers for an image that does not exist (an empty answer,
 * `InvalidAMIID.NotFound`, `InvalidAMIID.Unavailable`) mean it is gone: any other error is a problem of the test.
 */
async function imageExists(imageId: string): Promise<boolean> {
  try {
    const response = await suite.harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return (response.Images ?? []).some((image) => image.ImageId === imageId);
  } catch (error) {
    const code = (error as { name?: string }).name;
    if (code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Unavailable') {
      return false;
    }
    throw error;
  }
}

describe('deprecation and deregistration protection through moto', () => {
  test('deprecates the image ninety days after its creation once it is available', async () => {
    const imageId = await complete(event('Create', props(await suite.harness().launchBuilder(), { [Prop.DEPRECATE_AFTER_SECONDS]: String(NINETY_DAYS) })));
    const image = (await suite.harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0];

    const deprecateAt = Date.parse(suite.harness().proxy.imageLifecycle(imageId).deprecateAt ?? '');
    expect(deprecateAt - Date.parse(image.CreationDate!)).toBeGreaterThanOrEqual(NINETY_DAYS * 1000 - 1000);
    expect(deprecateAt - Date.parse(image.CreationDate!)).toBeLessThanOrEqual(NINETY_DAYS * 1000 + 1000);
  });

  test('an Update that drops deprecateAfter removes the deprecation of the same image', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const before = props(instanceId, { [Prop.DEPRECATE_AFTER_SECONDS]: String(NINETY_DAYS) });
    const imageId = await complete(event('Create', before));

    expect(await complete(event('Update', props(instanceId), imageId, before))).toBe(imageId);
    expect(suite.harness().proxy.imageLifecycle(imageId).deprecateAt).toBeUndefined();
  });

  test('protects the image from deregistration, and the Delete lifts the protection before deregistering', async () => {
    const protectedProps = props(await suite.harness().launchBuilder(), { [Prop.DEREGISTRATION_PROTECTION]: 'true' });
    const imageId = await complete(event('Create', protectedProps));
    expect(suite.harness().proxy.imageLifecycle(imageId).protection).toBe('enabled');
    // DescribeImages shows protection without a cooldown as EC2 does.
    const shown = (await suite.harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0];
    expect(shown.DeregistrationProtection).toBe('enabled-without-cooldown');
    expect(await imageExists(imageId)).toBe(true);
    suite.harness().proxy.clearRequests();

    const response = await suite.handler().onEvent(event('Delete', protectedProps, imageId));

    expect(response).toEqual({ PhysicalResourceId: imageId, Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) } });
    expect(Number.isNaN(Date.parse(response.Data?.[Attr.REQUEST_STARTED_AT] ?? ''))).toBe(false);
    expect(Date.now() - Date.parse(response.Data?.[Attr.REQUEST_STARTED_AT] ?? '')).toBeLessThan(60_000);
    expect(await imageExists(imageId)).toBe(false);
    const actions = suite.harness().proxy.actions();
    expect(actions.indexOf('DisableImageDeregistrationProtection')).toBeGreaterThanOrEqual(0);
    expect(actions.indexOf('DisableImageDeregistrationProtection')).toBeLessThan(actions.indexOf('DeregisterImage'));
    expect(actions.filter((action) => action === 'DeregisterImage')).toHaveLength(1);
    expect(suite.harness().proxy.requests.filter((request) => request.action === 'DeregisterImage').map((request) => request.errorCode))
      .toEqual([undefined]);
  });

  test('asks for neither when neither is set', async () => {
    suite.harness().proxy.clearRequests();
    await complete(event('Create', props(await suite.harness().launchBuilder())));
    expect(suite.harness().proxy.actions().filter((action) => /Deprecation|DeregistrationProtection/.test(action))).toEqual([]);
  });
});
