/**
 * What real EC2 and CloudFormation do that moto does not, through the shipped handler bundle: EC2's eventual
 * consistency (a new image or instance not yet visible, snapshots still in use just after their image was
 * deregistered), deadlines counted from the request and not from the image's birth, and responses that must fit
 * CloudFormation's 4,096 bytes. After each scenario nothing may be left behind.
 */
import { DeleteTagsCommand, DescribeImagesCommand, DescribeSecurityGroupsCommand, DescribeSubnetsCommand } from '@aws-sdk/client-ec2';
import { frameworkResponseBytes, MAX_FRAMEWORK_RESPONSE_BYTES } from './framework-response';
import { customResourceEvent, imageProps, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest } from '../../lambda/bake-image/types';
import { Attr, copyImageIdAttribute, Prop, Tag } from '../../src/private/contract';
import { validationUserData } from '../../src/private/validation-script';

jest.setTimeout(60_000);

const HOME = 'us-east-1';
const WEST = 'us-west-2';
const LOGICAL_ID = 'BehaviourImage';

type Props = Record<string, unknown>;

const suite = useMotoSuite();

function props(instanceId: string, extra: Props = {}): Props {
  return imageProps(instanceId, 'behaviour', {
    [Prop.BAKE_TIMEOUT_SECONDS]: '600',
    ...extra,
  });
}

async function validationProps(script: string, timeoutSeconds = 600): Promise<Props> {
  const subnets = await suite.harness().ec2.send(new DescribeSubnetsCommand({}));
  const groups = await suite.harness().ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['default'] }] }));
  return {
    [Prop.VALIDATION_USER_DATA]: validationUserData(script, timeoutSeconds),
    [Prop.VALIDATION_TIMEOUT_SECONDS]: String(timeoutSeconds),
    [Prop.VALIDATION_INSTANCE_TYPE]: 't3.micro',
    [Prop.VALIDATION_SUBNET_ID]: subnets.Subnets?.[0]?.SubnetId ?? '',
    [Prop.VALIDATION_SECURITY_GROUP_IDS]: [groups.SecurityGroups?.[0]?.GroupId ?? ''],
  };
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Props, physicalId?: string, oldProps?: Props): OnEventRequest {
  return customResourceEvent(type, LOGICAL_ID, resourceProperties, { physicalId, oldProps });
}

interface Outcome {
  readonly physicalId: string;
  readonly answers: IsCompleteResponse[];
  readonly data: Record<string, string>;
  readonly error?: Error;
}

/**
 * onEvent, then isComplete every 100 ms until it completes or throws (the provider framework's waiter); every answer
 * and error is held to CloudFormation's response limit as the framework would send it. `startedAt` backdates the
 * request's start (what onEvent recorded), to reach its deadlines without waiting for them.
 */
async function run(request: OnEventRequest, options: { startedAt?: Date; polls?: number } = {}): Promise<Outcome> {
  const handler = suite.handler();
  let started;
  try {
    started = await handler.onEvent(request);
  } catch (error) {
    expectFits(request, { outcome: 'FAILED', error });
    return { physicalId: request.PhysicalResourceId ?? '', answers: [], data: {}, error: error as Error };
  }
  const data = { ...started.Data, ...(options.startedAt ? { [Attr.REQUEST_STARTED_AT]: options.startedAt.toISOString() } : {}) };
  const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: data };
  const answers: IsCompleteResponse[] = [];
  for (let i = 0; i < (options.polls ?? 100); i++) {
    try {
      const answer = await handler.isComplete(poll);
      answers.push(answer);
      if (answer.IsComplete) {
        const merged = { ...data, ...answer.Data };
        expectFits(request, { outcome: 'SUCCESS', physicalId: poll.PhysicalResourceId, data: merged });
        return { physicalId: poll.PhysicalResourceId, answers, data: merged };
      }
    } catch (error) {
      expectFits(request, { outcome: 'FAILED', physicalId: poll.PhysicalResourceId, data, error });
      return { physicalId: poll.PhysicalResourceId, answers, data, error: error as Error };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`neither complete nor failed after ${options.polls ?? 100} polls`);
}

function expectFits(request: OnEventRequest, outcome: Parameters<typeof frameworkResponseBytes>[1]): void {
  expect(frameworkResponseBytes(request, outcome)).toBeLessThanOrEqual(MAX_FRAMEWORK_RESPONSE_BYTES);
}

async function expectNothingLeft(regions: string[] = [HOME]): Promise<void> {
  const left = await suite.harness().leftovers(regions);
  expect({ images: left.images, snapshots: left.snapshots }).toEqual({ images: [], snapshots: [] });
}

const HOURS_AGO = (hours: number) => new Date(Date.now() - hours * 3600_000);

/**
 * Makes DescribeImages tell `rewrite` of its answers until the returned function is called (moto cannot backdate an
 * image nor hide it).
 */
function rewriteImagesUntilStopped(rewrite: (body: string) => string): () => void {
  let active = true;
  suite.harness().proxy.rewriteResponses('DescribeImages', 100_000, (body) => (active ? rewrite(body) : body));
  return () => {
    active = false;
  };
}

