import {
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  EC2Client,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete } from '../../lambda/bake-image';
import type { IsCompleteRequest } from '../../lambda/bake-image/types';
import { outputTail, parseValidationReport } from '../../lambda/bake-image/validation';
import type { BakeSpec, ValidationSpec } from '../../src/private/contract';
import { createEvent, IMAGE_ID, isCompleteEvent, requestStarted, setUpHandlerTests, STACK_ID, updateEvent } from '../support/fixtures';

const ec2 = mockClient(EC2Client);
const TEST_INSTANCE = 'i-0fedcba9876543210';
const VALIDATION: ValidationSpec = {
  userData: '#!/bin/bash\n# cdk-baked-image: image validation\ntrue\n',
  timeoutSeconds: 600,
  instanceType: 't3.micro',
  subnetId: 'subnet-0123',
  securityGroupIds: ['sg-0123'],
};

/**
 * An isComplete request of a validated bake, with onEvent's Data: the request started `startedSecondsAgo` ago.
 * An Update adds the validation to an image baked without one.
 */
function request(requestId = 'r1', overrides: Partial<BakeSpec> = {}, startedSecondsAgo = 0, type: 'Create' | 'Update' = 'Create'): IsCompleteRequest {
  const spec = { validation: VALIDATION, ...overrides };
  const event = type === 'Create' ? createEvent(spec, { requestId }) : updateEvent(spec, overrides, IMAGE_ID, { requestId });
  return isCompleteEvent(event, IMAGE_ID, requestStarted(startedSecondsAgo));
}

const console64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

setUpHandlerTests(ec2);

beforeEach(() => {
  ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, Name: 'web-1', State: 'available', CreationDate: new Date().toISOString() }] });
});

describe('parseValidationReport', () => {
  test('reads the report lines between kernel and cloud-init lines, with carriage returns, and the exit code', () => {
    const output = [
      '[   12.3] cloud-init[1234]: Cloud-init v. 22.2.2 running modules:final',
      'cdk-baked-image-validation: begin\r',
      'cdk-baked-image-validation| checking nginx\r',
      '[   13.0] systemd[1]: Started nginx.',
      '[   13.1] cloud-init[1234]: cdk-baked-image-validation| nginx is active',
      'cdk-baked-image-validation| ',
      'cdk-baked-image-validation: exit 0',
      '',
    ].join('\n');
    expect(parseValidationReport(output)).toEqual({ started: true, lines: ['checking nginx', 'nginx is active', ''], exitCode: 0 });
  });

  test('has no exit code while the test runs, and nothing before it starts', () => {
    expect(parseValidationReport('cdk-baked-image-validation: begin\ncdk-baked-image-validation| step 1\n')).toEqual({ started: true, lines: ['step 1'] });
    expect(parseValidationReport('[    0.0] Linux version 6.1\n')).toEqual({ started: false, lines: [] });
    expect(parseValidationReport('')).toEqual({ started: false, lines: [] });
  });

  test('ignores lines that only look like an exit report', () => {
    expect(parseValidationReport('cdk-baked-image-validation: exit\ncdk-baked-image-validation: exit 1x\n').exitCode).toBeUndefined();
  });
});

describe('outputTail', () => {
  test('keeps the last 20 lines', () => {
    const lines = Array.from({ length: 50 }, (_, i) => `line ${i + 1}`);
    expect(outputTail(lines).split('\n')).toEqual(lines.slice(30));
  });

  test('cuts long lines and stays within 1500 characters', () => {
    const tail = outputTail(Array.from({ length: 20 }, () => 'x'.repeat(500)));
    expect(tail.length).toBeLessThanOrEqual(1500);
    expect(tail.split('\n')[0]).toBe(`${'x'.repeat(197)}...`);
  });

  test('says when there was no output', () => {
    expect(outputTail([])).toBe('(no output)');
  });
});

