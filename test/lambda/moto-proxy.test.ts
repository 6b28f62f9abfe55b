/**
 * The proxy's own emulations, proven through the proxy against moto_server: region awareness (the region is only
 * in the SigV4 signature), CopyImage (tag specifications, duplicate names, what was asked), holding copies pending
 * by name, validation instances that run their user data script and end as EC2 ends them, the authorizer hook and
 * its lookups, EC2's eventual consistency, the image lifecycle as DescribeImages shows it, RunInstances' idempotency,
 * and the leak check.
 */
import * as fs from 'fs';
import * as http from 'http';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CopyImageCommand,
  type CopyImageCommandInput,
  CreateImageCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeAvailabilityZonesCommand,
  DescribeFastSnapshotRestoresCommand,
  type DescribeFastSnapshotRestoreSuccessItem,
  DescribeImagesCommand,
  type DescribeImagesCommandInput,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DisableFastSnapshotRestoresCommand,
  DisableImageDeprecationCommand,
  DisableImageDeregistrationProtectionCommand,
  EC2Client,
  EnableFastSnapshotRestoresCommand,
  EnableImageDeprecationCommand,
  EnableImageDeregistrationProtectionCommand,
  GetConsoleOutputCommand,
  type Image,
  type Instance,
  RegisterImageCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { MOTO_STACK_ID } from './moto-http';
import {
  type AuthorizationRequest,
  type Authorizer,
  ec2ClientFor,
  MOTO_ACCOUNT_ID,
  parsePowerCall,
  REGION,
  VALIDATION_MARKER,
  type ValidationInstance,
} from './moto-server';
import { useMotoSuite } from './moto-suite';

jest.setTimeout(30_000);

const WEST = 'us-west-2';

const suite = useMotoSuite();
const harness = () => suite.harness();

/** Through the proxy, signed for us-west-2: how the handler's client for another region talks. */
let westViaProxy: EC2Client;
beforeAll(() => {
  westViaProxy = ec2ClientFor(harness().proxy.endpoint, WEST);
});
afterAll(() => {
  westViaProxy?.destroy();
});

function tagMap(tags: Tag[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
}

async function imageIn(region: string, imageId: string): Promise<Image> {
  const image = (await harness().ec2In(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];
  if (!image) {
    throw new Error(`no image ${imageId} in ${region}`);
  }
  return image;
}

function snapshotOf(image: Image): string {
  const snapshotId = image.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId;
  if (!snapshotId) {
    throw new Error(`image ${image.ImageId} has no snapshot`);
  }
  return snapshotId;
}

async function snapshotsIn(region: string, snapshotId: string) {
  const response = await harness().ec2In(region).send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: [snapshotId] }] }));
  return response.Snapshots ?? [];
}

/** An image in us-east-1, baked through the proxy from a fresh builder. */
async function sourceImage(name: string): Promise<string> {
  const created = await harness().ec2ViaProxy.send(new CreateImageCommand({ InstanceId: await harness().launchBuilder(), Name: name }));
  return created.ImageId ?? '';
}

function copyOf(sourceImageId: string, name: string, extra: Partial<CopyImageCommandInput> = {}): CopyImageCommand {
  return new CopyImageCommand({ SourceImageId: sourceImageId, SourceRegion: REGION, Name: name, ...extra });
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 4000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('CopyImage through the proxy', () => {
  test('makes the copy in the region the request is signed for, with the image and snapshot tags, and records what was asked', async () => {
    const sourceId = await sourceImage('proxy-source');

    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-copy', {
      Encrypted: true,
      KmsKeyId: 'alias/copies',
      TagSpecifications: [
        { ResourceType: 'image', Tags: [{ Key: 'kind', Value: 'copy' }, { Key: 'from', Value: sourceId }] },
        { ResourceType: 'snapshot', Tags: [{ Key: 'kind', Value: 'copy-snapshot' }] },
      ],
    }));
    const copyId = copy.ImageId ?? '';

    expect(copyId).toMatch(/^ami-[0-9a-f]+$/);
    expect(harness().proxy.requests.find((request) => request.action === 'CopyImage')?.region).toBe(WEST);
    await expect(harness().ec2.send(new DescribeImagesCommand({ ImageIds: [copyId] }))).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
    const image = await imageIn(WEST, copyId);
    expect(image.Name).toBe('proxy-copy');
    expect(tagMap(image.Tags)).toEqual({ kind: 'copy', from: sourceId });
    const [snapshot, ...others] = await snapshotsIn(WEST, snapshotOf(image));
    expect(others).toEqual([]);
    expect(tagMap(snapshot?.Tags)).toEqual({ kind: 'copy-snapshot' });
    // The source and its snapshot keep their own (no) tags.
    const source = await imageIn(REGION, sourceId);
    expect(tagMap(source.Tags)).toEqual({});
    expect(tagMap((await snapshotsIn(REGION, snapshotOf(source)))[0]?.Tags)).toEqual({});

    expect(harness().proxy.copyRequest(copyId)).toEqual({ sourceRegion: REGION, sourceImageId: sourceId, encrypted: true, kmsKeyId: 'alias/copies' });
    expect(harness().proxy.copyRequest(sourceId)).toBeUndefined();
  });

  test('records a copy that asked nothing about encryption without it', async () => {
    const sourceId = await sourceImage('proxy-plain-source');
    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-plain-copy'));
    expect(harness().proxy.copyRequest(copy.ImageId ?? '')).toEqual({ sourceRegion: REGION, sourceImageId: sourceId });
    expect(tagMap((await imageIn(WEST, copy.ImageId ?? '')).Tags)).toEqual({});
  });

  test('answers InvalidAMIName.Duplicate for a name already used in the destination region, and only there', async () => {
    const sourceId = await sourceImage('proxy-shared-name');
    const first = await westViaProxy.send(copyOf(sourceId, 'proxy-dup'));

    await expect(westViaProxy.send(copyOf(sourceId, 'proxy-dup')))
      .rejects.toMatchObject({ name: 'InvalidAMIName.Duplicate', message: `AMI name proxy-dup is already in use by AMI ${first.ImageId}` });
    expect(harness().proxy.requests.filter((request) => request.action === 'CopyImage').map((request) => request.status)).toEqual([200, 400]);
    const named = await harness().ec2In(WEST).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['proxy-dup'] }] }));
    expect(named.Images?.map((image) => image.ImageId)).toEqual([first.ImageId]);

    // The source's name is in use in us-east-1 only: no duplicate in us-west-2.
    const sameName = await westViaProxy.send(copyOf(sourceId, 'proxy-shared-name'));
    expect((await imageIn(WEST, sameName.ImageId ?? '')).Name).toBe('proxy-shared-name');
    // Nor the other way round: CreateImage in us-east-1 with a name only us-west-2 has.
    const created = await harness().ec2ViaProxy.send(new CreateImageCommand({ InstanceId: await harness().launchBuilder(), Name: 'proxy-dup' }));
    expect((await imageIn(REGION, created.ImageId ?? '')).Name).toBe('proxy-dup');
  });

  test('concurrent copies with one name make one copy, like EC2', async () => {
    const sourceId = await sourceImage('proxy-race-source');
    const results = await Promise.allSettled([1, 2, 3].map(() => westViaProxy.send(copyOf(sourceId, 'proxy-race'))));

    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((result) => result.status === 'rejected').map((result) => (result as PromiseRejectedResult).reason.name))
      .toEqual(['InvalidAMIName.Duplicate', 'InvalidAMIName.Duplicate']);
  });

  test('a CopyImage repeated with its ClientToken answers the first copy, as EC2 does', async () => {
    const sourceId = await sourceImage('proxy-token-source');
    const first = await westViaProxy.send(copyOf(sourceId, 'proxy-token', { ClientToken: 'token-1' }));
    const again = await westViaProxy.send(copyOf(sourceId, 'proxy-token', { ClientToken: 'token-1' }));

    expect(again.ImageId).toBe(first.ImageId);
    const named = await harness().ec2In(WEST).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['proxy-token'] }] }));
    expect(named.Images).toHaveLength(1);
    await expect(westViaProxy.send(copyOf(sourceId, 'proxy-token-other', { ClientToken: 'token-1' })))
      .rejects.toMatchObject({ name: 'IdempotentParameterMismatch' });
  });
});

