/**
 * imageIdParameterName with copies, through the shipped handler bundle against moto_server in three regions: each
 * copy's id is published to an SSM parameter of the same name in the copy's region (data type aws:ec2:image, tagged with
 * the stack's id), follows rebakes, and goes with the image; a parameter of that name another stack (or a person) made is
 * never overwritten. Every handler request is authorized, by the IAM simulator, against the handler policy the construct
 * synthesizes for such an image.
 *
 * moto accepts DataType aws:ec2:image but does not check that the value is an AMI of the region (AWS does): the tests
 * check that themselves, with DescribeImages in the copy's region.
 */
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand, ListTagsForResourceCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { EmulatedStack } from './emulated-stack';
import { policyAuthorizer } from './handler-policy';
import { handlerPolicies } from './iam-simulator';
import { customResourceEvent, imageProps, MOTO_STACK_ID, MOTO_STACK_NAME, useMotoSuite } from './moto-suite';
import { ACCOUNT, imagesTemplate as template } from './stack-template';
import type { IsCompleteRequest, OnEventRequest } from '../../lambda/bake-image/types';
import { copyImageIdAttribute, Prop, Tag } from '../../src/private/contract';

jest.setTimeout(120_000);

const HOME = 'us-east-1';
const WEST = 'us-west-2';
const EUROPE = 'eu-west-1';
const REGIONS = [HOME, WEST, EUROPE];
const PARAMETER = '/bakery/web/ami';
const LOGICAL_ID = 'PublishedImage';

type Props = Record<string, unknown>;

const suite = useMotoSuite();

const PUBLISHING = { copies: [{ region: WEST }, { region: EUROPE }], imageIdParameterName: PARAMETER, keepSupersededImages: 1 };

// Each test is held to the policy the construct synthesizes for an image that publishes its copies' ids (the suite's
// own authorizer, set before this, knows no such image). The tests' own calls go straight to moto.
let policy: ReturnType<typeof handlerPolicies> | undefined;
beforeEach(() => {
  const synthesized = template({ Web: PUBLISHING });
  policy ??= handlerPolicies(synthesized, {
    partition: 'aws',
    region: HOME,
    account: ACCOUNT,
    stackId: MOTO_STACK_ID,
    stackName: MOTO_STACK_NAME,
    ref: (logicalId) => `${logicalId}-physical-id`,
    getAtt: (logicalId, attribute) => `${logicalId}.${attribute}`,
  });
  suite.harness().proxy.setAuthorizer(policyAuthorizer(policy, suite.harness().proxy.lookup));
});

function props(instanceId: string, extra: Props = {}): Props {
  return imageProps(instanceId, 'published', {
    [Prop.DESCRIPTION]: 'Published web image',
    [Prop.COPY_TO_REGIONS]: [WEST, EUROPE],
    [Prop.COPY_IMAGE_ID_PARAMETER_NAME]: PARAMETER,
    ...extra,
  });
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Props, physicalId?: string, oldProps?: Props): OnEventRequest {
  return customResourceEvent(type, LOGICAL_ID, resourceProperties, { physicalId, oldProps });
}

/** onEvent, then isComplete until it answers true; the image id and every attribute. */
async function bake(request: OnEventRequest, polls = 5): Promise<{ imageId: string; data: Record<string, string> }> {
  const started = await suite.handler().onEvent(request);
  const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: started.Data };
  for (let i = 0; i < polls; i++) {
    const answer = await suite.handler().isComplete(poll);
    if (answer.IsComplete) {
      return { imageId: poll.PhysicalResourceId, data: { ...started.Data, ...answer.Data } };
    }
  }
  throw new Error(`not complete after ${polls} polls`);
}

const ssmClients = new Map<string, SSMClient>();

