/**
 * copies to other regions through the shipped handler bundle against moto_server, in three regions: the image is copied
 * once available, isComplete waits for every copy, the copies carry the source's tags, and the Delete removes
 * every copy and its snapshots in every region.
 */
import {
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Image,
  RegisterImageCommand,
  type Tag as Ec2Tag,
} from '@aws-sdk/client-ec2';
import { EC2_FAULTS, ec2ClientFor } from './moto-server';
import { customResourceEvent, imageProps, MOTO_STACK_ID, MOTO_STACK_NAME, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest } from '../../lambda/bake-image/types';
import { copyImageIdAttribute, Prop, Tag } from '../../src/private/contract';

jest.setTimeout(60_000);

const HOME = 'us-east-1';
const WEST = 'us-west-2';
const EUROPE = 'eu-west-1';
const EUROPE_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const NINETY_DAYS = 90 * 24 * 3600;

type Props = Record<string, unknown>;

const suite = useMotoSuite();

function props(instanceId: string, extra: Props = {}): Props {
  return imageProps(instanceId, 'copied', {
    [Prop.DESCRIPTION]: 'Copied web image',
    [Prop.COPY_TO_REGIONS]: [WEST, EUROPE],
    [Prop.COPY_KMS_KEYS]: { [EUROPE]: EUROPE_KEY },
    ...extra,
  });
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Props, physicalId?: string, oldProps?: Props): OnEventRequest {
  return customResourceEvent(type, 'CopiedImage', resourceProperties, { physicalId, oldProps });
}

/** onEvent, then isComplete until it answers true (at most `polls` times); every isComplete answer. */
async function bake(request: OnEventRequest, polls = 5): Promise<{ imageId: string; answers: IsCompleteResponse[]; data: Record<string, string> }> {
  const started = await suite.handler().onEvent(request);
  const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: started.Data };
  const answers: IsCompleteResponse[] = [];
  for (let i = 0; i < polls; i++) {
    const answer = await suite.handler().isComplete(poll);
    answers.push(answer);
    if (answer.IsComplete) {
      return { imageId: poll.PhysicalResourceId, answers, data: { ...started.Data, ...answer.Data } };
    }
  }
  throw new Error(`not complete after ${polls} polls`);
}

/** Clients through the proxy, per region: what the handler sees (the proxy emulates what moto lacks). */
const proxyClients = new Map<string, EC2Client>();

function viaProxy(region: string): EC2Client {
  if (region === HOME) {
    return suite.harness().ec2ViaProxy;
  }
  let client = proxyClients.get(region);
  if (!client) {
    client = ec2ClientFor(suite.harness().proxy.endpoint, region);
    proxyClients.set(region, client);
  }
  return client;
}

afterAll(() => {
  proxyClients.forEach((client) => client.destroy());
  proxyClients.clear();
});

async function images(region: string, imageIds?: string[]): Promise<Image[]> {
  const response = await suite.harness().ec2In(region).send(new DescribeImagesCommand(imageIds ? { ImageIds: imageIds } : { Owners: ['self'] }));
  return response.Images ?? [];
}

/** moto's snapshots of its built-in images, per region: not made by the tests. */
const builtIn = new Map<string, Set<string>>();

/** The snapshots of this account in the region, but for those of moto's built-in images. */
async function snapshotIds(region: string): Promise<string[]> {
  const response = await suite.harness().ec2In(region).send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
  const ids = (response.Snapshots ?? []).map((snapshot) => snapshot.SnapshotId ?? '');
  const known = builtIn.get(region);
  return ids.filter((id) => !known?.has(id)).sort();
}

beforeEach(async () => {
  builtIn.clear();
  for (const region of [HOME, 'us-west-2', 'eu-west-1']) {
    builtIn.set(region, new Set(await snapshotIds(region)));
  }
});