const twoDaysOld = (body: string) => body.replace(/<creationDate>[^<]+<\/creationDate>/g, `<creationDate>${HOURS_AGO(48).toISOString()}</creationDate>`);

describe('deadlines count from the request, not from the image', () => {
  test('an Update that adds validation to an image older than bakeTimeout validates it', async () => {
    const builder = await suite.harness().launchBuilder();
    const created = await run(event('Create', props(builder)));
    expect(created.error).toBeUndefined();
    // The image was made two days ago, as far as EC2 tells.
    const stop = rewriteImagesUntilStopped(twoDaysOld);

    const validated = { ...props(builder), ...await validationProps('true') };
    const updated = await run(event('Update', validated, created.physicalId, props(builder)));

    expect(updated.error).toBeUndefined();
    expect(updated.physicalId).toBe(created.physicalId);
    stop();
    const image = (await suite.harness().ec2.send(new DescribeImagesCommand({ ImageIds: [created.physicalId] }))).Images?.[0];
    expect(image?.Tags?.some((tag) => tag.Key === Tag.VALIDATED)).toBe(true);
    await run(event('Delete', validated, created.physicalId));
    await expectNothingLeft();
  });

  test('an Update that adds a copy region to an old image copies it', async () => {
    const builder = await suite.harness().launchBuilder();
    const created = await run(event('Create', props(builder)));
    const stop = rewriteImagesUntilStopped(twoDaysOld);

    const copied = props(builder, { [Prop.COPY_TO_REGIONS]: [WEST] });
    const updated = await run(event('Update', copied, created.physicalId, props(builder)));

    expect(updated.error).toBeUndefined();
    expect(updated.data[copyImageIdAttribute(WEST)]).toMatch(/^ami-/);
    stop();
    await run(event('Delete', copied, created.physicalId));
    await expectNothingLeft([HOME, WEST]);
  });

  test('bakeTimeout still fails a bake whose request started longer ago, and terminates its test instance', async () => {
    const builder = await suite.harness().launchBuilder();
    const validated = { ...props(builder), ...await validationProps('sleep 30') };

    const outcome = await run(event('Create', validated), { startedAt: new Date(Date.now() - 601_000) });

    expect(outcome.error?.message).toMatch(/validation of image ami-\w+ is still running after \d+ s, longer than bakeTimeout \(600 s\)/);
    const instances = suite.harness().proxy.validationInstances();
    expect(instances).toHaveLength(1);
    expect(instances[0].terminated).toBe(true);
    await run(event('Delete', validated, outcome.physicalId));
    await expectNothingLeft();
  });
});

describe('EC2\'s eventual consistency', () => {
  test('a new image not yet visible to DescribeImages is pending, and the bake completes once it shows', async () => {
    suite.harness().proxy.setConsistency({ newImageHiddenFor: 3 });
    const builder = await suite.harness().launchBuilder();

    const outcome = await run(event('Create', props(builder)));

    expect(outcome.error).toBeUndefined();
    expect(outcome.answers.slice(0, 1)).toEqual([{ IsComplete: false }]);
    expect(outcome.answers[outcome.answers.length - 1].IsComplete).toBe(true);
    await run(event('Delete', props(builder), outcome.physicalId));
    await expectNothingLeft();
  });

  test('an image still not found after the grace period fails with a clear reason', async () => {
    const builder = await suite.harness().launchBuilder();
    const created = await run(event('Create', props(builder)));
    const stop = rewriteImagesUntilStopped((body) => body.replace(/<item>[\s\S]*<\/item>/, ''));

    const update = await run(event('Update', props(builder, { [Prop.BAKE_TIMEOUT_SECONDS]: '900' }), created.physicalId, props(builder)),
      { startedAt: new Date(Date.now() - 301_000) });

    expect(update.error?.message).toMatch(new RegExp(`Image ${created.physicalId} from builder ${builder} is not found \\d+ s after this request started`));
    stop();
    await run(event('Delete', props(builder), created.physicalId));
    await expectNothingLeft();
  });

  test('copies and test instances not yet visible are waited for, not made twice', async () => {
    suite.harness().proxy.setConsistency({ newImageHiddenFor: 2, newInstanceHiddenFor: 2 });
    const builder = await suite.harness().launchBuilder();
    const full = { ...props(builder, { [Prop.COPY_TO_REGIONS]: [WEST] }), ...await validationProps('true') };

    const outcome = await run(event('Create', full));

    expect(outcome.error).toBeUndefined();
    expect(suite.harness().proxy.validationInstances()).toHaveLength(1);
    expect((await suite.harness().leftovers([WEST])).images).toHaveLength(1);
    await run(event('Delete', full, outcome.physicalId));
    await expectNothingLeft([HOME, WEST]);
  });

  test('snapshots still in use just after DeregisterImage are deleted by the Delete\'s next polls', async () => {
    suite.harness().proxy.setConsistency({ deregisteredSnapshotsInUseFor: 3 });
    const builder = await suite.harness().launchBuilder();
    const created = await run(event('Create', props(builder, { [Prop.COPY_TO_REGIONS]: [WEST] })));

    const deleted = await run(event('Delete', props(builder, { [Prop.COPY_TO_REGIONS]: [WEST] }), created.physicalId));

    expect(deleted.error).toBeUndefined();
    expect(deleted.answers.some((answer) => !answer.IsComplete)).toBe(true);
    await expectNothingLeft([HOME, WEST]);
  });

  test('a snapshot still in use after the deadline fails the Delete, naming it', async () => {
    suite.harness().proxy.setConsistency({ deregisteredSnapshotsInUseFor: 1000 });
    const builder = await suite.harness().launchBuilder();
    const created = await run(event('Create', props(builder)));

    const deleted = await run(event('Delete', props(builder), created.physicalId), { startedAt: new Date(Date.now() - 601_000) });

    expect(deleted.error?.message).toMatch(new RegExp(`Snapshots ${HOME}/snap-\\w+ of image ${created.physicalId} are still in use \\d+ s after`));
    suite.harness().proxy.setConsistency({});
    expect((await run(event('Delete', props(builder), created.physicalId))).error).toBeUndefined();
    await expectNothingLeft();
  });
});