/** SSM straight to moto's backend of the region (not through the proxy: neither counted nor authorized). */
function ssmIn(region: string): SSMClient {
  let client = ssmClients.get(region);
  if (!client) {
    client = new SSMClient({
      region,
      endpoint: suite.harness().moto.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    });
    ssmClients.set(region, client);
  }
  return client;
}

afterAll(() => {
  ssmClients.forEach((client) => client.destroy());
});

interface Published {
  readonly value: string;
  readonly type?: string;
  readonly dataType?: string;
  readonly tags: Record<string, string>;
}

/** The parameter PARAMETER in the region, or undefined. */
async function parameter(region: string, name = PARAMETER): Promise<Published | undefined> {
  try {
    const found = await ssmIn(region).send(new GetParameterCommand({ Name: name }));
    const tags = await ssmIn(region).send(new ListTagsForResourceCommand({ ResourceType: 'Parameter', ResourceId: name }));
    return {
      value: found.Parameter?.Value ?? '',
      type: found.Parameter?.Type,
      dataType: found.Parameter?.DataType,
      tags: Object.fromEntries((tags.TagList ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? ''])),
    };
  } catch (error) {
    if ((error as { name?: string }).name === 'ParameterNotFound') {
      return undefined;
    }
    throw error;
  }
}

/** The value of PARAMETER in each region (undefined: none). */
async function values(): Promise<Record<string, string | undefined>> {
  return Object.fromEntries(await Promise.all(REGIONS.map(async (region) => [region, (await parameter(region))?.value])));
}

async function imageExists(region: string, imageId: string): Promise<boolean> {
  const response = await suite.harness().ec2In(region).send(new DescribeImagesCommand({ Owners: ['self'] }));
  return (response.Images ?? []).some((image) => image.ImageId === imageId && image.State !== 'deregistered');
}

const OWN_TAGS = { [Tag.STACK_ID]: MOTO_STACK_ID, [Tag.LOGICAL_ID]: LOGICAL_ID, [Tag.MANAGED_BY]: 'cdk-baked-image' };