describe('side calls of the proxy go to the region of the request', () => {
  test('DeregisterImage with DeleteAssociatedSnapshots deletes the snapshot of a us-west-2 copy', async () => {
    const sourceId = await sourceImage('proxy-deregister-source');
    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-deregister'));
    const copySnapshot = snapshotOf(await imageIn(WEST, copy.ImageId ?? ''));
    const sourceSnapshot = snapshotOf(await imageIn(REGION, sourceId));

    await westViaProxy.send(new DeregisterImageCommand({ ImageId: copy.ImageId, DeleteAssociatedSnapshots: true }));

    expect((await harness().ec2In(WEST).send(new DescribeImagesCommand({ ImageIds: [copy.ImageId ?? ''] }))).Images).toEqual([]);
    expect(await snapshotsIn(WEST, copySnapshot)).toEqual([]);
    expect((await snapshotsIn(REGION, sourceSnapshot)).map((snapshot) => snapshot.SnapshotId)).toEqual([sourceSnapshot]);
  });

  test('the lifecycle calls find a us-west-2 image only when signed for us-west-2', async () => {
    const sourceId = await sourceImage('proxy-lifecycle-source');
    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-lifecycle'));
    const deprecateAt = new Date('2027-06-01T00:00:00.000Z');

    await westViaProxy.send(new EnableImageDeprecationCommand({ ImageId: copy.ImageId, DeprecateAt: deprecateAt }));

    expect(new Date(harness().proxy.imageLifecycle(copy.ImageId ?? '').deprecateAt ?? '').toISOString()).toBe(deprecateAt.toISOString());
    await expect(harness().ec2ViaProxy.send(new EnableImageDeprecationCommand({ ImageId: copy.ImageId, DeprecateAt: deprecateAt })))
      .rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
  });

  test('DeleteSnapshot finds the us-west-2 image registered from the snapshot', async () => {
    const sourceId = await sourceImage('proxy-in-use-source');
    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-in-use'));
    const snapshotId = snapshotOf(await imageIn(WEST, copy.ImageId ?? ''));
    const registered = await westViaProxy.send(new RegisterImageCommand({
      Name: 'proxy-in-use-registered',
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: snapshotId } }],
    }));
    await harness().ec2In(WEST).send(new DeregisterImageCommand({ ImageId: copy.ImageId }));

    await expect(westViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })))
      .rejects.toMatchObject({ name: 'InvalidSnapshot.InUse', message: `The snapshot ${snapshotId} is currently in use by ${registered.ImageId}` });
    expect(await snapshotsIn(WEST, snapshotId)).toHaveLength(1);
  });

  test('StopInstances of a terminated us-west-2 instance answers IncorrectInstanceState', async () => {
    const west = harness().ec2In(WEST);
    const ami = (await west.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0]?.ImageId;
    const launched = await west.send(new RunInstancesCommand({ ImageId: ami, MinCount: 1, MaxCount: 1 }));
    const instanceId = launched.Instances?.[0]?.InstanceId ?? '';
    await west.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));

    await expect(westViaProxy.send(new StopInstancesCommand({ InstanceIds: [instanceId] })))
      .rejects.toMatchObject({ name: 'IncorrectInstanceState' });
  });
});

describe('holding and failing copies found by name', () => {
  test('reports the images of the name pending to the next lookups by that name only', async () => {
    const sourceId = await sourceImage('proxy-held-source');
    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-held'));
    const byName = async (name: string) => {
      const response = await westViaProxy.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
      return response.Images?.map((image) => `${image.ImageId} ${image.State}`);
    };

    harness().proxy.holdPendingByName('proxy-held', 2);

    const byId = await westViaProxy.send(new DescribeImagesCommand({ ImageIds: [copy.ImageId ?? ''] }));
    expect(byId.Images?.[0]?.State).toBe('available');
    expect(await byName('proxy-held-source')).toEqual([]);
    expect(await byName('proxy-held')).toEqual([`${copy.ImageId} pending`]);
    expect(harness().proxy.unusedRewrites()).toBe(1);
    expect(await byName('proxy-held')).toEqual([`${copy.ImageId} pending`]);
    expect(await byName('proxy-held')).toEqual([`${copy.ImageId} available`]);
    expect(harness().proxy.unusedRewrites()).toBe(0);
  });

  test('failImageByName reports the images of the name failed to the next lookups by that name', async () => {
    const sourceId = await sourceImage('proxy-failed-source');
    const copy = await westViaProxy.send(copyOf(sourceId, 'proxy-failed'));
    harness().proxy.failImageByName('proxy-failed', 1, { code: 'Client.CopyFailed', message: 'KMS key <disabled>' });

    const lookup = () => westViaProxy.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['proxy-failed'] }] }));
    const failed = (await lookup()).Images ?? [];
    expect(failed.map((image) => [image.ImageId, image.State, image.StateReason])).toEqual([
      [copy.ImageId, 'failed', { Code: 'Client.CopyFailed', Message: 'KMS key <disabled>' }],
    ]);
    expect((await lookup()).Images?.map((image) => image.State)).toEqual(['available']);
  });
});

/** User data that the proxy runs as a validation script: the marker, then these lines. */
function script(...lines: string[]): string {
  return Buffer.from(['#!/bin/bash', VALIDATION_MARKER, ...lines, ''].join('\n'), 'utf8').toString('base64');
}

/** Launches one instance through the proxy, from a fresh image, with this user data. */
async function launch(userData: string, extra: Partial<RunInstancesCommandInput> = {}): Promise<{ instanceId: string; imageId: string }> {
  const imageId = await sourceImage(`proxy-validated-${Date.now()}-${Math.random().toString(16).slice(2, 8)}`);
  const response = await harness().ec2ViaProxy.send(new RunInstancesCommand({
    ImageId: imageId, MinCount: 1, MaxCount: 1, UserData: userData, ...extra,
  }));
  return { instanceId: response.Instances?.[0]?.InstanceId ?? '', imageId };
}

/** GetConsoleOutput through the proxy, decoded; `latest` as the handler asks (Latest=true), or without Latest. */
async function consoleOutput(instanceId: string, latest = true): Promise<string | undefined> {
  const response = await harness().ec2ViaProxy.send(new GetConsoleOutputCommand({ InstanceId: instanceId, ...(latest ? { Latest: true } : {}) }));
  expect(response.InstanceId).toBe(instanceId);
  return response.Output === undefined ? undefined : Buffer.from(response.Output, 'base64').toString('utf8');
}

function instance(instanceId: string): ValidationInstance | undefined {
  return harness().proxy.validationInstances().find((candidate) => candidate.instanceId === instanceId);
}

/** The instance as moto has it (straight from moto). */
async function motoInstance(instanceId: string, region = REGION): Promise<Instance | undefined> {
  const response = await harness().ec2In(region).send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return response.Reservations?.[0]?.Instances?.[0];
}

/**
 * The processes of a process group that still live, from /proc: killed ones may stay zombies for a while, until
 * init reaps the orphans.
 */
function liveProcessesOfGroup(pgid: number): number[] {
  return fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      return [];
    }
    // pid (comm) state ppid pgrp ...
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(pgrp) === pgid && state !== 'Z' ? [Number(entry)] : [];
  });
}