describe('the test instance', () => {
  test('is launched once with the image, network, IMDSv2, self-termination, tags and a client token per request', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: TEST_INSTANCE }] });

    await expect(isComplete(request('r1'))).resolves.toEqual({ IsComplete: false });
    await isComplete(request('r1'));
    await isComplete(request('r2'));

    const launches = ec2.commandCalls(RunInstancesCommand).map((call) => call.args[0].input);
    expect(launches[0]).toEqual(expect.objectContaining({
      ImageId: IMAGE_ID,
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: 'subnet-0123',
      SecurityGroupIds: ['sg-0123'],
      UserData: console64(VALIDATION.userData),
      InstanceInitiatedShutdownBehavior: 'terminate',
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
    }));
    expect(launches[0].IamInstanceProfile).toBeUndefined();
    expect(launches[0].TagSpecifications?.map((spec) => spec.ResourceType)).toEqual(['instance', 'volume']);
    expect(launches[0].TagSpecifications?.[0].Tags).toEqual(expect.arrayContaining([
      { Key: 'cdk-baked-image:validates', Value: IMAGE_ID },
      { Key: 'cdk-baked-image:validation-request', Value: 'r1' },
      { Key: 'cdk-baked-image:stack-id', Value: STACK_ID },
      { Key: 'cdk-baked-image:logical-id', Value: 'Image' },
    ]));
    // A retried launch of the same request is the same launch; another request launches its own.
    expect(launches[1].ClientToken).toBe(launches[0].ClientToken);
    expect(launches[2].ClientToken).not.toBe(launches[0].ClientToken);
    expect(launches[0].ClientToken!.length).toBeLessThanOrEqual(64);
  });

  test('an image that already passed this validation is not tested again', async () => {
    const fingerprintOf = async () => {
      ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: TEST_INSTANCE, State: { Name: 'running' }, LaunchTime: new Date() }] }] });
      ec2.on(GetConsoleOutputCommand).resolves({ Output: console64('cdk-baked-image-validation: exit 0\n') });
      await isComplete(request());
      return ec2.commandCalls(CreateTagsCommand)[0].args[0].input.Tags![0].Value!;
    };
    const fingerprint = await fingerprintOf();
    ec2.reset();
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    ec2.on(DescribeImagesCommand).resolves({
      Images: [{
        ImageId: IMAGE_ID, State: 'available', CreationDate: new Date().toISOString(), Tags: [{ Key: 'cdk-baked-image:validated', Value: fingerprint }],
      }],
    });
    await expect(isComplete(request())).resolves.toEqual(expect.objectContaining({ IsComplete: true }));
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });

  test('a console read that fails names the test instance and the error, and leaves the Delete to terminate it', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: TEST_INSTANCE, State: { Name: 'running' }, LaunchTime: new Date() }] }] });
    ec2.on(GetConsoleOutputCommand).rejects(Object.assign(new Error('not authorized'), { name: 'UnauthorizedOperation' }));
    await expect(isComplete(request())).rejects.toThrow(`GetConsoleOutput for test instance ${TEST_INSTANCE} failed: UnauthorizedOperation: not authorized`);
    // Neither terminated here nor its image deleted: the Delete of the failed bake does both (moto-validation.test.ts).
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeregisterImageCommand)).toHaveLength(0);
  });

  test('a failed terminate does not hide the validation\'s result: the instance shuts itself down after its timeout', async () => {
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: TEST_INSTANCE, State: { Name: 'running' }, LaunchTime: new Date() }] }] });
    ec2.on(GetConsoleOutputCommand).resolves({ Output: console64('cdk-baked-image-validation| boom\ncdk-baked-image-validation: exit 2\n') });
    ec2.on(TerminateInstancesCommand).rejects(Object.assign(new Error('slow down'), { name: 'RequestLimitExceeded' }));
    await expect(isComplete(request())).rejects.toThrow(/failed with exit code 2\. Last lines of its output:\nboom\n/);
    expect(console.warn).toHaveBeenCalledWith(expect.stringContaining('could not terminate the test instance'));
  });
});

describe('bakeTimeout during the validation, counted from the request\'s start', () => {
  // An Update that adds validation to an image baked long ago: the test runs within this request's bakeTimeout.
  beforeEach(() => {
    ec2.on(DescribeImagesCommand).resolves({ Images: [{ ImageId: IMAGE_ID, Name: 'web-1', State: 'available', CreationDate: '2024-01-01T00:00:00.000Z' }] });
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: TEST_INSTANCE, State: { Name: 'running' }, LaunchTime: new Date() }] }] });
    ec2.on(GetConsoleOutputCommand).resolves({ Output: console64('cdk-baked-image-validation: begin\n') });
  });

  test('lets the test of an old image run while this request is within bakeTimeout', async () => {
    await expect(isComplete(request('r1', { bakeTimeoutSeconds: 3000 }, 60, 'Update'))).resolves.toEqual({ IsComplete: false });
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
  });

  test('fails and terminates the test instance once bakeTimeout has passed since the request started', async () => {
    ec2.on(TerminateInstancesCommand).resolves({});

    await expect(isComplete(request('r1', { bakeTimeoutSeconds: 3000 }, 3100, 'Update'))).rejects.toThrow(
      new RegExp(`^The validation of image ${IMAGE_ID} is still running after 310\\d s, longer than bakeTimeout \\(3000 s\\)`),
    );
    expect(ec2.commandCalls(TerminateInstancesCommand).map((call) => call.args[0].input)).toEqual([{ InstanceIds: [TEST_INSTANCE] }]);
  });
});
