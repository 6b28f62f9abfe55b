/**
 * Validate before use, through the shipped handler bundle against moto_server: a test instance launched from
 * the available image runs the validation user data the construct renders (the proxy runs that script for
 * real, with the console as a file and shutdown faked), and the bake completes only if it passes. Pass, fail,
 * timeout and an instance that ends early; the test instance is terminated in every case.
 */
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  type Image,
  type Instance,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { EC2_FAULTS } from './moto-server';
import { customResourceEvent, imageProps, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest, IsCompleteResponse, OnEventRequest } from '../../lambda/bake-image/types';
import { copyImageIdAttribute, Prop, Tag } from '../../src/private/contract';
import { validationUserData } from '../../src/private/validation-script';

jest.setTimeout(60_000);

type Props = Record<string, unknown>;

const suite = useMotoSuite();

async function network(): Promise<{ subnetId: string; securityGroupId: string }> {
  const subnets = await suite.harness().ec2.send(new DescribeSubnetsCommand({}));
  const groups = await suite.harness().ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['default'] }] }));
  return { subnetId: subnets.Subnets?.[0]?.SubnetId ?? '', securityGroupId: groups.SecurityGroups?.[0]?.GroupId ?? '' };
}

async function props(instanceId: string, script: string, options: { timeoutSeconds?: number; extra?: Props } = {}): Promise<Props> {
  const { subnetId, securityGroupId } = await network();
  const timeoutSeconds = options.timeoutSeconds ?? 600;
  return imageProps(instanceId, 'validated', {
    [Prop.VALIDATION_USER_DATA]: validationUserData(script, timeoutSeconds),
    [Prop.VALIDATION_TIMEOUT_SECONDS]: String(timeoutSeconds),
    [Prop.VALIDATION_INSTANCE_TYPE]: 't3.micro',
    [Prop.VALIDATION_SUBNET_ID]: subnetId,
    [Prop.VALIDATION_SECURITY_GROUP_IDS]: [securityGroupId],
    ...options.extra,
  });
}

function event(type: 'Create' | 'Update' | 'Delete', resourceProperties: Props, physicalId?: string, oldProps?: Props): OnEventRequest {
  return customResourceEvent(type, 'ValidatedImage', resourceProperties, { physicalId, oldProps });
}

/** onEvent, then isComplete every 100 ms until it completes or throws: the answers, or the error. */
async function bake(request: OnEventRequest): Promise<{ imageId: string; answers: IsCompleteResponse[]; error?: Error }> {
  const started = await suite.handler().onEvent(request);
  const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: started.Data };
  const answers: IsCompleteResponse[] = [];
  for (let i = 0; i < 100; i++) {
    try {
      const answer = await suite.handler().isComplete(poll);
      answers.push(answer);
      if (answer.IsComplete) {
        return { imageId: poll.PhysicalResourceId, answers };
      }
    } catch (error) {
      return { imageId: poll.PhysicalResourceId, answers, error: error as Error };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('neither complete nor failed after 100 polls');
}

async function image(imageId: string): Promise<Image | undefined> {
  const response = await suite.harness().ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  return response.Images?.find((candidate) => candidate.ImageId === imageId);
}

async function testInstances(imageId: string): Promise<Instance[]> {
  const response = await suite.harness().ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: `tag:${Tag.VALIDATES}`, Values: [imageId] }] }));
  return (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []);
}