describe('validation instances', () => {
  test('runs the script: GetConsoleOutput answers its console, shutdown is a stand-in that only records its arguments', async () => {
    const userData = script(
      'echo "first line" > /dev/console',
      'echo hello > /dev/console',
      'echo "shutdown is $(command -v shutdown)" > /dev/console',
      'echo "tmp is $(mktemp)" > /dev/console',
      'shutdown -h +5',
      '/sbin/shutdown -r now',
      'exit 0',
    );
    const { instanceId, imageId } = await launch(userData);

    const output = await until('hello on the console', async () => {
      const text = await consoleOutput(instanceId);
      return text?.includes('tmp is') ? text : undefined;
    });

    const lines = output.trimEnd().split('\n');
    expect(lines.slice(0, 2)).toEqual(['first line', 'hello']);
    const runDir = /^shutdown is (.+)\/bin\/shutdown$/.exec(lines[2])?.[1];
    expect(runDir).toBeDefined();
    expect(lines[3]).toMatch(new RegExp(`^tmp is ${runDir}/tmp\\.\\w+$`));
    const done = await until('the script to exit', () => (instance(instanceId)?.running === false ? instance(instanceId) : undefined));
    expect(done).toEqual({
      instanceId,
      imageId,
      userData: Buffer.from(userData, 'base64').toString('utf8'),
      running: false,
      exitCode: 0,
      terminated: false,
      stopped: false,
      shutdownCalls: ['-h +5', '-r now'],
      console: output,
      // The reboot is only recorded; the shutdown in five minutes is pending.
      scheduledShutdown: { command: 'shutdown -h +5', dueAt: expect.any(Number) },
    });
    // moto's instance is untouched by the script's shutdown: it still runs.
    const described = await harness().ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('running');
  });

  test('TerminateInstances kills the script and everything it started; an empty console has no output', async () => {
    const { instanceId } = await launch(script('echo "pid $$" > /dev/console', 'sleep 60 &', 'sleep 60'));
    const pid = Number(/pid (\d+)/.exec(await until('the pid on the console', () => consoleOutput(instanceId)))?.[1]);
    // The script, its two sleeps and the console reader.
    expect(liveProcessesOfGroup(pid).length).toBeGreaterThanOrEqual(4);
    expect(instance(instanceId)).toMatchObject({ running: true, terminated: false, exitCode: undefined });

    await harness().ec2ViaProxy.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));

    const stopped = await until('the script to be killed', () => (instance(instanceId)?.running === false ? instance(instanceId) : undefined), 2000);
    expect(stopped).toMatchObject({ terminated: true, exitCode: undefined, shutdownCalls: [] });
    await until('the process group to be gone', () => (liveProcessesOfGroup(pid).length > 0 ? undefined : true), 1000);
    // The console stays readable after the instance terminated.
    expect(await consoleOutput(instanceId)).toBe(`pid ${pid}\n`);

    const silent = await launch(script('sleep 60'));
    expect(await consoleOutput(silent.instanceId)).toBeUndefined();
  });

  test('reset kills the scripts still running and removes their directories', async () => {
    const { instanceId } = await launch(script('echo "pid $$ dir $(pwd)" > /dev/console', 'sleep 60'));
    const match = /pid (\d+) dir (\S+)/.exec(await until('the pid on the console', () => consoleOutput(instanceId)) ?? '');
    const pid = Number(match?.[1]);
    const dir = match?.[2] ?? '';
    expect(fs.existsSync(dir)).toBe(true);
    expect(liveProcessesOfGroup(pid).length).toBeGreaterThanOrEqual(2);

    harness().proxy.reset();

    expect(harness().proxy.validationInstances()).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
    await until('the process group to be gone', () => (liveProcessesOfGroup(pid).length > 0 ? undefined : true), 1000);
  });

  test('a RunInstances without the validation marker keeps moto behaviour', async () => {
    const userData = Buffer.from('#!/bin/bash\necho hello > /dev/console\n', 'utf8').toString('base64');
    const { instanceId } = await launch(userData);

    expect(await consoleOutput(instanceId)).toMatch(/^Linux version 2\.6\.16-xenU/);
    expect(harness().proxy.validationInstances()).toEqual([]);
  });
});

describe('validation instances end as EC2 ends them', () => {
  test.each(['shutdown -h now', 'poweroff', 'halt', 'shutdown now'])(
    '`%s` with shutdown behaviour terminate: the script is killed at once and the instance ends terminated in moto',
    async (command) => {
      const { instanceId } = await launch(
        script('echo before > /dev/console', `${command}`, 'echo after > /dev/console', 'sleep 60'),
        { InstanceInitiatedShutdownBehavior: 'terminate' },
      );

      const ended = await until('the power-off', () => (instance(instanceId)?.poweredOff ? instance(instanceId) : undefined));
      expect(ended).toMatchObject({ terminated: true, stopped: false, poweredOff: { command, outcome: 'terminated' } });
      expect((await motoInstance(instanceId))?.State?.Name).toBe('terminated');
      await until('the script to be gone', () => (instance(instanceId)?.running === false ? true : undefined), 2000);
      // Nothing after the power-off ran.
      expect(instance(instanceId)?.console).toBe('before\n');
      // The power-off went straight to moto: no request the handler could be charged with.
      expect(harness().proxy.count('TerminateInstances')).toBe(0);
    },
  );

  test('`poweroff` with EC2\'s default shutdown behaviour stops the instance', async () => {
    const { instanceId } = await launch(script('poweroff', 'echo after > /dev/console'));

    const ended = await until('the power-off', () => (instance(instanceId)?.poweredOff ? instance(instanceId) : undefined));
    expect(ended).toMatchObject({ terminated: false, stopped: true, poweredOff: { command: 'poweroff', outcome: 'stopped' }, console: '' });
    expect((await motoInstance(instanceId))?.State?.Name).toBe('stopped');
  });

  test('a scheduled shutdown fires once the clock passes its due time, also after the script exited; a cancelled one never does', async () => {
    const terminate = { InstanceInitiatedShutdownBehavior: 'terminate' } as const;
    const scheduled = await launch(script('shutdown -h +5 "backstop"', 'echo scheduled > /dev/console'), terminate);
    const cancelled = await launch(script('shutdown -h +5', 'shutdown -c', 'echo cancelled > /dev/console'), terminate);
    await until('both scripts to exit', () => (instance(scheduled.instanceId)?.running === false && instance(cancelled.instanceId)?.running === false
      ? true : undefined));
    const due = instance(scheduled.instanceId)?.scheduledShutdown?.dueAt ?? 0;
    expect(due - harness().proxy.now()).toBeGreaterThan(4 * 60_000);
    expect(due - harness().proxy.now()).toBeLessThanOrEqual(5 * 60_000);
    expect(instance(scheduled.instanceId)?.scheduledShutdown?.command).toBe('shutdown -h +5 backstop');
    expect(instance(cancelled.instanceId)?.scheduledShutdown).toBeUndefined();

    await harness().proxy.advanceClock(4 * 60_000);
    expect((await motoInstance(scheduled.instanceId))?.State?.Name).toBe('running');
    expect(instance(scheduled.instanceId)?.poweredOff).toBeUndefined();

    await harness().proxy.advanceClock(61_000);
    expect(instance(scheduled.instanceId)).toMatchObject({ terminated: true, poweredOff: { command: 'shutdown -h +5 backstop', outcome: 'terminated' } });
    expect(instance(scheduled.instanceId)?.scheduledShutdown).toBeUndefined();
    expect((await motoInstance(scheduled.instanceId))?.State?.Name).toBe('terminated');
    expect((await motoInstance(cancelled.instanceId))?.State?.Name).toBe('running');
    expect(instance(cancelled.instanceId)?.poweredOff).toBeUndefined();
  });

  test('GetConsoleOutput without Latest answers what EC2 buffered: nothing while the instance runs, everything once it terminated', async () => {
    const { instanceId } = await launch(script('echo "line one" > /dev/console', 'echo "line two" > /dev/console', 'sleep 60'));
    await until('the live console', async () => ((await consoleOutput(instanceId))?.includes('line two') ? true : undefined));

    expect(await consoleOutput(instanceId, false)).toBeUndefined();

    await harness().ec2ViaProxy.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    expect(await consoleOutput(instanceId, false)).toBe('line one\nline two\n');
    expect(await consoleOutput(instanceId, true)).toBe('line one\nline two\n');
  });

  test('StopInstances through the proxy stops the script with the instance', async () => {
    const { instanceId } = await launch(script('echo "pid $$" > /dev/console', 'sleep 60'));
    const pid = Number(/pid (\d+)/.exec(await until('the pid on the console', () => consoleOutput(instanceId)))?.[1]);

    await harness().ec2ViaProxy.send(new StopInstancesCommand({ InstanceIds: [instanceId] }));

    expect(instance(instanceId)).toMatchObject({ stopped: true, terminated: false });
    await until('the process group to be gone', () => (liveProcessesOfGroup(pid).length > 0 ? undefined : true), 1000);
    expect(await consoleOutput(instanceId, false)).toBe(`pid ${pid}\n`);
  });

  test.each([
    [['-h', 'now'], { kind: 'power-off', delayMs: 0 }],
    [['now'], { kind: 'power-off', delayMs: 0 }],
    [['-P', '+0'], { kind: 'power-off', delayMs: 0 }],
    [['-h', '+20'], { kind: 'power-off', delayMs: 20 * 60_000 }],
    [[], { kind: 'power-off', delayMs: 60_000 }],
    [['-r', 'now'], { kind: 'reboot' }],
    [['-c'], { kind: 'cancel' }],
    [['-k', 'now'], { kind: 'nothing' }],
    [['-h', '12:30'], { kind: 'power-off', delayMs: 30 * 60_000 }],
    [['-h', 'soon'], { kind: 'nothing' }],
  ])('shutdown %j asks for %j', (args, expected) => {
    expect(parsePowerCall('shutdown', args, Date.parse('2026-01-01T12:00:00Z'))).toEqual(expected);
  });

  test('poweroff and halt power off at once; reboot and poweroff --reboot reboot', () => {
    expect(parsePowerCall('poweroff', [], 0)).toEqual({ kind: 'power-off', delayMs: 0 });
    expect(parsePowerCall('halt', ['-f'], 0)).toEqual({ kind: 'power-off', delayMs: 0 });
    expect(parsePowerCall('poweroff', ['--reboot'], 0)).toEqual({ kind: 'reboot' });
    expect(parsePowerCall('reboot', [], 0)).toEqual({ kind: 'reboot' });
  });
});