describe('the copies\' ids published in their regions', () => {
  test('the bake writes the parameter in each copy region: the copy\'s id, data type aws:ec2:image, this stack\'s tags', async () => {
    const { data } = await bake(event('Create', props(await suite.harness().launchBuilder())));

    for (const region of [WEST, EUROPE]) {
      const copyId = data[copyImageIdAttribute(region)];
      expect(await parameter(region)).toEqual({ value: copyId, type: 'String', dataType: 'aws:ec2:image', tags: OWN_TAGS });
      // moto does not check an aws:ec2:image value; AWS does: it must be an image of that region.
      expect(await imageExists(region, copyId)).toBe(true);
    }
    // The stack's own region has its parameter as a CloudFormation resource: the handler writes none there.
    expect(await parameter(HOME)).toBeUndefined();
    const puts = suite.harness().proxy.requests.filter((request) => request.action === 'PutParameter');
    expect(puts.map((request) => request.region).sort()).toEqual([EUROPE, WEST]);
  });

  test('a rebake overwrites it with the new copies, the old image\'s cleanup leaves it, and the removal deletes it', async () => {
    const first = props(await suite.harness().launchBuilder());
    const a = await bake(event('Create', first));
    const second = props(await suite.harness().launchBuilder());
    const b = await bake(event('Update', second, a.imageId, first));
    expect(b.imageId).not.toBe(a.imageId);
    expect(await values()).toEqual({
      [HOME]: undefined,
      [WEST]: b.data[copyImageIdAttribute(WEST)],
      [EUROPE]: b.data[copyImageIdAttribute(EUROPE)],
    });
    // Still this stack's: overwriting keeps the tags.
    expect((await parameter(WEST))?.tags).toEqual(OWN_TAGS);

    // The cleanup Delete of the replaced image (its own, old, properties): its copies go, the parameters stay with B's.
    suite.harness().proxy.setStack({ name: MOTO_STACK_NAME, id: MOTO_STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: b.imageId } });
    await suite.handler().onEvent(event('Delete', first, a.imageId));
    expect(await imageExists(WEST, a.data[copyImageIdAttribute(WEST)])).toBe(false);
    expect(await values()).toEqual({
      [HOME]: undefined,
      [WEST]: b.data[copyImageIdAttribute(WEST)],
      [EUROPE]: b.data[copyImageIdAttribute(EUROPE)],
    });

    // The resource leaves the stack: its parameters go with its copies, and a repeated Delete is fine.
    await suite.handler().onEvent(event('Delete', second, b.imageId));
    await suite.handler().onEvent(event('Delete', second, b.imageId));
    expect(await values()).toEqual({ [HOME]: undefined, [WEST]: undefined, [EUROPE]: undefined });
  });

  test('with keepSupersededImages the old copy is kept, and the parameter moves to the new one', async () => {
    const keep = { [Prop.KEEP_SUPERSEDED]: '1' };
    const first = props(await suite.harness().launchBuilder(), keep);
    const a = await bake(event('Create', first));
    const second = props(await suite.harness().launchBuilder(), keep);
    const b = await bake(event('Update', second, a.imageId, first));
    suite.harness().proxy.setStack({ name: MOTO_STACK_NAME, id: MOTO_STACK_ID, status: 'UPDATE_COMPLETE_CLEANUP_IN_PROGRESS', resources: { [LOGICAL_ID]: b.imageId } });
    await suite.handler().onEvent(event('Delete', first, a.imageId));

    expect(await imageExists(WEST, a.data[copyImageIdAttribute(WEST)])).toBe(true);
    expect((await parameter(WEST))?.value).toBe(b.data[copyImageIdAttribute(WEST)]);
    expect((await parameter(EUROPE))?.value).toBe(b.data[copyImageIdAttribute(EUROPE)]);
  });

  test('an Update that drops a region deletes that region\'s parameter with the copy, and keeps the other', async () => {
    const both = props(await suite.harness().launchBuilder());
    const { imageId, data } = await bake(event('Create', both));
    const westOnly = { ...both, [Prop.COPY_TO_REGIONS]: [WEST] };

    const after = await bake(event('Update', westOnly, imageId, both));
    expect(after.imageId).toBe(imageId);
    expect(await values()).toEqual({ [HOME]: undefined, [WEST]: data[copyImageIdAttribute(WEST)], [EUROPE]: undefined });
    expect(await imageExists(EUROPE, data[copyImageIdAttribute(EUROPE)])).toBe(false);
  });

  test('an Update that renames the parameter publishes the new name and deletes the old one, without a rebake', async () => {
    const before = props(await suite.harness().launchBuilder());
    const { imageId, data } = await bake(event('Create', before));
    const renamed = { ...before, [Prop.COPY_IMAGE_ID_PARAMETER_NAME]: '/bakery/web/ami-v2' };
    // The policy of this file names PARAMETER only: renaming is judged under its own template's policy elsewhere.
    suite.harness().proxy.setAuthorizer(undefined);

    const after = await bake(event('Update', renamed, imageId, before));
    expect(after.imageId).toBe(imageId);
    for (const region of [WEST, EUROPE]) {
      expect(await parameter(region)).toBeUndefined();
      expect((await parameter(region, '/bakery/web/ami-v2'))?.value).toBe(data[copyImageIdAttribute(region)]);
    }
  });

  test('a parameter of that name this stack did not create is not overwritten: the bake fails naming region and parameter', async () => {
    await ssmIn(WEST).send(new PutParameterCommand({ Name: PARAMETER, Value: 'ami-0fedcba9876543210', Type: 'String', Tags: [{ Key: 'owner', Value: 'someone-else' }] }));
    const request = event('Create', props(await suite.harness().launchBuilder()));
    const started = await suite.handler().onEvent(request);
    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '', Data: started.Data };
    let failure: Error | undefined;
    for (let i = 0; i < 5 && !failure; i++) {
      await suite.handler().isComplete(poll).then((answer) => expect(answer.IsComplete).toBe(false), (error: Error) => { failure = error; });
    }
    expect(failure?.message).toMatch(new RegExp(`^The SSM parameter ${PARAMETER} in ${WEST} already exists and was not created by this stack`));
    expect(failure?.message).toContain('change imageIdParameterName');
    expect(await parameter(WEST)).toEqual({ value: 'ami-0fedcba9876543210', type: 'String', dataType: 'text', tags: { owner: 'someone-else' } });
    // The handler may not even read it: its policy lets it read only parameters tagged with its stack's id.
    expect(suite.harness().proxy.takeDenials()).toEqual([expect.stringMatching(/ssm:GetParameter/)]);

    // The failed bake's Delete removes the image and its copies, and leaves the foreign parameter alone.
    await suite.handler().onEvent(event('Delete', props(request.ResourceProperties[Prop.INSTANCE_ID] as string), poll.PhysicalResourceId));
    expect(suite.harness().proxy.takeDenials()).toEqual([expect.stringMatching(/ssm:GetParameter/)]);
    expect((await parameter(WEST))?.value).toBe('ami-0fedcba9876543210');
    expect((await suite.harness().leftovers(REGIONS)).images).toEqual([]);
  });
});

