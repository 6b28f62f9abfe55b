/**
 * IMDSv2-only images (ImdsSupport v2.0) through the shipped handler bundle against moto_server. moto 5.2.1 ignores
 * ModifyImageAttribute's ImdsSupport: the harness proxy keeps it, shows it in DescribeImages and DescribeImageAttribute,
 * and (with its consistency faults on) shows the change late. Every request is held to the synthesized handler policy
 * (moto-suite.ts); iam-simulator.test.ts decides the call on another stack's image.
 */
import { DescribeImageAttributeCommand, DescribeImagesCommand, ModifyImageAttributeCommand } from '@aws-sdk/client-ec2';
import { ec2ClientFor } from './moto-http';
import { customResourceEvent, imageProps, runToCompletion, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest } from '../../lambda/bake-image/types';
import { copyImageIdAttribute, Prop } from '../../src/private/contract';

jest.setTimeout(60_000);

const COPY_REGION = 'us-west-2';

const suite = useMotoSuite();

// The proxy keeps its consistency settings across tests (reset() forgets only the windows): no test leaks its own.
afterEach(() => suite.harness().proxy.setConsistency({}));

function props(instanceId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return imageProps<unknown>(instanceId, 'imds', { [Prop.REQUIRE_IMDSV2]: 'true', ...extra });
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Record<string, unknown>, physicalId?: string, oldProps?: Record<string, unknown>) {
  return customResourceEvent(type, 'ImdsImage', resourceProperties, { physicalId, oldProps });
}

const complete = (request: ReturnType<typeof event>) => runToCompletion(suite.handler(), request);

/** What EC2 shows of the image's ImdsSupport: in DescribeImages and in DescribeImageAttribute (through the proxy, as EC2 answers). */
async function imdsSupport(imageId: string, region?: string): Promise<{ described?: string; attribute?: string }> {
  const ec2 = region ? ec2ClientFor(suite.harness().proxy.endpoint, region) : suite.harness().ec2ViaProxy;
  try {
    const image = (await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
    const attribute = await ec2.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'imdsSupport' }));
    return { described: image?.ImdsSupport, attribute: attribute.ImdsSupport?.Value };
  } finally {
    if (region) {
      ec2.destroy();
    }
  }
}

/** The ModifyImageAttribute requests that set ImdsSupport, as `region image` (after `from`, an index into the requests). */
function imdsRequests(from = 0): string[] {
  return suite.harness().proxy.requests.slice(from)
    .filter((request) => request.action === 'ModifyImageAttribute' && request.params.has('ImdsSupport.Value'))
    .map((request) => `${request.region} ${request.params.get('ImageId')} ${request.params.get('ImdsSupport.Value')} ${request.status}`);
}