describe('RunInstances with a ClientToken', () => {
  async function instanceCount(region = REGION): Promise<number> {
    const response = await harness().ec2In(region).send(new DescribeInstancesCommand({}));
    return (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []).length;
  }

  test('repeated with the same token and parameters answers the first launch; other parameters answer IdempotentParameterMismatch', async () => {
    const ami = (await harness().ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0]?.ImageId;
    const input = { ImageId: ami, MinCount: 1, MaxCount: 1, ClientToken: 'launch-1' };
    const before = await instanceCount();

    const first = await harness().ec2ViaProxy.send(new RunInstancesCommand(input));
    const again = await harness().ec2ViaProxy.send(new RunInstancesCommand(input));

    expect(again.ReservationId).toBe(first.ReservationId);
    expect(again.Instances?.map((launched) => launched.InstanceId)).toEqual(first.Instances?.map((launched) => launched.InstanceId));
    expect(await instanceCount()).toBe(before + 1);
    await expect(harness().ec2ViaProxy.send(new RunInstancesCommand({ ...input, InstanceType: 't3.large' })))
      .rejects.toMatchObject({ name: 'IdempotentParameterMismatch' });
    expect(await instanceCount()).toBe(before + 1);

    // Tokens are per region.
    const westAmi = (await harness().ec2In(WEST).send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0]?.ImageId;
    const west = await westViaProxy.send(new RunInstancesCommand({ ...input, ImageId: westAmi }));
    expect(west.ReservationId).not.toBe(first.ReservationId);
  });

  test('a validation launch repeated with its token runs the script once', async () => {
    const imageId = await sourceImage('proxy-token-validated');
    const input = { ImageId: imageId, MinCount: 1, MaxCount: 1, UserData: script('sleep 60'), ClientToken: 'validation-1' };
    const first = await harness().ec2ViaProxy.send(new RunInstancesCommand(input));
    const again = await harness().ec2ViaProxy.send(new RunInstancesCommand(input));

    expect(again.Instances?.[0]?.InstanceId).toBe(first.Instances?.[0]?.InstanceId);
    expect(harness().proxy.validationInstances().map((launched) => launched.instanceId)).toEqual([first.Instances?.[0]?.InstanceId]);
  });
});

describe('EC2\'s eventual consistency', () => {
  afterEach(() => {
    harness().proxy.setConsistency({});
  });

  test('off by default: a new image and a new instance are visible at once', async () => {
    const imageId = await sourceImage('proxy-consistent');
    const images = await harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    expect(images.Images?.map((image) => image.ImageId)).toEqual([imageId]);
    const { instanceId } = await launch(Buffer.from('#!/bin/bash\n').toString('base64'));
    const described = await harness().ec2ViaProxy.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    expect(described.Reservations?.[0]?.Instances?.[0]?.State?.Name).toBe('running');
  });

  test('a new image is left out of the first N DescribeImages that would include it: NotFound by id alone, missing among others and by name', async () => {
    harness().proxy.setConsistency({ newImageHiddenFor: 3 });
    const imageId = await sourceImage('proxy-hidden');
    const amazon = (await harness().ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0]?.ImageId ?? '';
    const ids = async (input: DescribeImagesCommandInput) =>
      (await harness().ec2ViaProxy.send(new DescribeImagesCommand(input))).Images?.map((image) => image.ImageId);

    await expect(harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [imageId] })))
      .rejects.toMatchObject({ name: 'InvalidAMIID.NotFound', message: `The image id '[${imageId}]' does not exist` });
    // Requests that would not include it use up nothing.
    expect(await ids({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['another-name'] }] })).toEqual([]);
    expect(await ids({ ImageIds: [imageId, amazon] })).toEqual([amazon]);
    expect(await ids({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['proxy-hidden'] }] })).toEqual([]);
    expect(await ids({ ImageIds: [imageId] })).toEqual([imageId]);
    // moto itself has it all along.
    expect((await harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images).toHaveLength(1);
  });

  test('a copy is hidden in its own region only', async () => {
    harness().proxy.setConsistency({ newImageHiddenFor: 1 });
    const sourceId = await harness().ec2.send(new CreateImageCommand({ InstanceId: await harness().launchBuilder(), Name: 'proxy-copy-source' }));
    const copy = await westViaProxy.send(copyOf(sourceId.ImageId ?? '', 'proxy-hidden-copy'));

    expect((await harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [sourceId.ImageId ?? ''] }))).Images).toHaveLength(1);
    await expect(westViaProxy.send(new DescribeImagesCommand({ ImageIds: [copy.ImageId ?? ''] }))).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
    expect((await westViaProxy.send(new DescribeImagesCommand({ ImageIds: [copy.ImageId ?? ''] }))).Images).toHaveLength(1);
  });

  test('the snapshots of a just-deregistered image are in use for their first N DeleteSnapshot calls', async () => {
    const imageId = await sourceImage('proxy-deregistered');
    const snapshotId = snapshotOf(await imageIn(REGION, imageId));
    harness().proxy.setConsistency({ deregisteredSnapshotsInUseFor: 2 });

    await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId }));

    for (let i = 0; i < 2; i++) {
      await expect(harness().ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })))
        .rejects.toMatchObject({ name: 'InvalidSnapshot.InUse', message: `The snapshot ${snapshotId} is currently in use by ${imageId}` });
    }
    expect(await snapshotsIn(REGION, snapshotId)).toHaveLength(1);
    await harness().ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    expect(await snapshotsIn(REGION, snapshotId)).toEqual([]);
  });

  test('new settings cut the windows already open: setConsistency({}) makes everything visible and free at once', async () => {
    harness().proxy.setConsistency({ newImageHiddenFor: 1000, deregisteredSnapshotsInUseFor: 1000 });
    const hidden = await sourceImage('proxy-cut-hidden');
    const deregistered = await sourceImage('proxy-cut-deregistered');
    const snapshotId = snapshotOf(await imageIn(REGION, deregistered));
    await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: deregistered }));
    await expect(harness().ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }))).rejects.toMatchObject({ name: 'InvalidSnapshot.InUse' });

    harness().proxy.setConsistency({ newImageHiddenFor: 1 });
    await expect(harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [hidden] }))).rejects.toMatchObject({ name: 'InvalidAMIID.NotFound' });
    expect((await harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [hidden] }))).Images).toHaveLength(1);

    harness().proxy.setConsistency({});
    await harness().ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    expect(await snapshotsIn(REGION, snapshotId)).toEqual([]);
  });

  test('DeregisterImage with DeleteAssociatedSnapshots in that window leaves the snapshots and says so (client-error)', async () => {
    const imageId = await sourceImage('proxy-deregistered-with-snapshots');
    const snapshotId = snapshotOf(await imageIn(REGION, imageId));
    harness().proxy.setConsistency({ deregisteredSnapshotsInUseFor: 1 });

    const answer = await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId, DeleteAssociatedSnapshots: true }));

    expect(answer.DeleteSnapshotResults).toEqual([{ SnapshotId: snapshotId, ReturnCode: 'client-error' }]);
    expect(await snapshotsIn(REGION, snapshotId)).toHaveLength(1);
    expect((await harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images).toEqual([]);
  });

  test('a just-launched instance is left out of the first N DescribeInstances that would include it', async () => {
    harness().proxy.setConsistency({ newInstanceHiddenFor: 2 });
    const ami = (await harness().ec2.send(new DescribeImagesCommand({ Owners: ['amazon'] }))).Images?.[0]?.ImageId;
    const launched = await harness().ec2ViaProxy.send(new RunInstancesCommand({
      ImageId: ami, MinCount: 1, MaxCount: 1, TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'role', Value: 'hidden' }] }],
    }));
    const instanceId = launched.Instances?.[0]?.InstanceId ?? '';
    const byTag = async () => (await harness().ec2ViaProxy.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:role', Values: ['hidden'] }] })))
      .Reservations?.flatMap((reservation) => reservation.Instances ?? []).map((found) => found.InstanceId);

    await expect(harness().ec2ViaProxy.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] })))
      .rejects.toMatchObject({ name: 'InvalidInstanceID.NotFound', message: `The instance ID '${instanceId}' does not exist` });
    expect(await byTag()).toEqual([]);
    expect(await byTag()).toEqual([instanceId]);
  });

  test('a validation instance reports pending to its first N DescribeInstances, and the instance-state-name filter sees that state', async () => {
    harness().proxy.setConsistency({ newInstancePendingFor: 2 });
    const imageId = await sourceImage('proxy-pending');
    const launched = await harness().ec2ViaProxy.send(new RunInstancesCommand({ ImageId: imageId, MinCount: 1, MaxCount: 1, UserData: script('sleep 60') }));
    const instanceId = launched.Instances?.[0]?.InstanceId ?? '';
    expect(launched.Instances?.[0]?.State).toEqual({ Code: 0, Name: 'pending' });
    const states = async (...values: string[]) => {
      const response = await harness().ec2ViaProxy.send(new DescribeInstancesCommand({
        Filters: [{ Name: 'image-id', Values: [imageId] }, ...(values.length > 0 ? [{ Name: 'instance-state-name', Values: values }] : [])],
      }));
      return (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []).map((found) => `${found.InstanceId} ${found.State?.Name}`);
    };

    // A handler that forgets `pending` in its filter does not find the instance.
    expect(await states('running', 'stopping', 'stopped')).toEqual([]);
    expect(await states('pending', 'running')).toEqual([`${instanceId} pending`]);
    expect(await states('running')).toEqual([`${instanceId} running`]);
    expect(await states()).toEqual([`${instanceId} running`]);
    // moto was asked without the filter, and the instance ran all along.
    expect((await motoInstance(instanceId))?.State?.Name).toBe('running');
  });
});