function tagMap(tags: Ec2Tag[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
}

/** The CopyImage requests the handler sent, by the region they were signed for. */
function copyRequests(): Array<{ region: string; source: string | null }> {
  return suite.harness().proxy.requests
    .filter((request) => request.action === 'CopyImage')
    .map((request) => ({ region: request.region, source: request.params.get('SourceImageId') }));
}

describe('copies to other regions through moto', () => {
  test('copies the available image to every region, waits for the copies and returns their ids', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const { imageId, answers, data } = await bake(event('Create', props(instanceId)));

    // First poll: the image is available, the copies are started and pending; the second finds them available.
    expect(answers.map((answer) => answer.IsComplete)).toEqual([false, true]);
    expect(copyRequests().sort((a, b) => a.region.localeCompare(b.region))).toEqual([
      { region: EUROPE, source: imageId },
      { region: WEST, source: imageId },
    ]);

    const [source] = await images(HOME, [imageId]);
    for (const region of [WEST, EUROPE]) {
      const copyId = data[copyImageIdAttribute(region)];
      expect(copyId).toMatch(/^ami-/);
      const [copy] = await images(region, [copyId]);
      expect(copy.Name).toBe(source.Name);
      expect(copy.Description).toBe('Copied web image');
      // Same tags as the source, plus where the copy comes from (and not the source's record of its copies).
      const { [Tag.COPY_REGIONS]: copyRegions, ...sourceTags } = tagMap(source.Tags);
      expect(copyRegions).toBe(`${EUROPE} ${WEST}`);
      expect(tagMap(copy.Tags)).toEqual({ ...sourceTags, [Tag.COPIED_FROM]: `${HOME}/${imageId}` });
      // The copy's snapshot carries the same tags, so that a repeated Delete finds it.
      const [snapshotId] = await snapshotIds(region);
      const snapshots = await suite.harness().ec2In(region).send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
      expect(copy.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId).toBe(snapshotId);
      expect(tagMap(snapshots.Snapshots?.[0].Tags)).toEqual(tagMap(copy.Tags));
      // Nothing of the copy is in the stack's own region.
      expect((await images(HOME)).map((image) => image.ImageId)).not.toContain(copyId);
    }
    // Copies are encrypted: with the key given for the region, or with the region's default EBS key.
    const asked = (region: string) => suite.harness().proxy.copyRequest(data[copyImageIdAttribute(region)]);
    expect(asked(EUROPE)).toEqual({ sourceRegion: HOME, sourceImageId: imageId, encrypted: true, kmsKeyId: EUROPE_KEY });
    expect(asked(WEST)).toEqual({ sourceRegion: HOME, sourceImageId: imageId, encrypted: true });
  });

  test('waits while a copy is pending, without copying again, and stops the builder only when every copy is available', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const request = event('Create', props(instanceId));
    const started = await suite.handler().onEvent(request);
    const name = started.Data?.ImageName ?? '';
    // Six lookups by name, two a poll (one per region): poll 1 finds no copy and starts both, polls 2 and 3 find them pending.
    suite.harness().proxy.holdPendingByName(name, 6);
    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '' };

    const answers: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      answers.push((await suite.handler().isComplete(poll)).IsComplete);
      if (i < 2) {
        expect(suite.harness().proxy.count('StopInstances')).toBe(0);
      }
    }
    expect(answers).toEqual([false, false, false, true]);
    expect(suite.harness().proxy.count('CopyImage')).toBe(2);
    expect(suite.harness().proxy.count('StopInstances')).toBe(1);
    expect(suite.harness().proxy.unusedRewrites()).toBe(0);
  });

  test('a failed copy fails the bake naming region, copy and reason; the Delete removes everything in every region', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const request = event('Create', props(instanceId));
    const started = await suite.handler().onEvent(request);
    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '' };
    expect((await suite.handler().isComplete(poll)).IsComplete).toBe(false);

    suite.harness().proxy.failImageByName(started.Data?.ImageName ?? '', 1, { code: 'Client.InternalError', message: 'Copy failed' });
    await expect(suite.handler().isComplete(poll)).rejects.toThrow(
      /^Copy ami-[0-9a-f]+ of image ami-[0-9a-f]+ in (us-west-2|eu-west-1) is failed \(Client\.InternalError: Copy failed\)/,
    );

    await suite.handler().onEvent(event('Delete', props(instanceId), poll.PhysicalResourceId));
    for (const region of [HOME, WEST, EUROPE]) {
      expect(await images(region)).toEqual([]);
      expect(await snapshotIds(region)).toEqual([]);
    }
  });

  test('the Delete removes the image, every copy and all their snapshots, and is safe to repeat', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const { imageId } = await bake(event('Create', props(instanceId)));
    for (const region of [HOME, WEST, EUROPE]) {
      expect(await images(region)).toHaveLength(1);
      expect(await snapshotIds(region)).toHaveLength(1);
    }

    // The first Delete alone removes everything: the second must not be what cleans up.
    await suite.handler().onEvent(event('Delete', props(instanceId), imageId));
    for (const region of [HOME, WEST, EUROPE]) {
      expect({ region, images: await images(region), snapshots: await snapshotIds(region) }).toEqual({ region, images: [], snapshots: [] });
    }

    // Repeated (CloudFormation retries a Delete whose answer it lost): it succeeds and leaves nothing behind either.
    await expect(suite.handler().onEvent(event('Delete', props(instanceId), imageId))).resolves.toEqual(expect.objectContaining({ PhysicalResourceId: imageId }));
    for (const region of [HOME, WEST, EUROPE]) {
      expect({ region, images: await images(region), snapshots: await snapshotIds(region) }).toEqual({ region, images: [], snapshots: [] });
    }
  });

  test('a repeated Delete finds the snapshots of a copy whose image is already gone', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const { imageId, data } = await bake(event('Create', props(instanceId, { [Prop.COPY_TO_REGIONS]: [WEST], [Prop.COPY_KMS_KEYS]: {} })));
    // A first Delete that stopped after deregistering the copy: its snapshot is left behind.
    const west = suite.harness().ec2In(WEST);
    await west.send(new DeregisterImageCommand({ ImageId: data[copyImageIdAttribute(WEST)] }));
    expect(await snapshotIds(WEST)).toHaveLength(1);

    await suite.handler().onEvent(event('Delete', props(instanceId, { [Prop.COPY_TO_REGIONS]: [WEST], [Prop.COPY_KMS_KEYS]: {} }), imageId));
    expect(await snapshotIds(WEST)).toEqual([]);
    expect(await images(HOME)).toEqual([]);
  });

  test('an image of the same name in a copy region that this resource did not make is left alone, and fails the bake', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const request = event('Create', props(instanceId, { [Prop.COPY_TO_REGIONS]: [WEST], [Prop.COPY_KMS_KEYS]: {} }));
    const started = await suite.handler().onEvent(request);
    const name = started.Data?.ImageName ?? '';
    // Someone else's image of that name in us-west-2.
    const west = suite.harness().ec2In(WEST);
    const foreign = await west.send(new RegisterImageCommand({ Name: name, RootDeviceName: '/dev/xvda' }));
    await west.send(new CreateTagsCommand({ Resources: [foreign.ImageId ?? ''], Tags: [{ Key: 'owner', Value: 'someone-else' }] }));

    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '' };
    await expect(suite.handler().isComplete(poll)).rejects.toThrow(`An image named ${name} already exists in ${WEST} (${foreign.ImageId}) without the tags of this resource`);

    await suite.handler().onEvent(event('Delete', props(instanceId, { [Prop.COPY_TO_REGIONS]: [WEST], [Prop.COPY_KMS_KEYS]: {} }), poll.PhysicalResourceId));
    expect((await images(WEST)).map((image) => image.ImageId)).toEqual([foreign.ImageId]);
    expect(await images(HOME)).toEqual([]);
  });

  test('an Update that adds a region copies the same image there; one that drops a region deletes that copy; no rebake', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const westOnly = props(instanceId, { [Prop.COPY_TO_REGIONS]: [WEST], [Prop.COPY_KMS_KEYS]: {} });
    const { imageId, data: first } = await bake(event('Create', westOnly));
    expect(await images(EUROPE)).toEqual([]);

    const both = props(instanceId);
    const { imageId: afterAdd, data: second } = await bake(event('Update', both, imageId, westOnly));
    expect(afterAdd).toBe(imageId);
    expect(second[copyImageIdAttribute(WEST)]).toBe(first[copyImageIdAttribute(WEST)]);
    expect(second[copyImageIdAttribute(EUROPE)]).toMatch(/^ami-/);
    expect(suite.harness().proxy.count('CreateImage')).toBe(1);

    const europeOnly = props(instanceId, { [Prop.COPY_TO_REGIONS]: [EUROPE] });
    const { imageId: afterDrop, data: third } = await bake(event('Update', europeOnly, imageId, both));
    expect(afterDrop).toBe(imageId);
    expect(third[copyImageIdAttribute(WEST)]).toBeUndefined();
    expect(await images(WEST)).toEqual([]);
    expect(await snapshotIds(WEST)).toEqual([]);
    expect((await images(EUROPE)).map((image) => image.ImageId)).toEqual([second[copyImageIdAttribute(EUROPE)]]);
  });

  test('shares, deprecates and protects every copy like the image; the Delete lifts the protection everywhere', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const options = {
      [Prop.SHARE_ACCOUNTS]: ['444455556666'],
      [Prop.DEPRECATE_AFTER_SECONDS]: String(NINETY_DAYS),
      [Prop.DEREGISTRATION_PROTECTION]: 'true',
    };
    const { imageId, data } = await bake(event('Create', props(instanceId, options)));
    const [source] = await images(HOME, [imageId]);
    // The handler counts a copy's deprecation from its source's creation, not from the copy's own.
    const expectedDeprecation = Date.parse(source.CreationDate ?? '') + NINETY_DAYS * 1000;
    expect(Number.isNaN(expectedDeprecation)).toBe(false);
    const deprecations = new Set<string | undefined>();
    for (const [region, id] of [[HOME, imageId], [WEST, data[copyImageIdAttribute(WEST)]], [EUROPE, data[copyImageIdAttribute(EUROPE)]]]) {
      const permissions = await suite.harness().ec2In(region).send(new DescribeImageAttributeCommand({ ImageId: id, Attribute: 'launchPermission' }));
      expect(permissions.LaunchPermissions).toEqual([{ UserId: '444455556666' }]);
      deprecations.add(suite.harness().proxy.imageLifecycle(id).deprecateAt);
      expect(suite.harness().proxy.imageLifecycle(id).protection).toBe('enabled');
      // What EC2 shows (DescribeImages through the proxy, which emulates deprecation: EC2's format, to the minute).
      const [shown] = (await viaProxy(region).send(new DescribeImagesCommand({ ImageIds: [id] }))).Images ?? [];
      expect(shown?.DeprecationTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00(\.000)?Z$/);
      expect(Math.abs(Date.parse(shown?.DeprecationTime ?? '') - expectedDeprecation)).toBeLessThanOrEqual(60_000);
    }
    // One date for all three: the copies deprecate with their source.
    expect(deprecations.size).toBe(1);
    expect([...deprecations][0]).toBeDefined();

    // The proxy refuses to deregister a protected image, as EC2 does: the Delete must lift it in every region.
    await suite.handler().onEvent(event('Delete', props(instanceId, options), imageId));
    for (const region of [HOME, WEST, EUROPE]) {
      expect(await images(region)).toEqual([]);
      expect(await snapshotIds(region)).toEqual([]);
    }
  });

  test('copies still pending past bakeTimeout fail the bake, naming the regions', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const request = event('Create', props(instanceId, { [Prop.BAKE_TIMEOUT_SECONDS]: '2' }));
    const started = await suite.handler().onEvent(request);
    suite.harness().proxy.holdPendingByName(started.Data?.ImageName ?? '', 100);
    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '', Data: started.Data };
    // Poll as the provider framework does (here every 300 ms) until the handler gives up.
    let failure: Error | undefined;
    for (let i = 0; i < 30 && !failure; i++) {
      await suite.handler().isComplete(poll).then(
        (answer) => expect(answer.IsComplete).toBe(false),
        (error: Error) => { failure = error; },
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(suite.harness().proxy.count('CopyImage')).toBe(2);
    expect(failure?.message).toMatch(
      /^The copies of image ami-[0-9a-f]+ to (us-west-2, eu-west-1|eu-west-1, us-west-2) are still pending after \d+ s, longer than bakeTimeout \(2 s\)/,
    );
  });

  test('a superseded image kept with copies in a region no longer listed still has them deleted when it is pruned', async () => {
    const keepOne = { [Prop.KEEP_SUPERSEDED]: '1', [Prop.COPY_KMS_KEYS]: {} };
    const bakeWith = async (regions: string[], physicalId?: string) => {
      const resourceProps = props(await suite.harness().launchBuilder(), { ...keepOne, [Prop.COPY_TO_REGIONS]: regions });
      const { imageId, data } = await bake(event(physicalId ? 'Update' : 'Create', resourceProps, physicalId));
      await new Promise((resolve) => setTimeout(resolve, 1100));
      return { imageId, data, resourceProps };
    };
    const cleanUp = async (old: { imageId: string; resourceProps: Props }, current: string) => {
      suite.harness().proxy.setStack({ name: MOTO_STACK_NAME, id: MOTO_STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: { CopiedImage: current } });
      await suite.handler().onEvent(event('Delete', old.resourceProps, old.imageId));
    };

    // A is copied to us-west-2; B replaces it and is copied to eu-west-1 only; A is kept as the one superseded image.
    const a = await bakeWith([WEST]);
    const b = await bakeWith([EUROPE], a.imageId);
    await cleanUp(a, b.imageId);
    expect((await images(WEST)).map((image) => image.ImageId)).toEqual([a.data[copyImageIdAttribute(WEST)]]);
    expect((await images(HOME, [a.imageId])).map((image) => tagMap(image.Tags)[Tag.COPY_REGIONS])).toEqual([WEST]);

    // C replaces B: the Delete of B comes with B's properties (eu-west-1 only), keeps B and prunes A, whose
    // copy in us-west-2 its own tag still names.
    const c = await bakeWith([EUROPE], b.imageId);
    await cleanUp(b, c.imageId);
    expect((await images(HOME)).map((image) => image.ImageId).sort()).toEqual([b.imageId, c.imageId].sort());
    expect(await images(WEST)).toEqual([]);
    expect(await snapshotIds(WEST)).toEqual([]);
    expect((await images(EUROPE)).map((image) => image.ImageId).sort())
      .toEqual([b.data[copyImageIdAttribute(EUROPE)], c.data[copyImageIdAttribute(EUROPE)]].sort());
  });

  test.each(['CopyImage', 'CreateTags'])('%s throttled twice: the SDK retries it, and the region gets exactly one copy', async (action) => {
    jest.spyOn(Math, 'random').mockReturnValue(0.1);
    const instanceId = await suite.harness().launchBuilder();
    suite.harness().proxy.failNext(action, 2, EC2_FAULTS.throttling);
    // One region, so that the two faults hit one call (copies to several regions start in parallel).
    const { data } = await bake(event('Create', props(instanceId, { [Prop.COPY_TO_REGIONS]: [WEST], [Prop.COPY_KMS_KEYS]: {} })));
    expect(suite.harness().proxy.unusedFaults()).toEqual({});
    const attempts = suite.harness().proxy.requests.filter((request) => request.action === action).slice(0, 3);
    expect(attempts.map((request) => [request.attempt, request.errorCode])).toEqual([[1, 'RequestLimitExceeded'], [2, 'RequestLimitExceeded'], [3, undefined]]);
    expect((await images(WEST)).map((image) => image.ImageId)).toEqual([data[copyImageIdAttribute(WEST)]]);
  });
});