describe('IMDSv2-only images through moto', () => {
  test('makes the image IMDSv2-only once it is available, with one call', async () => {
    const imageId = await complete(event('Create', props(await suite.harness().launchBuilder())));

    expect(await imdsSupport(imageId)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
    expect(imdsRequests()).toEqual([`us-east-1 ${imageId} v2.0 200`]);
  });

  test('makes every copy IMDSv2-only too, before it is shared', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder(), {
      [Prop.COPY_TO_REGIONS]: [COPY_REGION],
      [Prop.SHARE_ACCOUNTS]: ['444455556666'],
    }));
    const started = await suite.handler().onEvent(create);
    const poll: IsCompleteRequest = { ...create, PhysicalResourceId: started.PhysicalResourceId ?? '', Data: started.Data };
    expect((await suite.handler().isComplete(poll)).IsComplete).toBe(false);
    const done = await suite.handler().isComplete(poll);
    expect(done.IsComplete).toBe(true);
    const copyId = done.Data?.[copyImageIdAttribute(COPY_REGION)] ?? '';

    expect(await imdsSupport(poll.PhysicalResourceId)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
    expect(await imdsSupport(copyId, COPY_REGION)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
    // The image before its copy was started, the copy before it was shared.
    const actions = suite.harness().proxy.requests.map((request) => `${request.region} ${request.action} ${request.params.get('ImageId') ?? ''}`);
    expect(actions.indexOf(`us-east-1 ModifyImageAttribute ${poll.PhysicalResourceId}`))
      .toBeLessThan(actions.indexOf(`${COPY_REGION} CopyImage `));
    const copyModifications = actions.filter((action) => action === `${COPY_REGION} ModifyImageAttribute ${copyId}`);
    expect(copyModifications).toHaveLength(2);
    expect(imdsRequests()).toEqual([`us-east-1 ${poll.PhysicalResourceId} v2.0 200`, `${COPY_REGION} ${copyId} v2.0 200`]);
    const sharedCopy = suite.harness().proxy.requests.findIndex((request) => request.region === COPY_REGION
      && request.action === 'ModifyImageAttribute' && request.params.has('LaunchPermission.Add.1.UserId'));
    const imdsCopy = suite.harness().proxy.requests.findIndex((request) => request.region === COPY_REGION
      && request.action === 'ModifyImageAttribute' && request.params.has('ImdsSupport.Value'));
    expect(imdsCopy).toBeLessThan(sharedCopy);
  });

  test('leaves the image as it is when requireImdsv2 is false (and in the properties of earlier versions, without it)', async () => {
    const optedOut = await complete(event('Create', props(await suite.harness().launchBuilder(), { [Prop.REQUIRE_IMDSV2]: 'false' })));
    const earlier = await complete(event('Create', imageProps(await suite.harness().launchBuilder(), 'earlier')));

    expect(await imdsSupport(optedOut)).toEqual({ described: undefined, attribute: undefined });
    expect(await imdsSupport(earlier)).toEqual({ described: undefined, attribute: undefined });
    expect(imdsRequests()).toEqual([]);
  });

  test('an Update from an earlier version (no property) to this one makes the kept image IMDSv2-only in place', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const before = imageProps(instanceId, 'imds');
    const imageId = await complete(event('Create', before));

    expect(await complete(event('Update', props(instanceId), imageId, before))).toBe(imageId);
    expect(await imdsSupport(imageId)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
    expect(suite.harness().proxy.count('CreateImage')).toBe(1);
  });

  test('a retried Create adopts the image it made, which stays IMDSv2-only, without setting it again', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder()));
    const imageId = await complete(create);
    const from = suite.harness().proxy.requests.length;

    expect(await complete(create)).toBe(imageId);
    expect(imdsRequests(from)).toEqual([]);
    expect(await imdsSupport(imageId)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
  });

  test('a rollback to an image baked without it hands that image back as it was', async () => {
    const oldProps = props(await suite.harness().launchBuilder(), { [Prop.REQUIRE_IMDSV2]: 'false' });
    const oldImage = await complete(event('Create', oldProps));
    // requireImdsv2 turned on: the construct replaced the builder (its user data changed), so the Update bakes anew.
    const newProps = props(await suite.harness().launchBuilder());
    const newImage = await complete(event('Update', newProps, oldImage, oldProps));
    expect(newImage).not.toBe(oldImage);

    // The stack update fails later and rolls back: CloudFormation asks for the old properties again.
    expect(await complete(event('Update', oldProps, newImage, newProps))).toBe(oldImage);
    expect(await imdsSupport(oldImage)).toEqual({ described: undefined, attribute: undefined });
    expect(await imdsSupport(newImage)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
    expect(imdsRequests().map((request) => request.split(' ')[1])).toEqual([newImage]);
  });

  test('while DescribeImages does not show the change yet, the next polls set it again; the bake completes', async () => {
    suite.harness().proxy.setConsistency({ changedAttributeStaleFor: 2, newImageHiddenFor: 1 });
    const create = event('Create', props(await suite.harness().launchBuilder(), { [Prop.COPY_TO_REGIONS]: [COPY_REGION] }));
    const started = await suite.handler().onEvent(create);
    const poll: IsCompleteRequest = { ...create, PhysicalResourceId: started.PhysicalResourceId ?? '', Data: started.Data };
    const answers: boolean[] = [];
    while (!answers.includes(true) && answers.length < 8) {
      answers.push((await suite.handler().isComplete(poll)).IsComplete ?? false);
    }

    expect(answers[answers.length - 1]).toBe(true);
    suite.harness().proxy.setConsistency({});
    expect(await imdsSupport(poll.PhysicalResourceId)).toEqual({ described: 'v2.0', attribute: 'v2.0' });
    const requests = imdsRequests();
    // Set again while not shown, never failed; the image (not visible at the first poll) and its copy both end IMDSv2-only.
    expect(requests.length).toBeGreaterThan(2);
    expect(requests.every((request) => request.endsWith(' v2.0 200'))).toBe(true);
    expect(new Set(requests.map((request) => request.split(' ').slice(0, 2).join(' '))).size).toBe(2);
  });

  test('a refused ModifyImageAttribute on an image that has the attribute already (not shown yet) is not a failure', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder()));
    const started = await suite.handler().onEvent(create);
    const imageId = started.PhysicalResourceId ?? '';
    // Set already (by an earlier poll, say), and DescribeImages does not show it yet; EC2 then refuses to set it again.
    suite.harness().proxy.setConsistency({ changedAttributeStaleFor: 5 });
    await suite.harness().ec2ViaProxy.send(new ModifyImageAttributeCommand({ ImageId: imageId, ImdsSupport: { Value: 'v2.0' } }));
    const refusal = { status: 400, code: 'InvalidParameterValue', message: 'The image already has the attribute imdsSupport set to v2.0.' };
    suite.harness().proxy.failNext('ModifyImageAttribute', 1, refusal, (params) => params.has('ImdsSupport.Value'));

    const done = await suite.handler().isComplete({ ...create, PhysicalResourceId: imageId, Data: started.Data });

    expect(done.IsComplete).toBe(true);
    expect(suite.harness().proxy.unusedFaults()).toEqual({});
    expect(suite.harness().proxy.count('DescribeImageAttribute')).toBeGreaterThanOrEqual(1);
  });

  test('an image whose attribute cannot be set fails the bake, naming the image and the reason; the Delete cleans up', async () => {
    const create = event('Create', props(await suite.harness().launchBuilder()));
    const started = await suite.handler().onEvent(create);
    const imageId = started.PhysicalResourceId ?? '';
    const unauthorized = { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' };
    suite.harness().proxy.failNext('ModifyImageAttribute', 1, unauthorized, (params) => params.has('ImdsSupport.Value'));

    const failure = await suite.handler().isComplete({ ...create, PhysicalResourceId: imageId, Data: started.Data })
      .then(() => undefined, (error: Error) => error.message);

    expect(failure).toContain(`Could not make image ${imageId} IMDSv2-only (ModifyImageAttribute ImdsSupport v2.0): UnauthorizedOperation`);
    expect(failure).toContain('requireImdsv2: false');
    // The attribute really is not set: the refusal is not mistaken for one of an image that has it.
    expect(suite.harness().proxy.imageLifecycle(imageId).imdsSupport).toBeUndefined();
    await suite.handler().onEvent(event('Delete', create.ResourceProperties, imageId));
    const left = await suite.harness().leftovers(['us-east-1']);
    expect({ images: left.images, snapshots: left.snapshots }).toEqual({ images: [], snapshots: [] });
  });
});