describe('the image lifecycle as DescribeImages shows it', () => {
  const describe1 = async (imageId: string): Promise<Image | undefined> =>
    (await harness().ec2ViaProxy.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images?.[0];

  test('deprecationTime (to the minute) and deregistrationProtection appear as EC2 shows them; a protected image is not deregistered', async () => {
    const imageId = await sourceImage('proxy-lifecycle-shown');
    expect(await describe1(imageId)).toMatchObject({ DeregistrationProtection: 'disabled' });
    expect((await describe1(imageId))?.DeprecationTime).toBeUndefined();

    await harness().ec2ViaProxy.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: new Date('2027-06-01T10:20:29.000Z') }));
    const enabled = await harness().ec2ViaProxy.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId }));

    expect(enabled.Return).toBe('enabled-without-cooldown');
    expect(await describe1(imageId)).toMatchObject({ DeprecationTime: '2027-06-01T10:20:00.000Z', DeregistrationProtection: 'enabled-without-cooldown' });
    // By name too: the handler finds its images by name.
    const byName = await harness().ec2ViaProxy.send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: ['proxy-lifecycle-shown'] }] }));
    expect(byName.Images?.[0]?.DeregistrationProtection).toBe('enabled-without-cooldown');
    await expect(harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });

    const disabled = await harness().ec2ViaProxy.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    await harness().ec2ViaProxy.send(new DisableImageDeprecationCommand({ ImageId: imageId }));

    expect(disabled.Return).toBe('disabled');
    expect(await describe1(imageId)).toMatchObject({ DeregistrationProtection: 'disabled' });
    expect((await describe1(imageId))?.DeprecationTime).toBeUndefined();
    await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId }));
    expect((await harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images).toEqual([]);
  });

  test('protection with cooldown keeps the image undeletable for 24 hours after it is disabled', async () => {
    const imageId = await sourceImage('proxy-cooldown');
    const enabled = await harness().ec2ViaProxy.send(new EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: true }));
    expect(enabled.Return).toBe('enabled-with-cooldown');
    expect(await describe1(imageId)).toMatchObject({ DeregistrationProtection: 'enabled-with-cooldown' });

    const disabledAt = harness().proxy.now();
    const disabled = await harness().ec2ViaProxy.send(new DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));

    const shown = (await describe1(imageId))?.DeregistrationProtection ?? '';
    expect(disabled.Return).toBe(shown);
    const answeredAt = harness().proxy.now();
    const until24h = Date.parse(/^disabled-until-(.+)$/.exec(shown)?.[1] ?? '');
    expect(until24h - disabledAt).toBeGreaterThan(24 * 3600_000 - 2000);
    expect(until24h - answeredAt).toBeLessThanOrEqual(24 * 3600_000);
    expect(harness().proxy.imageLifecycle(imageId)).toEqual({ deregistrationProtection: shown });
    await expect(harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });

    await harness().proxy.advanceClock(24 * 3600_000 - 60_000);
    await expect(harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId }))).rejects.toMatchObject({ name: 'InvalidParameterValue' });

    await harness().proxy.advanceClock(61_000);
    expect(await describe1(imageId)).toMatchObject({ DeregistrationProtection: 'disabled' });
    await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId }));
    expect((await harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images).toEqual([]);
  });

  test('DeregisterImage with DeleteAssociatedSnapshots answers success per snapshot, and skipped for one another image still uses', async () => {
    const first = await sourceImage('proxy-results-first');
    const firstSnapshot = snapshotOf(await imageIn(REGION, first));
    const second = await sourceImage('proxy-results-second');
    const sharedSnapshot = snapshotOf(await imageIn(REGION, second));
    await harness().ec2ViaProxy.send(new RegisterImageCommand({
      Name: 'proxy-results-registered',
      RootDeviceName: '/dev/xvda',
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: sharedSnapshot } }],
    }));

    const deleted = await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: first, DeleteAssociatedSnapshots: true }));
    const skipped = await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: second, DeleteAssociatedSnapshots: true }));

    expect(deleted.DeleteSnapshotResults).toEqual([{ SnapshotId: firstSnapshot, ReturnCode: 'success' }]);
    expect(await snapshotsIn(REGION, firstSnapshot)).toEqual([]);
    expect(skipped.DeleteSnapshotResults).toEqual([{ SnapshotId: sharedSnapshot, ReturnCode: 'skipped' }]);
    expect(await snapshotsIn(REGION, sharedSnapshot)).toHaveLength(1);
  });
});

