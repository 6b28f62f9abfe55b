/**
 * The proxy's own emulations, proven through the proxy against moto_server: region awareness (the region is only
 * in the SigV4 signature), CopyImage (tag specifications, duplicate names, what was asked), holding copies pending
 * by name, and validation instances that run their user data script.
 */
import * as fs from 'fs';
import {
  CopyImageCommand,
  type CopyImageCommandInput,
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  GetConsoleOutputCommand,
  type Image,
  RegisterImageCommand,
  RunInstancesCommand,
  StopInstancesCommand,
  type Tag,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { ec2ClientFor, REGION, VALIDATION_MARKER, type ValidationInstance } from './moto-server';
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

describe('validation instances', () => {
  const script = (...lines: string[]) => Buffer.from(['#!/bin/bash', VALIDATION_MARKER, ...lines, ''].join('\n'), 'utf8').toString('base64');

  async function launch(userData: string): Promise<{ instanceId: string; imageId: string }> {
    const imageId = await sourceImage(`proxy-validated-${Date.now()}`);
    const response = await harness().ec2ViaProxy.send(new RunInstancesCommand({ ImageId: imageId, MinCount: 1, MaxCount: 1, UserData: userData }));
    return { instanceId: response.Instances?.[0]?.InstanceId ?? '', imageId };
  }

  async function consoleOutput(instanceId: string): Promise<string | undefined> {
    const response = await harness().ec2ViaProxy.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
    expect(response.InstanceId).toBe(instanceId);
    return response.Output === undefined ? undefined : Buffer.from(response.Output, 'base64').toString('utf8');
  }

  function instance(instanceId: string): ValidationInstance | undefined {
    return harness().proxy.validationInstances().find((candidate) => candidate.instanceId === instanceId);
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
      shutdownCalls: ['-h +5', '-r now'],
      console: output,
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