describe('in CloudFormation\'s order, under the policy in force', () => {
  test('a rebake moves the parameters to the new copies; removing the image leaves no parameter, image or snapshot anywhere', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    // A second image stays in the stack (and so does the provider): the removed image's cleanup Delete runs under the
    // policy of a template that publishes no parameter and copies to no region.
    await stack.create(template({ Web: { copies: [{ region: WEST }, { region: EUROPE }], imageIdParameterName: PARAMETER }, Other: {} }));
    const logicalId = stack.imageLogicalIds().find((id) => id.startsWith('Web'))!;
    const other = stack.imageId(stack.imageLogicalIds().find((id) => id.startsWith('Other'))!);
    const first = stack.attributes(logicalId);
    expect((await parameter(WEST))?.value).toBe(first[copyImageIdAttribute(WEST)]);

    await stack.update(template({ Web: { copies: [{ region: WEST }, { region: EUROPE }], imageIdParameterName: PARAMETER, rebakeTrigger: '2' }, Other: {} }));
    const second = stack.attributes(logicalId);
    expect(second[copyImageIdAttribute(WEST)]).not.toBe(first[copyImageIdAttribute(WEST)]);
    expect(await values()).toEqual({ [HOME]: undefined, [WEST]: second[copyImageIdAttribute(WEST)], [EUROPE]: second[copyImageIdAttribute(EUROPE)] });
    expect(stack.events.filter((e) => e.phase === 'cleanup').map((e) => [e.requestType, e.outcome])).toEqual([['Delete', 'SUCCESS']]);

    // The image leaves the stack: its cleanup Delete runs under a policy that names no parameter and no copy region.
    await stack.update(template({ Other: {} }));
    expect(stack.skippedDeletes).toEqual([]);
    expect(stack.events.filter((e) => e.phase === 'cleanup').map((e) => [e.requestType, e.physicalId, e.outcome]).slice(-1))
      .toEqual([['Delete', second.ImageId, 'SUCCESS']]);
    expect(await values()).toEqual({ [HOME]: undefined, [WEST]: undefined, [EUROPE]: undefined });
    const leftovers = await suite.harness().leftovers(REGIONS);
    expect({ images: leftovers.images, snapshots: leftovers.snapshots.length }).toEqual({ images: [other], snapshots: 1 });

    expect(await stack.delete()).toEqual([]);
    const after = await suite.harness().leftovers(REGIONS);
    expect({ images: after.images, snapshots: after.snapshots }).toEqual({ images: [], snapshots: [] });
  });
});