describe('fast snapshot restore', () => {
  const A = 'us-east-1a';
  const B = 'us-east-1b';
  const MISSING_SNAPSHOT = 'snap-0123456789abcdef0';

  /** A snapshot of this account in us-east-1: the one of an image baked through the proxy. */
  async function snapshotNamed(name: string): Promise<{ imageId: string; snapshotId: string }> {
    const imageId = await sourceImage(name);
    return { imageId, snapshotId: snapshotOf(await imageIn(REGION, imageId)) };
  }

  const enable = (snapshotIds: string[], zones: string[], client = harness().ec2ViaProxy) =>
    client.send(new EnableFastSnapshotRestoresCommand({ SourceSnapshotIds: snapshotIds, AvailabilityZones: zones }));
  const disable = (snapshotIds: string[], zones: string[]) =>
    harness().ec2ViaProxy.send(new DisableFastSnapshotRestoresCommand({ SourceSnapshotIds: snapshotIds, AvailabilityZones: zones }));
  const describeRestores = async (filters: Record<string, string[]> = {}, client = harness().ec2ViaProxy) =>
    (await client.send(new DescribeFastSnapshotRestoresCommand({
      Filters: Object.entries(filters).map(([Name, Values]) => ({ Name, Values })),
    }))).FastSnapshotRestores ?? [];
  /** `snapshot zone state` of each pair shown, in the order shown. */
  const shown = (items: DescribeFastSnapshotRestoreSuccessItem[]) => items.map((item) => `${item.SnapshotId} ${item.AvailabilityZone} ${item.State}`);

  test('moto\'s us-east-1 has the zones these tests enable in', async () => {
    const zones = await harness().ec2.send(new DescribeAvailabilityZonesCommand({}));
    expect(zones.AvailabilityZones?.map((zone) => zone.ZoneName)).toEqual(expect.arrayContaining([A, B]));
    expect(zones.AvailabilityZones?.map((zone) => zone.ZoneName)).not.toContain('us-west-2a');
  });

  test('enable in two zones answers enabling; each Describe that shows a pair moves it on: enabling, optimizing, enabled', async () => {
    const { snapshotId } = await snapshotNamed('proxy-fsr-enable');

    const enabled = await enable([snapshotId], [A, B]);

    expect(enabled.Unsuccessful).toEqual([]);
    expect(enabled.Successful).toEqual([A, B].map((zone) => ({
      SnapshotId: snapshotId,
      AvailabilityZone: zone,
      AvailabilityZoneId: zone === A ? 'use1-az6' : 'use1-az1',
      State: 'enabling',
      StateTransitionReason: 'Client.UserInitiated',
      OwnerId: MOTO_ACCOUNT_ID,
      EnablingTime: expect.any(Date),
    })));
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'enabling', [B]: 'enabling' });

    expect(shown(await describeRestores())).toEqual([`${snapshotId} ${A} enabling`, `${snapshotId} ${B} enabling`]);
    expect(shown(await describeRestores())).toEqual([`${snapshotId} ${A} optimizing`, `${snapshotId} ${B} optimizing`]);
    const done = await describeRestores();
    expect(shown(done)).toEqual([`${snapshotId} ${A} enabled`, `${snapshotId} ${B} enabled`]);
    expect(shown(await describeRestores())).toEqual([`${snapshotId} ${A} enabled`, `${snapshotId} ${B} enabled`]);
    expect(done[0]).toEqual({
      SnapshotId: snapshotId,
      AvailabilityZone: A,
      AvailabilityZoneId: 'use1-az6',
      State: 'enabled',
      StateTransitionReason: 'Client.UserInitiated - Lifecycle state transition',
      OwnerId: MOTO_ACCOUNT_ID,
      EnablingTime: expect.any(Date),
      OptimizingTime: expect.any(Date),
      EnabledTime: expect.any(Date),
    });
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'enabled', [B]: 'enabled' });

    // Enabling again changes nothing: listed as successful with the current state (an assumption).
    const again = await enable([snapshotId], [A]);
    expect(again.Successful?.map((item) => item.State)).toEqual(['enabled']);
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'enabled', [B]: 'enabled' });
  });

  test('Describe filters by snapshot-id, availability-zone, availability-zone-id, owner-id and state, and moves on only what it shows', async () => {
    const first = (await snapshotNamed('proxy-fsr-filter-first')).snapshotId;
    const second = (await snapshotNamed('proxy-fsr-filter-second')).snapshotId;
    await enable([first], [A, B]);
    await enable([second], [A]);

    expect(shown(await describeRestores({ 'snapshot-id': [second] }))).toEqual([`${second} ${A} enabling`]);
    // Only the pair shown moved on.
    expect(shown(await describeRestores({ state: ['optimizing'] }))).toEqual([`${second} ${A} optimizing`]);
    expect(shown(await describeRestores({ 'availability-zone': [B] }))).toEqual([`${first} ${B} enabling`]);
    expect(shown(await describeRestores({ 'availability-zone-id': ['use1-az6'], 'snapshot-id': [first] }))).toEqual([`${first} ${A} enabling`]);
    expect(shown(await describeRestores({ 'owner-id': ['999999999999'] }))).toEqual([]);
    expect(shown(await describeRestores({ 'owner-id': [MOTO_ACCOUNT_ID] }))).toEqual([
      `${first} ${A} optimizing`,
      `${first} ${B} optimizing`,
      `${second} ${A} enabled`,
    ]);
    // The pairs are of us-east-1: a Describe signed for us-west-2 sees none of them.
    expect(await describeRestores({}, westViaProxy)).toEqual([]);
    await expect(describeRestores({ 'volume-id': ['vol-1'] })).rejects.toMatchObject({ name: 'InvalidParameterValue' });
  });

  test('Describe pages with MaxResults and NextToken', async () => {
    const { snapshotId } = await snapshotNamed('proxy-fsr-pages');
    await enable([snapshotId], [A, B]);

    const page1 = await harness().ec2ViaProxy.send(new DescribeFastSnapshotRestoresCommand({ MaxResults: 1 }));
    const page2 = await harness().ec2ViaProxy.send(new DescribeFastSnapshotRestoresCommand({ MaxResults: 1, NextToken: page1.NextToken }));

    expect(shown(page1.FastSnapshotRestores ?? [])).toEqual([`${snapshotId} ${A} enabling`]);
    expect(page1.NextToken).toEqual(expect.any(String));
    expect(shown(page2.FastSnapshotRestores ?? [])).toEqual([`${snapshotId} ${B} enabling`]);
    expect(page2.NextToken).toBeUndefined();
  });

  test('an unknown snapshot and a zone of another region come back in Unsuccessful with their codes, beside what succeeded', async () => {
    const { snapshotId } = await snapshotNamed('proxy-fsr-unsuccessful');

    const answer = await enable([snapshotId, MISSING_SNAPSHOT], [A, 'us-west-2a']);

    expect(answer.Successful?.map((item) => `${item.SnapshotId} ${item.AvailabilityZone} ${item.State}`)).toEqual([`${snapshotId} ${A} enabling`]);
    expect(answer.Unsuccessful).toEqual([
      {
        SnapshotId: snapshotId,
        FastSnapshotRestoreStateErrors: [
          { AvailabilityZone: 'us-west-2a', Error: { Code: 'InvalidParameterValue', Message: 'Invalid availability zone: [us-west-2a]' } },
        ],
      },
      {
        SnapshotId: MISSING_SNAPSHOT,
        FastSnapshotRestoreStateErrors: [A, 'us-west-2a'].map((zone) => ({
          AvailabilityZone: zone,
          Error: { Code: 'InvalidSnapshot.NotFound', Message: `The snapshot '${MISSING_SNAPSHOT}' does not exist.` },
        })),
      },
    ]);
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'enabling' });
    expect(harness().proxy.fastSnapshotRestores(MISSING_SNAPSHOT)).toEqual({});

    // The snapshot is in us-east-1: signed for us-west-2, EC2 does not find it.
    const west = await enable([snapshotId], ['us-west-2a'], westViaProxy);
    expect(west.Successful).toEqual([]);
    expect(west.Unsuccessful?.[0]?.FastSnapshotRestoreStateErrors?.[0]?.Error?.Code).toBe('InvalidSnapshot.NotFound');
  });

  test('zones can be named by id instead (not both); DryRun answers DryRunOperation and changes nothing', async () => {
    const { snapshotId } = await snapshotNamed('proxy-fsr-zone-ids');

    const byId = await harness().ec2ViaProxy.send(new EnableFastSnapshotRestoresCommand({
      SourceSnapshotIds: [snapshotId],
      AvailabilityZoneIds: ['use1-az1', 'usw2-az1'],
    }));

    expect(byId.Successful?.map((item) => `${item.AvailabilityZone} ${item.AvailabilityZoneId} ${item.State}`)).toEqual([`${B} use1-az1 enabling`]);
    expect(byId.Unsuccessful?.[0]?.FastSnapshotRestoreStateErrors).toEqual([
      { AvailabilityZoneId: 'usw2-az1', Error: { Code: 'InvalidParameterValue', Message: 'Invalid availability zone id: [usw2-az1]' } },
    ]);
    await expect(harness().ec2ViaProxy.send(new EnableFastSnapshotRestoresCommand({
      SourceSnapshotIds: [snapshotId],
      AvailabilityZones: [A],
      AvailabilityZoneIds: ['use1-az6'],
    }))).rejects.toMatchObject({ name: 'InvalidParameterCombination' });
    const dryRun = new EnableFastSnapshotRestoresCommand({ SourceSnapshotIds: [snapshotId], AvailabilityZones: [A], DryRun: true });
    await expect(harness().ec2ViaProxy.send(dryRun)).rejects.toMatchObject({ name: 'DryRunOperation' });
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [B]: 'enabling' });
  });

  test('disable moves a pair to disabling, then disabled (shown once), then it is gone; disabling a pair that is not enabled is unsuccessful', async () => {
    const { snapshotId } = await snapshotNamed('proxy-fsr-disable');
    await enable([snapshotId], [A, B]);
    await describeRestores();
    await describeRestores();
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'enabled', [B]: 'enabled' });

    const disabled = await disable([snapshotId], [A, 'us-east-1c']);

    expect(disabled.Successful).toEqual([expect.objectContaining({
      SnapshotId: snapshotId,
      AvailabilityZone: A,
      State: 'disabling',
      StateTransitionReason: 'Client.UserInitiated',
      EnabledTime: expect.any(Date),
      DisablingTime: expect.any(Date),
    })]);
    // us-east-1c was never enabled (the code is an assumption).
    expect(disabled.Unsuccessful?.map((item) => item.FastSnapshotRestoreStateErrors?.map((error) => `${error.AvailabilityZone} ${error.Error?.Code}`)))
      .toEqual([['us-east-1c IncorrectState']]);
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'disabling', [B]: 'enabled' });

    expect(shown(await describeRestores({ 'availability-zone': [A] }))).toEqual([`${snapshotId} ${A} disabling`]);
    const last = await describeRestores({ 'availability-zone': [A] });
    expect(shown(last)).toEqual([`${snapshotId} ${A} disabled`]);
    expect(last[0]).toMatchObject({ StateTransitionReason: 'Client.UserInitiated - Lifecycle state transition', DisabledTime: expect.any(Date) });
    expect(await describeRestores({ 'availability-zone': [A] })).toEqual([]);
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [B]: 'enabled' });

    // Once forgotten, it can be enabled again from the start.
    expect((await enable([snapshotId], [A])).Successful?.map((item) => item.State)).toEqual(['enabling']);
  });

  test('DeleteSnapshot disables the snapshot\'s restores in every zone; a refused DeleteSnapshot does not', async () => {
    const { imageId, snapshotId } = await snapshotNamed('proxy-fsr-delete');
    await enable([snapshotId], [A, B]);
    await describeRestores();

    // moto refuses to delete the snapshot of a registered image: nothing changes.
    await expect(harness().ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }))).rejects.toMatchObject({ name: 'InvalidSnapshot.InUse' });
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'optimizing', [B]: 'optimizing' });

    await harness().ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
    await harness().ec2ViaProxy.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));

    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'disabled', [B]: 'disabled' });
    expect(shown(await describeRestores())).toEqual([`${snapshotId} ${A} disabled`, `${snapshotId} ${B} disabled`]);
    expect(await describeRestores()).toEqual([]);
    // The snapshot is gone: enabling it again is unsuccessful.
    expect((await enable([snapshotId], [A])).Unsuccessful?.[0]?.FastSnapshotRestoreStateErrors?.[0]?.Error?.Code).toBe('InvalidSnapshot.NotFound');
  });

  test('DeregisterImage with DeleteAssociatedSnapshots disables the restores of the snapshots it deletes', async () => {
    const { imageId, snapshotId } = await snapshotNamed('proxy-fsr-deregister');
    const kept = (await snapshotNamed('proxy-fsr-deregister-kept')).snapshotId;
    await enable([snapshotId, kept], [A]);

    await harness().ec2ViaProxy.send(new DeregisterImageCommand({ ImageId: imageId, DeleteAssociatedSnapshots: true }));

    expect(await snapshotsIn(REGION, snapshotId)).toEqual([]);
    expect(harness().proxy.fastSnapshotRestores(snapshotId)).toEqual({ [A]: 'disabled' });
    expect(harness().proxy.fastSnapshotRestores(kept)).toEqual({ [A]: 'enabling' });
  });
});