describe('responses fit CloudFormation\'s 4,096 bytes', () => {
  test('a failed validation with long output still reports within the limit, with its last lines', async () => {
    const builder = await suite.harness().launchBuilder();
    const script = 'for i in $(seq 1 60); do printf "line %03d %s\\n" "$i" "$(head -c 180 /dev/zero | tr "\\0" x)"; done; exit 3';
    const validated = { ...props(builder), ...await validationProps(script) };

    const outcome = await run(event('Create', validated));

    expect(outcome.error?.message).toMatch(/failed with exit code 3/);
    expect(outcome.error?.message).toMatch(/line 060/);
    await run(event('Delete', validated, outcome.physicalId));
    await expectNothingLeft();
  });
});

describe('behaviours a broken handler would lose', () => {
  test('a Delete finds the copies its properties list even when the image does not record them', async () => {
    const builder = await suite.harness().launchBuilder();
    const copied = props(builder, { [Prop.COPY_TO_REGIONS]: [WEST] });
    const created = await run(event('Create', copied));
    await suite.harness().ec2.send(new DeleteTagsCommand({ Resources: [created.physicalId], Tags: [{ Key: Tag.COPY_REGIONS }] }));

    const deleted = await run(event('Delete', copied, created.physicalId));

    expect(deleted.error).toBeUndefined();
    await expectNothingLeft([HOME, WEST]);
  });

  test('a Delete terminates a test instance that is still pending', async () => {
    suite.harness().proxy.setConsistency({ newInstancePendingFor: 1000 });
    const builder = await suite.harness().launchBuilder();
    const validated = { ...props(builder), ...await validationProps('sleep 30') };
    const started = await suite.handler().onEvent(event('Create', validated));
    const poll: IsCompleteRequest = { ...event('Create', validated), PhysicalResourceId: started.PhysicalResourceId ?? '', Data: started.Data };
    await suite.handler().isComplete(poll);
    expect(suite.harness().proxy.validationInstances()).toHaveLength(1);

    const deleted = await run(event('Delete', validated, poll.PhysicalResourceId));

    expect(deleted.error).toBeUndefined();
    expect(suite.harness().proxy.validationInstances()[0].terminated).toBe(true);
    await expectNothingLeft();
  });

  test('an Update that turns deregistration protection off lifts it', async () => {
    const builder = await suite.harness().launchBuilder();
    const protectedProps = props(builder, { [Prop.DEREGISTRATION_PROTECTION]: 'true' });
    const created = await run(event('Create', protectedProps));
    const before = (await suite.harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [created.physicalId] }))).Images?.[0];
    expect(before?.DeregistrationProtection).toMatch(/^enabled/);

    const unprotected = props(builder, { [Prop.DEREGISTRATION_PROTECTION]: 'false' });
    expect((await run(event('Update', unprotected, created.physicalId, protectedProps))).error).toBeUndefined();

    const after = (await suite.harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [created.physicalId] }))).Images?.[0];
    expect(after?.DeregistrationProtection ?? 'disabled').toBe('disabled');
    await run(event('Delete', unprotected, created.physicalId));
    await expectNothingLeft();
  });

  test('a running test instance is read with Latest: without it EC2 shows nothing of a running test', async () => {
    const builder = await suite.harness().launchBuilder();
    const validated = { ...props(builder), ...await validationProps('echo tested') };

    const outcome = await run(event('Create', validated));

    expect(outcome.error).toBeUndefined();
    const consoleCalls = suite.harness().proxy.requests.filter((request) => request.action === 'GetConsoleOutput');
    expect(consoleCalls.length).toBeGreaterThan(0);
    expect(consoleCalls.every((request) => request.params.get('Latest') === 'true')).toBe(true);
    await run(event('Delete', validated, outcome.physicalId));
    await expectNothingLeft();
  });
});