/** Every test instance of the image is terminated in EC2, and its script is no longer running. */
async function expectAllTerminated(imageId: string): Promise<void> {
  const instances = await testInstances(imageId);
  expect(instances.length).toBeGreaterThan(0);
  expect(instances.map((instance) => instance.State?.Name)).toEqual(instances.map(() => 'terminated'));
  const deadline = Date.now() + 3000;
  while (suite.harness().proxy.validationInstances().some((instance) => instance.running) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(suite.harness().proxy.validationInstances().filter((instance) => instance.running)).toEqual([]);
}

describe('validate before use through moto', () => {
  test('a passing validation completes the bake: the test instance ran the script, reported, and was terminated', async () => {
    const builder = await suite.harness().launchBuilder();
    const { imageId, answers, error } = await bake(event('Create', await props(builder, 'echo "nginx is active"\ntest 2 -gt 1')));
    expect(error).toBeUndefined();
    expect(answers[0].IsComplete).toBe(false);
    expect(answers[answers.length - 1].IsComplete).toBe(true);

    const [run] = suite.harness().proxy.requests.filter((request) => request.action === 'RunInstances');
    const { subnetId, securityGroupId } = await network();
    expect(run.params.get('ImageId')).toBe(imageId);
    expect(run.params.get('SubnetId')).toBe(subnetId);
    expect(run.params.get('SecurityGroupId.1')).toBe(securityGroupId);
    expect(run.params.get('InstanceType')).toBe('t3.micro');
    expect(run.params.get('InstanceInitiatedShutdownBehavior')).toBe('terminate');
    expect(run.params.get('MetadataOptions.HttpTokens')).toBe('required');
    expect(run.params.get('IamInstanceProfile.Arn') ?? run.params.get('IamInstanceProfile.Name')).toBeNull();

    const [ran] = suite.harness().proxy.validationInstances();
    expect(ran.imageId).toBe(imageId);
    expect(ran.exitCode).toBe(0);
    expect(ran.console).toContain('cdk-baked-image-validation| nginx is active');
    expect(ran.shutdownCalls).toEqual(['-h +20']);
    await expectAllTerminated(imageId);

    // The image records the validation it passed; the builder was stopped only after it.
    expect((await image(imageId))?.Tags).toEqual(expect.arrayContaining([{ Key: Tag.VALIDATED, Value: expect.stringMatching(/^[0-9a-f]{16}$/) }]));
    const actions = suite.harness().proxy.actions();
    expect(actions.lastIndexOf('StopInstances')).toBeGreaterThan(actions.indexOf('CreateTags'));
  });

  test('a failing validation fails the bake with its exit code and the tail of its output; image and snapshot are deleted', async () => {
    const builder = await suite.harness().launchBuilder();
    const script = 'for i in $(seq 1 30); do echo "line $i"; done\necho "nginx is not running" >&2\nexit 3';
    const { imageId, error } = await bake(event('Create', await props(builder, script)));
    expect(error?.message).toMatch(new RegExp(`^Validation of image ${imageId} on test instance i-[0-9a-f]+ failed with exit code 3\\. Last lines of its output:\\n`));
    expect(error?.message).toContain('line 30\nnginx is not running\nThe image is deleted.');
    // Only the tail: the first lines are not in the reason.
    expect(error?.message).not.toContain('line 5\n');
    await expectAllTerminated(imageId);
    expect(await image(imageId)).toBeUndefined();
    expect(suite.harness().proxy.count('DeleteSnapshot')).toBe(1);
    expect(suite.harness().proxy.count('StopInstances')).toBe(0);
  });

  test('a validation that does not finish within its timeout fails the bake; the test instance and its script are ended', async () => {
    const builder = await suite.harness().launchBuilder();
    const { imageId, answers, error } = await bake(event('Create', await props(builder, 'echo "waiting for the app"\nsleep 30', { timeoutSeconds: 2 })));
    expect(answers.length).toBeGreaterThan(0);
    expect(error?.message).toMatch(/on test instance i-[0-9a-f]+ did not finish within its timeout \(2 s; it started\)\. Last lines of its output:\nwaiting for the app\nThe image is deleted\.$/);
    await expectAllTerminated(imageId);
    expect(suite.harness().proxy.validationInstances()[0].exitCode).toBeUndefined();
    expect(await image(imageId)).toBeUndefined();
  });

  test('a test instance that ends before it reports fails the bake, naming its state', async () => {
    const builder = await suite.harness().launchBuilder();
    const request = event('Create', await props(builder, 'sleep 30'));
    const started = await suite.handler().onEvent(request);
    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '' };
    expect((await suite.handler().isComplete(poll)).IsComplete).toBe(false);
    const [instance] = await testInstances(poll.PhysicalResourceId);
    await suite.harness().ec2ViaProxy.send(new TerminateInstancesCommand({ InstanceIds: [instance.InstanceId ?? ''] }));

    await expect(suite.handler().isComplete(poll)).rejects.toThrow(/ended \(terminated: .*\) before it reported a result\. The image is deleted\./);
    await expectAllTerminated(poll.PhysicalResourceId);
  });

  test('one test instance per request: polls while it runs launch no other; the Delete of a bake given up while testing terminates it', async () => {
    const builder = await suite.harness().launchBuilder();
    const request = event('Create', await props(builder, 'sleep 2'));
    const started = await suite.handler().onEvent(request);
    const poll: IsCompleteRequest = { ...request, PhysicalResourceId: started.PhysicalResourceId ?? '' };
    for (let i = 0; i < 3; i++) {
      expect((await suite.handler().isComplete(poll)).IsComplete).toBe(false);
    }
    expect(suite.harness().proxy.count('RunInstances')).toBe(1);
    expect(await testInstances(poll.PhysicalResourceId)).toHaveLength(1);

    // The Delete of a bake given up while testing terminates its test instance.
    await suite.handler().onEvent(event('Delete', request.ResourceProperties, poll.PhysicalResourceId));
    await expectAllTerminated(poll.PhysicalResourceId);
    expect(await image(poll.PhysicalResourceId)).toBeUndefined();
  });

  test('a console read that fails names the test instance and the error, and leaves the Delete to terminate it', async () => {
    const builder = await suite.harness().launchBuilder();
    const request = event('Create', await props(builder, 'echo "testing"\nsleep 30'));
    // Not retryable: the SDK gives up at once, and the poll fails.
    suite.harness().proxy.failNext('GetConsoleOutput', 1, { status: 403, code: 'UnauthorizedOperation', message: 'You are not authorized to perform this operation.' });
    const { imageId, error } = await bake(request);

    const [instance] = await testInstances(imageId);
    expect(error?.message).toBe(
      `GetConsoleOutput for test instance ${instance.InstanceId} failed: UnauthorizedOperation: You are not authorized to perform this operation.`,
    );
    expect(suite.harness().proxy.unusedFaults()).toEqual({});
    // The failed poll neither terminated the test instance nor deleted the image: both are left to the Delete.
    expect(suite.harness().proxy.count('TerminateInstances')).toBe(0);
    expect((await testInstances(imageId)).map((candidate) => candidate.State?.Name)).toEqual(['running']);
    expect(await image(imageId)).toBeDefined();

    await suite.handler().onEvent(event('Delete', request.ResourceProperties, imageId));
    expect(suite.harness().proxy.requests.filter((candidate) => candidate.action === 'TerminateInstances')
      .map((candidate) => candidate.params.get('InstanceId.1'))).toEqual([instance.InstanceId]);
    await expectAllTerminated(imageId);
    expect(await image(imageId)).toBeUndefined();
  });

  test('an Update that keeps the validation tests nothing again; a changed validation tests the same image again without a rebake', async () => {
    const builder = await suite.harness().launchBuilder();
    const first = await props(builder, 'true');
    const { imageId } = await bake(event('Create', first));
    suite.harness().proxy.clearRequests();

    const unchanged = await bake(event('Update', { ...first, [Prop.BUILDER_AFTER_BAKE]: 'keep-running' }, imageId, first));
    expect(unchanged.error).toBeUndefined();
    expect(suite.harness().proxy.count('RunInstances')).toBe(0);

    const stricter = await props(builder, 'echo "version 1 is too old"\nexit 1');
    const revalidated = await bake(event('Update', stricter, imageId, first));
    expect(revalidated.imageId).toBe(imageId);
    expect(suite.harness().proxy.count('CreateImage')).toBe(0);
    expect(suite.harness().proxy.count('RunInstances')).toBe(1);
    // The image passed the earlier validation and may be in use: it stays.
    expect(revalidated.error?.message).toContain('version 1 is too old\nThe image passed an earlier validation and stays');
    expect(await image(imageId)).toBeDefined();
    await expectAllTerminated(imageId);
  });

  test('only a tested image is copied: the copies start after the pass and carry its validation tag', async () => {
    const builder = await suite.harness().launchBuilder();
    const { imageId, answers, error } = await bake(event('Create', await props(builder, 'true', { extra: { [Prop.COPY_TO_REGIONS]: ['us-west-2'] } })));
    expect(error).toBeUndefined();
    const actions = suite.harness().proxy.actions();
    expect(actions.indexOf('CopyImage')).toBeGreaterThan(actions.lastIndexOf('GetConsoleOutput'));
    const data = answers[answers.length - 1].Data ?? {};
    const copy = await suite.harness().ec2In('us-west-2').send(new DescribeImagesCommand({ ImageIds: [data[copyImageIdAttribute('us-west-2')]] }));
    const validated = (await image(imageId))?.Tags?.find((tag) => tag.Key === Tag.VALIDATED)?.Value;
    expect(validated).toBeDefined();
    expect(copy.Images?.[0]?.Tags).toEqual(expect.arrayContaining([{ Key: Tag.VALIDATED, Value: validated }]));
  });

  test.each(['DescribeInstances', 'RunInstances', 'GetConsoleOutput', 'CreateTags', 'TerminateInstances'])(
    '%s throttled twice: the SDK retries it, and the validation passes with one test instance',
    async (action) => {
      jest.spyOn(Math, 'random').mockReturnValue(0.1);
      const builder = await suite.harness().launchBuilder();
      suite.harness().proxy.failNext(action, 2, EC2_FAULTS.throttling);
      const { imageId, error } = await bake(event('Create', await props(builder, 'true')));
      expect(error).toBeUndefined();
      expect(suite.harness().proxy.unusedFaults()).toEqual({});
      const attempts = suite.harness().proxy.requests.filter((request) => request.action === action).slice(0, 3);
      expect(attempts.map((request) => [request.attempt, request.errorCode])).toEqual([[1, 'RequestLimitExceeded'], [2, 'RequestLimitExceeded'], [3, undefined]]);
      expect(await testInstances(imageId)).toHaveLength(1);
      await expectAllTerminated(imageId);
    },
  );
});