describe('an authorizer decides every request', () => {
  afterEach(() => {
    harness().proxy.setAuthorizer(undefined);
  });

  /** An authorizer that denies these Actions and records what it was asked. */
  function denying(...actions: string[]): { asked: AuthorizationRequest[]; authorizer: Authorizer } {
    const asked: AuthorizationRequest[] = [];
    return {
      asked,
      authorizer: async (request) => {
        asked.push(request);
        return actions.includes(request.action)
          ? { allowed: false, denials: [`${request.service}:${request.action} in ${request.region}: no statement allows it`] }
          : { allowed: true, denials: [] };
      },
    };
  }

  /** A JSON-protocol request as an SDK sends it (SigV4-shaped Authorization, X-Amz-Target, JSON body), to the proxy. */
  function jsonRequest(target: string, body: unknown, region = REGION): Promise<{ status: number; json: Record<string, unknown> }> {
    const url = new URL(harness().proxy.endpoint);
    const data = Buffer.from(JSON.stringify(body), 'utf8');
    return new Promise((resolve, reject) => {
      const request = http.request({
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: '/',
        headers: {
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': target,
          'content-length': data.length,
          'authorization': `AWS4-HMAC-SHA256 Credential=testing/20260101/${region}/ssm/aws4_request, SignedHeaders=host;x-amz-target, Signature=0`,
        },
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') }));
        response.on('error', reject);
      });
      request.on('error', reject);
      request.end(data);
    });
  }

  test('a denied EC2 request answers UnauthorizedOperation (HTTP 403), never reaches moto, and its denials are kept', async () => {
    const instanceId = await harness().launchBuilder();
    const { asked, authorizer } = denying('CreateTags');
    harness().proxy.setAuthorizer(authorizer);

    const denied = harness().ec2ViaProxy.send(new CreateTagsCommand({ Resources: [instanceId], Tags: [{ Key: 'k', Value: 'v' }] }));

    await expect(denied).rejects.toMatchObject({
      name: 'UnauthorizedOperation',
      message: expect.stringContaining('ec2:CreateTags in us-east-1: no statement allows it'),
      $metadata: expect.objectContaining({ httpStatusCode: 403 }),
    });
    expect((await motoInstance(instanceId))?.Tags?.map((tag) => tag.Key)).toEqual(['cdk-baked-image:stack-id']);
    expect(asked.map((request) => [request.service, request.action, request.region, request.params.get('ResourceId.1')]))
      .toEqual([['ec2', 'CreateTags', REGION, instanceId]]);
    const [record] = harness().proxy.requests;
    expect(record).toMatchObject({ service: 'ec2', action: 'CreateTags', status: 403, errorCode: 'UnauthorizedOperation' });
    expect(record.denials).toEqual(['ec2:CreateTags in us-east-1: no statement allows it']);
    expect(harness().proxy.takeDenials()).toEqual(['ec2:CreateTags in us-east-1: no statement allows it']);
    expect(harness().proxy.takeDenials()).toEqual([]);
  });

  test('the authorizer is asked before injected faults: a denied request uses up no fault', async () => {
    harness().proxy.setAuthorizer(denying('DescribeImages').authorizer);
    harness().proxy.failNext('DescribeImages', 1, { status: 503, code: 'RequestLimitExceeded', message: 'slow down' });

    await expect(harness().ec2ViaProxy.send(new DescribeImagesCommand({ Owners: ['self'] }))).rejects.toMatchObject({ name: 'UnauthorizedOperation' });

    expect(harness().proxy.unusedFaults()).toEqual({ DescribeImages: 1 });
    harness().proxy.clearFaults();
    expect(harness().proxy.takeDenials()).toHaveLength(1);
  });

  test('CloudFormation is decided by its service and answered AccessDenied (HTTP 403) when denied', async () => {
    const cloudFormation = new CloudFormationClient({
      region: WEST,
      endpoint: harness().proxy.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    });
    try {
      harness().proxy.setStack({ name: 'Stack', id: 'arn:aws:cloudformation:us-west-2:123456789012:stack/Stack/1', status: 'UPDATE_IN_PROGRESS', resources: {} });
      const { asked, authorizer } = denying();
      harness().proxy.setAuthorizer(authorizer);
      const allowed = await cloudFormation.send(new DescribeStacksCommand({ StackName: 'Stack' }));
      expect(allowed.Stacks?.[0]?.StackStatus).toBe('UPDATE_IN_PROGRESS');
      expect(asked.map((request) => [request.service, request.action, request.region])).toEqual([['cloudformation', 'DescribeStacks', WEST]]);

      harness().proxy.setAuthorizer(denying('DescribeStacks').authorizer);
      await expect(cloudFormation.send(new DescribeStacksCommand({ StackName: 'Stack' }))).rejects.toMatchObject({
        name: 'AccessDenied',
        $metadata: expect.objectContaining({ httpStatusCode: 403 }),
      });
      expect(harness().proxy.takeDenials()).toEqual(['cloudformation:DescribeStacks in us-west-2: no statement allows it']);
    } finally {
      cloudFormation.destroy();
    }
  });

  test('JSON-protocol requests (SSM) are recorded by X-Amz-Target, forwarded to moto, and denied with AccessDeniedException (HTTP 400)', async () => {
    const { asked, authorizer } = denying('GetParameter');
    harness().proxy.setAuthorizer(authorizer);

    const put = await jsonRequest('AmazonSSM.PutParameter', { Name: '/baked/image', Value: 'ami-1', Type: 'String' }, WEST);
    expect(put).toMatchObject({ status: 200, json: { Version: 1 } });
    const denied = await jsonRequest('AmazonSSM.GetParameter', { Name: '/baked/image' }, WEST);

    expect(denied.status).toBe(400);
    expect(denied.json).toMatchObject({ __type: 'AccessDeniedException', message: expect.stringContaining('ssm:GetParameter in us-west-2') });
    expect(asked.map((request) => [request.service, request.action, request.region, request.json])).toEqual([
      ['ssm', 'PutParameter', WEST, { Name: '/baked/image', Value: 'ami-1', Type: 'String' }],
      ['ssm', 'GetParameter', WEST, { Name: '/baked/image' }],
    ]);
    expect(harness().proxy.requests.map((request) => [request.service, request.action, request.status, request.errorCode])).toEqual([
      ['ssm', 'PutParameter', 200, undefined],
      ['ssm', 'GetParameter', 400, 'AccessDeniedException'],
    ]);
    harness().proxy.setAuthorizer(undefined);
    // moto has the parameter, in the region of the signature only.
    expect(await jsonRequest('AmazonSSM.GetParameter', { Name: '/baked/image' }, WEST)).toMatchObject({ status: 200, json: { Parameter: { Value: 'ami-1' } } });
    expect(await jsonRequest('AmazonSSM.GetParameter', { Name: '/baked/image' }, REGION)).toMatchObject({ status: 400, json: { __type: 'ParameterNotFound' } });
    expect(harness().proxy.takeDenials()).toHaveLength(1);
  });

  test('the proxy\'s own side calls are never authorized', async () => {
    const instanceId = await harness().launchBuilder();
    const { asked, authorizer } = denying('DescribeImages', 'CreateTags', 'DescribeSnapshots');
    harness().proxy.setAuthorizer(authorizer);

    // CreateImage's duplicate-name check (DescribeImages) and snapshot tagging (CreateTags) go straight to moto.
    const created = await harness().ec2ViaProxy.send(new CreateImageCommand({
      InstanceId: instanceId,
      Name: 'proxy-authorized-create',
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'kind', Value: 'snap' }] }],
    }));

    expect(asked.map((request) => request.action)).toEqual(['CreateImage']);
    const snapshotId = snapshotOf(await imageIn(REGION, created.ImageId ?? ''));
    expect(tagMap((await snapshotsIn(REGION, snapshotId))[0]?.Tags)).toEqual({ kind: 'snap' });
    expect(harness().proxy.takeDenials()).toEqual([]);
  });

  test('lookup describes resources from moto (tags, owner, snapshots, condition values), uncounted and unauthorized', async () => {
    const instanceId = await harness().launchBuilder();
    const imageId = (await harness().ec2.send(new CreateImageCommand({ InstanceId: instanceId, Name: 'proxy-lookup' }))).ImageId ?? '';
    const snapshotId = snapshotOf(await imageIn(REGION, imageId));
    const launched = await motoInstance(instanceId);
    const volumeId = launched?.BlockDeviceMappings?.[0]?.Ebs?.VolumeId ?? '';
    const networkInterfaceId = launched?.NetworkInterfaces?.[0]?.NetworkInterfaceId ?? '';
    const subnet = (await harness().ec2.send(new DescribeSubnetsCommand({}))).Subnets?.[0];
    const subnetId = subnet?.SubnetId ?? '';
    const groupId = (await harness().ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups?.[0]?.GroupId ?? '';
    await harness().ec2.send(new CreateTagsCommand({
      Resources: [imageId, snapshotId, instanceId, volumeId, subnetId, groupId, networkInterfaceId],
      Tags: [{ Key: 'team', Value: 'a' }],
    }));
    harness().proxy.setAuthorizer(async () => ({ allowed: false, denials: ['nothing is allowed'] }));
    harness().proxy.clearRequests();
    const lookup = harness().proxy.lookup;

    for (const [type, id] of [['snapshot', snapshotId], ['subnet', subnetId], ['security-group', groupId], ['network-interface', networkInterfaceId]] as const) {
      expect([type, await lookup.describe(REGION, type, id)]).toEqual([type, expect.objectContaining({ tags: { team: 'a' }, owner: MOTO_ACCOUNT_ID })]);
    }
    expect(await lookup.describe(REGION, 'image', imageId)).toEqual({
      tags: { team: 'a' },
      owner: MOTO_ACCOUNT_ID,
      snapshotIds: [snapshotId],
      conditionValues: expect.objectContaining({ 'ec2:Public': 'false', 'ec2:ImageType': 'machine' }),
    });
    expect(await lookup.describe(REGION, 'instance', instanceId)).toEqual({
      // launchBuilder tags a builder with the stack id, as the construct does.
      tags: { 'team': 'a', 'cdk-baked-image:stack-id': MOTO_STACK_ID },
      owner: MOTO_ACCOUNT_ID,
      conditionValues: expect.objectContaining({
        'ec2:InstanceType': launched?.InstanceType,
        'ec2:Vpc': `arn:aws:ec2:${REGION}:${MOTO_ACCOUNT_ID}:vpc/${launched?.VpcId}`,
      }),
    });
    expect(await lookup.describe(REGION, 'subnet', subnetId)).toMatchObject({
      conditionValues: { 'ec2:Vpc': `arn:aws:ec2:${REGION}:${MOTO_ACCOUNT_ID}:vpc/${subnet?.VpcId}`, 'ec2:AvailabilityZone': subnet?.AvailabilityZone },
    });
    expect(await lookup.describe(REGION, 'volume', volumeId)).toEqual({ tags: { team: 'a' }, conditionValues: expect.objectContaining({ 'ec2:Encrypted': 'false' }) });
    expect(await lookup.describe(WEST, 'image', imageId)).toBeUndefined();
    expect(await lookup.describe(REGION, 'instance', 'i-0123456789abcdef0')).toBeUndefined();
    expect(await lookup.describe(REGION, 'snapshot', 'snap-0123456789abcdef0')).toBeUndefined();
    await expect(lookup.describe(REGION, 'bucket', 'b')).rejects.toThrow('no lookup for resource type bucket');
    expect(harness().proxy.requests).toEqual([]);
    expect(harness().proxy.takeDenials()).toEqual([]);
  });

  test('lookup describes an SSM parameter by name in its region, with its tags', async () => {
    await jsonRequest('AmazonSSM.PutParameter', { Name: '/baked/looked-up', Value: 'ami-1', Type: 'String', Tags: [{ Key: 'team', Value: 'b' }] }, WEST);
    harness().proxy.clearRequests();

    expect(await harness().proxy.lookup.describe(WEST, 'parameter', '/baked/looked-up')).toEqual({ tags: { team: 'b' }, owner: MOTO_ACCOUNT_ID });
    expect(await harness().proxy.lookup.describe(REGION, 'parameter', '/baked/looked-up')).toBeUndefined();
    expect(harness().proxy.requests).toEqual([]);
  });
});

describe('the leak check', () => {
  test('leftovers lists this account\'s registered images, snapshots and live instances per region, and none of moto\'s own', async () => {
    expect(await harness().leftovers([REGION, WEST])).toEqual({ images: [], snapshots: [], instances: [] });
    const builder = await harness().launchBuilder();
    const imageId = (await harness().ec2ViaProxy.send(new CreateImageCommand({ InstanceId: builder, Name: 'proxy-leftover' }))).ImageId ?? '';
    const copyId = (await westViaProxy.send(copyOf(imageId, 'proxy-leftover'))).ImageId ?? '';
    const snapshotId = snapshotOf(await imageIn(REGION, imageId));
    const copySnapshotId = snapshotOf(await imageIn(WEST, copyId));

    expect(await harness().leftovers([REGION, WEST]))
      .toEqual({ images: [imageId, copyId], snapshots: [snapshotId, copySnapshotId], instances: [builder] });
    expect(await harness().leftovers([WEST])).toEqual({ images: [copyId], snapshots: [copySnapshotId], instances: [] });

    await westViaProxy.send(new DeregisterImageCommand({ ImageId: copyId, DeleteAssociatedSnapshots: true }));
    await harness().ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
    await harness().ec2.send(new TerminateInstancesCommand({ InstanceIds: [builder] }));
    expect(await harness().leftovers([REGION, WEST])).toEqual({ images: [], snapshots: [snapshotId], instances: [] });
  });
});
