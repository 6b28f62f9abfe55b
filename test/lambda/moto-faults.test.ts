/**
 * The shipped bake-image handler bundle under EC2 and network faults, against moto_server behind the fault-injecting
 * proxy of moto-server.ts:
 * - throttling and 5xx answers on every EC2 and CloudFormation call the handlers make, those of the options included
 *   (IMDSv2-only, sharing, deprecation, deregistration protection, copies to another region, keepSupersededImages), retried with
 *   backoff until the bake or the delete succeeds, and a clear failure once the SDK gives up;
 * - answers lost after EC2 carried a request out (the SDK retries a request that already took effect);
 * - an image that goes `failed`, and one that stays `pending` past bakeTimeout, then the Delete that follows.
 *
 * The fault-free lifecycle, a Create retried by the framework, concurrent Creates, rollbacks and the Delete edge
 * cases (image already deregistered, snapshot in use, repeated Delete) are in moto-lifecycle.test.ts.
 *
 * Retry backoff: the handler's EC2 clients (one per region) and its CloudFormation client keep the SDK's standard
 * retry strategy with maxAttempts 6. Before retry
 * n (1, 2, ...) it waits random() * min(base * 2^(n-1), 20 s), where base is 1 s for throttling and 50 ms for other
 * retryable errors in the SDK installed here (earlier releases: 500 ms and 100 ms; the Lambda runtime's SDK may be
 * either). These tests pin the jitter (Math.random) so that the waits are short and known, then measure them at
 * the proxy: a client without retries fails the attempt counts, one without backoff fails the timing checks.
 */
import { DescribeImageAttributeCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, type Image } from '@aws-sdk/client-ec2';
import {
  type BakeImageHandler,
  describeImagesById,
  describeImagesByName,
  EC2_FAULTS,
  type Ec2Fault,
  type LostResponse,
  type MotoHarness,
  type ProxiedRequest,
  type RequestMatcher,
  REGION,
} from './moto-server';
import { customResourceEvent, imageProps, useMotoSuite } from './moto-suite';
import type { IsCompleteRequest, OnEventRequest, OnEventResponse } from '../../lambda/bake-image/types';
import { imageName, decodeProperties, Attr, copyImageIdAttribute, Prop, Tag } from '../../src/private/contract';

jest.setTimeout(30_000);

/** The handler's EC2Client and CloudFormationClient: `maxAttempts: 6`. */
const MAX_ATTEMPTS = 6;
const STACK_NAME = 'FaultStack';
const STACK_ID = `arn:aws:cloudformation:us-east-1:123456789012:stack/${STACK_NAME}/11111111-2222-3333-4444-555555555555`;
const LOGICAL_ID = 'BakedImageBake';
/** The physical id the provider framework reports for a Create that failed before onEvent returned one. */
const NOT_AN_IMAGE = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';

type Props = Record<string, unknown>;
type Phase = 'create' | 'poll' | 'delete';

/** The region the options copy the image to. */
const COPY_REGION = 'us-west-2';
const SHARE_WITH = '444455556666';
const NINETY_DAYS = 90 * 24 * 3600;

/** What a bake asks for beyond the defaults: some calls are made only for these properties. */
interface BakeOptions {
  readonly builderAfterBake?: 'stop' | 'terminate';
  /** ShareWithAccounts: DescribeImageAttribute and ModifyImageAttribute once the image is available. */
  readonly shareWithAccounts?: readonly string[];
  /** DeprecateAfterSeconds: EnableImageDeprecation once the image is available. */
  readonly deprecateAfterSeconds?: number;
  /** DeregistrationProtection: enabled once the image is available, disabled by the Delete before it deregisters. */
  readonly deregistrationProtection?: boolean;
  /** CopyToRegions: the copy-regions tag, then DescribeImages by name and CopyImage in each region. */
  readonly copyToRegions?: readonly string[];
  /** KeepSupersededImages: the Delete asks CloudFormation (the proxy's stack, see Bake.delete) why the image goes. */
  readonly keepSupersededImages?: number;
  /** RequireImdsv2: ModifyImageAttribute (ImdsSupport v2.0) once the image is available. */
  readonly requireImdsv2?: boolean;
  /** FastSnapshotRestoreZones: DescribeFastSnapshotRestores, then EnableFastSnapshotRestores once the image is available. */
  readonly fastSnapshotRestoreZones?: readonly string[];
  /** Any other property. */
  readonly props?: Props;
}

const DEFAULTS: BakeOptions = {};
const TERMINATE: BakeOptions = { builderAfterBake: 'terminate' };
const SHARING: BakeOptions = { shareWithAccounts: [SHARE_WITH] };
const DEPRECATION: BakeOptions = { deprecateAfterSeconds: NINETY_DAYS };
const PROTECTION: BakeOptions = { deregistrationProtection: true };
const COPIES: BakeOptions = { copyToRegions: [COPY_REGION] };
const RETENTION: BakeOptions = { keepSupersededImages: 1 };
const IMDS_V2_ONLY: BakeOptions = { requireImdsv2: true };
const FAST_RESTORE: BakeOptions = { fastSnapshotRestoreZones: ['us-east-1a'] };

function optionProps(options: BakeOptions): Props {
  return {
    [Prop.BUILDER_AFTER_BAKE]: options.builderAfterBake ?? 'stop',
    ...(options.shareWithAccounts ? { [Prop.SHARE_ACCOUNTS]: [...options.shareWithAccounts] } : {}),
    ...(options.deprecateAfterSeconds !== undefined ? { [Prop.DEPRECATE_AFTER_SECONDS]: String(options.deprecateAfterSeconds) } : {}),
    ...(options.deregistrationProtection ? { [Prop.DEREGISTRATION_PROTECTION]: 'true' } : {}),
    ...(options.copyToRegions ? { [Prop.COPY_TO_REGIONS]: [...options.copyToRegions] } : {}),
    ...(options.keepSupersededImages !== undefined ? { [Prop.KEEP_SUPERSEDED]: String(options.keepSupersededImages) } : {}),
    ...(options.requireImdsv2 ? { [Prop.REQUIRE_IMDSV2]: 'true' } : {}),
    ...(options.fastSnapshotRestoreZones ? { [Prop.FAST_SNAPSHOT_RESTORE_ZONES]: [...options.fastSnapshotRestoreZones] } : {}),
    ...options.props,
  };
}

const suite = useMotoSuite({ stackId: STACK_ID });
let harness: MotoHarness;
let handler: BakeImageHandler;

beforeAll(() => {
  harness = suite.harness();
  handler = suite.handler();
});

/**
 * Loads a fresh copy of the handler module, whose new EC2Client starts with a full retry quota. The SDK's standard
 * strategy spends quota on every retry (here 5 of 500 units for throttling, 14 for other errors) and gives back only
 * the last retry's cost when a call succeeds: calls that exhaust their attempts would leave later tests fewer retries.
 */
function loadFreshHandler(): void {
  jest.isolateModules(() => {
    handler = harness.loadHandler();
  });
}

/** Pins the SDK's backoff jitter: every wait becomes `fraction` of its upper bound. */
function pinJitter(fraction: number): void {
  jest.spyOn(Math, 'random').mockReturnValue(fraction);
}

// -------------------------------------------------------------------------------------------------------
// Events as the CDK provider framework sends them
// -------------------------------------------------------------------------------------------------------

function bakeProps(instanceId: string, overrides: Props = {}): Props {
  return imageProps(instanceId, 'fault-baked', {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:FaultStack-BakeProviderOnEvent',
    [Prop.DESCRIPTION]: 'Baked by the moto fault test',
    [Prop.NO_REBOOT]: 'false',
    ...overrides,
  });
}

function event(requestType: 'Create' | 'Delete', props: Props, physicalId?: string): OnEventRequest {
  return customResourceEvent(requestType, LOGICAL_ID, props, { physicalId, stackId: STACK_ID });
}

function completeEvent(onEvent: OnEventRequest, response: OnEventResponse): IsCompleteRequest {
  return { ...onEvent, PhysicalResourceId: response.PhysicalResourceId ?? onEvent.PhysicalResourceId ?? '', Data: response.Data };
}

// -------------------------------------------------------------------------------------------------------
// State in moto (asked directly, not through the proxy)
// -------------------------------------------------------------------------------------------------------

async function ownImages(): Promise<Image[]> {
  const response = await harness.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }));
  return response.Images ?? [];
}

async function ownImageIds(): Promise<string[]> {
  return (await ownImages()).map((image) => image.ImageId ?? '').sort();
}

async function snapshotExists(snapshotId: string): Promise<boolean> {
  try {
    const response = await harness.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
    return (response.Snapshots ?? []).some((snapshot) => snapshot.SnapshotId === snapshotId);
  } catch (error) {
    if ((error as { name?: string }).name === 'InvalidSnapshot.NotFound') {
      return false;
    }
    throw error;
  }
}

async function instanceState(instanceId: string): Promise<string | undefined> {
  const response = await harness.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return response.Reservations?.[0]?.Instances?.[0]?.State?.Name;
}

// -------------------------------------------------------------------------------------------------------
// One bake, step by step
// -------------------------------------------------------------------------------------------------------

class Bake {
  static async start(options: BakeOptions = DEFAULTS): Promise<Bake> {
    const builder = await harness.launchBuilder(STACK_ID);
    return new Bake(builder, options, bakeProps(builder, optionProps(options)));
  }

  /** The AMI name the handler derives from the properties. */
  readonly name: string;
  readonly createEvent: OnEventRequest;
  created: OnEventResponse | undefined;
  private snapshot: string | undefined;

  private constructor(readonly builder: string, readonly options: BakeOptions, readonly props: Props) {
    this.name = imageName(decodeProperties(props));
    this.createEvent = event('Create', props);
  }

  get copyRegions(): string[] {
    return [...(this.options.copyToRegions ?? [])];
  }

  get imageId(): string {
    if (!this.created?.PhysicalResourceId) {
      throw new Error('no image yet: create() first');
    }
    return this.created.PhysicalResourceId;
  }

  get snapshotId(): string {
    if (!this.snapshot) {
      throw new Error('no snapshot yet: create() first');
    }
    return this.snapshot;
  }

  /** What the failure message of a call names: the builder and image name, then the image and snapshot once known. */
  get ids(): { builder: string; name: string; imageId: string; snapshotId: string } {
    return { builder: this.builder, name: this.name, imageId: this.created?.PhysicalResourceId ?? '', snapshotId: this.snapshot ?? '' };
  }

  /** onEvent Create: exactly one image, with the derived name. */
  async create(): Promise<void> {
    this.created = await handler.onEvent(this.createEvent);
    expect(this.created.PhysicalResourceId).toMatch(/^ami-[0-9a-f]+$/);
    expect(this.created.Data).toEqual({ [Attr.REQUEST_STARTED_AT]: expect.any(String), [Attr.IMAGE_ID]: this.imageId, [Attr.IMAGE_NAME]: this.name });
    expect(Date.now() - Date.parse(this.created.Data?.[Attr.REQUEST_STARTED_AT] ?? '')).toBeLessThan(60_000);
    const images = await ownImages();
    expect(images.map((image) => [image.ImageId, image.Name])).toEqual([[this.imageId, this.name]]);
    const snapshots = (images[0].BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
    expect(snapshots).toHaveLength(1);
    this.snapshot = snapshots[0];
  }

  /**
   * isComplete until it answers true: once without copies, twice with them (the first starts the copies, the
   * second finds them available). The image and its copies are available, the builder stopped or terminated, and
   * the images shared, deprecated and protected as the options ask.
   */
  async poll(): Promise<void> {
    const request = completeEvent(this.createEvent, this.created ?? {});
    const answers = [await handler.isComplete(request)];
    while (!answers[answers.length - 1].IsComplete && answers.length < 5) {
      answers.push(await handler.isComplete(request));
    }
    expect(answers.map((answer) => answer.IsComplete)).toEqual(this.copyRegions.length > 0 ? [false, true] : [true]);
    const copies = Object.fromEntries(this.copyRegions.map((region) => [copyImageIdAttribute(region), expect.stringMatching(/^ami-[0-9a-f]+$/)]));
    expect(answers[answers.length - 1]).toEqual({
      IsComplete: true,
      Data: { [Attr.IMAGE_ID]: this.imageId, [Attr.IMAGE_NAME]: this.name, ...copies },
    });
    const settled = this.props[Prop.BUILDER_AFTER_BAKE] === 'terminate' ? ['shutting-down', 'terminated'] : ['stopping', 'stopped'];
    expect(settled).toContain(await instanceState(this.builder));

    const [source] = await ownImages();
    const images: Array<[string, string]> = [[REGION, this.imageId]];
    for (const region of this.copyRegions) {
      const copyId = answers[answers.length - 1].Data?.[copyImageIdAttribute(region)] ?? '';
      const copy = (await harness.ec2In(region).send(new DescribeImagesCommand({ ImageIds: [copyId] }))).Images ?? [];
      expect(copy.map((image) => [image.ImageId, image.Name, image.State])).toEqual([[copyId, this.name, 'available']]);
      images.push([region, copyId]);
    }
    for (const [region, imageId] of images) {
      const lifecycle = harness.proxy.imageLifecycle(imageId);
      if (this.options.shareWithAccounts) {
        const permissions = await harness.ec2In(region).send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }));
        expect(permissions.LaunchPermissions).toEqual(this.options.shareWithAccounts.map((UserId) => ({ UserId })));
      }
      if (this.options.deprecateAfterSeconds !== undefined) {
        const expected = Date.parse(source.CreationDate ?? '') + this.options.deprecateAfterSeconds * 1000;
        expect(Math.abs(Date.parse(lifecycle.deprecateAt ?? '') - expected)).toBeLessThanOrEqual(1000);
      }
      expect(lifecycle.protection).toBe(this.options.deregistrationProtection ? 'enabled' : undefined);
      expect(lifecycle.imdsSupport).toBe(this.options.requireImdsv2 ? 'v2.0' : undefined);
    }
    expect(Object.keys(harness.proxy.fastSnapshotRestores(this.snapshotId)).sort()).toEqual([...this.options.fastSnapshotRestoreZones ?? []]);
  }

  /**
   * onEvent Delete, as CloudFormation sends it (also after a failed Create): nothing of the bake is left, in the
   * stack's region nor in a copy region. With keepSupersededImages the handler asks CloudFormation why the image
   * goes: the stack's creation failed elsewhere and rolls back, and the resource's physical id is still this image.
   */
  async delete(): Promise<void> {
    const physicalId = this.created?.PhysicalResourceId ?? NOT_AN_IMAGE;
    if (this.options.keepSupersededImages) {
      harness.proxy.setStack({ name: STACK_NAME, id: STACK_ID, status: 'ROLLBACK_IN_PROGRESS', resources: { [LOGICAL_ID]: physicalId } });
    }
    const deleted = await handler.onEvent(event('Delete', this.props, physicalId));
    expect(deleted).toEqual(physicalId === NOT_AN_IMAGE
      ? { PhysicalResourceId: physicalId }
      : { PhysicalResourceId: physicalId, Data: { [Attr.REQUEST_STARTED_AT]: expect.any(String) } });
    expect(await ownImageIds()).toEqual([]);
    if (this.snapshot) {
      expect(await snapshotExists(this.snapshot)).toBe(false);
    }
    const left = await harness.leftovers([REGION, ...this.copyRegions]);
    expect({ images: left.images, snapshots: left.snapshots }).toEqual({ images: [], snapshots: [] });
  }

  step(phase: Phase): Promise<void> {
    switch (phase) {
      case 'create':
        return this.create();
      case 'poll':
        return this.poll();
      case 'delete':
        return this.delete();
    }
  }
}

const PHASES: readonly Phase[] = ['create', 'poll', 'delete'];

// -------------------------------------------------------------------------------------------------------
// Every EC2 and CloudFormation call the handlers make
// -------------------------------------------------------------------------------------------------------

interface HandlerCall {
  readonly label: string;
  readonly action: string;
  /** The step of the lifecycle that makes the call. */
  readonly phase: Phase;
  readonly matches?: RequestMatcher;
  /** The region the call is signed for: the stack's (REGION) unless said otherwise. */
  readonly region?: string;
  /** The properties of a bake that makes the call (DEFAULTS unless said otherwise). */
  readonly bake?: BakeOptions;
  /** What the failure message names once the SDK gives up on the call (besides the error code and the attempts). */
  readonly names: (ids: Bake['ids']) => string;
}

const CALLS: readonly HandlerCall[] = [
  {
    label: 'DescribeImages by name (Create)',
    action: 'DescribeImages',
    phase: 'create',
    matches: describeImagesByName,
    names: ({ name }) => `DescribeImages for the image named ${name} failed`,
  },
  {
    label: 'CreateImage',
    action: 'CreateImage',
    phase: 'create',
    names: ({ builder, name }) => `CreateImage for builder ${builder} (image name ${name}) failed`,
  },
  {
    label: 'DescribeImages by id (isComplete)',
    action: 'DescribeImages',
    phase: 'poll',
    matches: describeImagesById(),
    names: ({ imageId }) => `DescribeImages for image ${imageId} failed`,
  },
  {
    label: 'StopInstances',
    action: 'StopInstances',
    phase: 'poll',
    names: ({ builder }) => `Could not stop builder ${builder}`,
  },
  {
    label: 'TerminateInstances',
    action: 'TerminateInstances',
    phase: 'poll',
    bake: TERMINATE,
    names: ({ builder }) => `Could not terminate builder ${builder}`,
  },
  {
    label: 'DescribeImages by id (Delete)',
    action: 'DescribeImages',
    phase: 'delete',
    matches: describeImagesById(),
    names: ({ imageId }) => `DescribeImages for image ${imageId} failed`,
  },
  {
    label: 'DescribeImages of the resource (Delete)',
    action: 'DescribeImages',
    phase: 'delete',
    // Superseded images kept by an earlier keepSupersededImages are found by the resource's tags.
    matches: (params) => params.get('Filter.1.Name') === `tag:${Tag.STACK_ID}`,
    names: () => 'DescribeImages for the images of BakedImageBake failed',
  },
  {
    label: 'DescribeSnapshots',
    action: 'DescribeSnapshots',
    phase: 'delete',
    names: ({ imageId, name }) => `DescribeSnapshots for the snapshots of image ${imageId} (${name}) failed`,
  },
  {
    label: 'DeregisterImage',
    action: 'DeregisterImage',
    phase: 'delete',
    names: ({ imageId }) => `Could not deregister image ${imageId}`,
  },
  {
    label: 'DeleteSnapshot',
    action: 'DeleteSnapshot',
    phase: 'delete',
    names: ({ imageId, snapshotId }) => `Could not delete snapshot ${snapshotId} of image ${imageId}`,
  },
  {
    label: 'DescribeImageAttribute (sharing)',
    action: 'DescribeImageAttribute',
    phase: 'poll',
    bake: SHARING,
    names: ({ imageId }) => `DescribeImageAttribute (launchPermission) for image ${imageId} failed`,
  },
  {
    label: 'ModifyImageAttribute (sharing)',
    action: 'ModifyImageAttribute',
    phase: 'poll',
    matches: (params) => [...params.keys()].some((key) => key.startsWith('LaunchPermission.')),
    bake: SHARING,
    names: ({ imageId }) => `Could not share image ${imageId} (launch permissions)`,
  },
  {
    label: 'ModifyImageAttribute (IMDSv2-only)',
    action: 'ModifyImageAttribute',
    phase: 'poll',
    matches: (params) => params.get('ImdsSupport.Value') === 'v2.0',
    bake: IMDS_V2_ONLY,
    names: ({ imageId }) => `Could not make image ${imageId} IMDSv2-only (ModifyImageAttribute ImdsSupport v2.0)`,
  },
  {
    label: 'DescribeFastSnapshotRestores',
    action: 'DescribeFastSnapshotRestores',
    phase: 'poll',
    bake: FAST_RESTORE,
    names: ({ snapshotId }) => `DescribeFastSnapshotRestores for snapshots ${snapshotId} failed`,
  },
  {
    label: 'EnableFastSnapshotRestores',
    action: 'EnableFastSnapshotRestores',
    phase: 'poll',
    bake: FAST_RESTORE,
    names: ({ imageId, snapshotId }) => `Could not enable fast snapshot restore for image ${imageId} (${snapshotId}) in us-east-1a`,
  },
  {
    label: 'DescribeFastSnapshotRestores (Delete)',
    action: 'DescribeFastSnapshotRestores',
    phase: 'delete',
    bake: FAST_RESTORE,
    names: ({ snapshotId }) => `DescribeFastSnapshotRestores for snapshots ${snapshotId} failed`,
  },
  {
    label: 'DisableFastSnapshotRestores (Delete)',
    action: 'DisableFastSnapshotRestores',
    phase: 'delete',
    bake: FAST_RESTORE,
    names: ({ imageId, snapshotId }) => `Could not disable fast snapshot restore for image ${imageId} (${snapshotId}) in us-east-1a`,
  },
  {
    label: 'EnableImageDeprecation',
    action: 'EnableImageDeprecation',
    phase: 'poll',
    bake: DEPRECATION,
    names: ({ imageId }) => `EnableImageDeprecation for image ${imageId} failed`,
  },
  {
    label: 'EnableImageDeregistrationProtection',
    action: 'EnableImageDeregistrationProtection',
    phase: 'poll',
    bake: PROTECTION,
    names: ({ imageId }) => `EnableImageDeregistrationProtection for image ${imageId} failed`,
  },
  {
    label: 'DisableImageDeregistrationProtection (Delete)',
    action: 'DisableImageDeregistrationProtection',
    phase: 'delete',
    bake: PROTECTION,
    names: ({ imageId }) => `Could not lift the deregistration protection of image ${imageId}`,
  },
  {
    label: 'CreateTags of the copy-regions tag',
    action: 'CreateTags',
    phase: 'poll',
    matches: (params) => params.get('Tag.1.Key') === Tag.COPY_REGIONS,
    bake: COPIES,
    names: ({ imageId }) => `CreateTags (${Tag.COPY_REGIONS}) for image ${imageId} failed`,
  },
  {
    label: 'DescribeImages by name in the copy region (isComplete)',
    action: 'DescribeImages',
    phase: 'poll',
    matches: describeImagesByName,
    region: COPY_REGION,
    bake: COPIES,
    names: ({ name }) => `DescribeImages for the image named ${name} in ${COPY_REGION} failed`,
  },
  {
    label: 'CopyImage',
    action: 'CopyImage',
    phase: 'poll',
    region: COPY_REGION,
    bake: COPIES,
    names: ({ imageId, name }) => `CopyImage of image ${imageId} (${name}) to ${COPY_REGION} failed`,
  },
  {
    label: 'DescribeImages by name in the copy region (Delete)',
    action: 'DescribeImages',
    phase: 'delete',
    matches: describeImagesByName,
    region: COPY_REGION,
    bake: COPIES,
    names: ({ name }) => `DescribeImages for the image named ${name} in ${COPY_REGION} failed`,
  },
  {
    label: 'CloudFormation DescribeStacks (Delete)',
    action: 'DescribeStacks',
    phase: 'delete',
    bake: RETENTION,
    names: () => `DescribeStacks for ${STACK_NAME} (to decide which images to keep) failed`,
  },
  {
    label: 'CloudFormation DescribeStackResource (Delete)',
    action: 'DescribeStackResource',
    phase: 'delete',
    bake: RETENTION,
    names: () => `DescribeStackResource for ${LOGICAL_ID} (to decide which images to keep) failed`,
  },
];

/** The properties of the bakes that together make every call of CALLS. */
const BAKES: readonly BakeOptions[] = [...new Set(CALLS.map((call) => call.bake ?? DEFAULTS))];

/** Every attempt of the one SDK call whose first attempt got the first injected fault. */
function attemptsOfFaultedCall(): ProxiedRequest[] {
  const first = harness.proxy.requests.find((request) => request.injected !== undefined);
  if (!first?.invocationId) {
    throw new Error(`no injected fault was answered: ${harness.proxy.actions().join(', ')}`);
  }
  return harness.proxy.requests.filter((request) => request.invocationId === first.invocationId);
}

/** Milliseconds between one attempt's arrival at the proxy and the next one's. */
function waitsBetween(attempts: ProxiedRequest[]): number[] {
  return attempts.slice(1).map((attempt, index) => attempt.at - attempts[index].at);
}

describe('the fault matrix covers', () => {
  test('every EC2 and CloudFormation call of a bake and its delete, with the properties and in the step that make it', async () => {
    const seen = new Set<string>();
    const notMadeByItsBake: string[] = [];
    for (const options of BAKES) {
      await harness.reset();
      const seenHere = new Set<string>();
      const bake = await Bake.start(options);
      for (const phase of PHASES) {
        const from = harness.proxy.requests.length;
        await bake.step(phase);
        for (const request of harness.proxy.requests.slice(from)) {
          const call = CALLS.filter((candidate) => candidate.phase === phase && candidate.action === request.action
            && (candidate.matches?.(request.params) ?? true) && (candidate.region === undefined || candidate.region === request.region));
          seenHere.add(call.length === 1 ? call[0].label : `${phase}: ${request.region} ${request.service} ${request.action} ${request.params.toString()}`);
        }
      }
      seenHere.forEach((label) => seen.add(label));
      // The matrix below injects each call's faults into a bake with its properties: that bake must make the call.
      notMadeByItsBake.push(...CALLS.filter((call) => (call.bake ?? DEFAULTS) === options && !seenHere.has(call.label)).map((call) => call.label));
    }

    expect([...seen].sort()).toEqual(CALLS.map((call) => call.label).sort());
    expect(notMadeByItsBake).toEqual([]);
  });
});

// -------------------------------------------------------------------------------------------------------
// Throttling and 5xx
// -------------------------------------------------------------------------------------------------------

/**
 * The faults of one call, in order, and the jitter that makes its two waits at least 40 and 80 ms (throttling waits
 * have a base 20 times longer than 5xx ones; the bounds hold for current and older SDK releases).
 */
const FAULT_SEQUENCES: ReadonlyArray<readonly [string, readonly Ec2Fault[], number]> = [
  ['RequestLimitExceeded twice', [EC2_FAULTS.throttling, EC2_FAULTS.throttling], 0.1],
  ['InternalError (500), then Unavailable (503)', [EC2_FAULTS.internalError, EC2_FAULTS.unavailable], 0.99],
];
const MATRIX = CALLS.flatMap((call) => FAULT_SEQUENCES.map(([label, faults, jitter]) => [call.label, label, call, faults, jitter] as const));

describe('throttling and 5xx answers, twice in a row on one call', () => {
  test.each(MATRIX)('%s, %s: retried with growing waits; the bake and the delete succeed', async (_label, _faults, call, faults, jitter) => {
    pinJitter(jitter);
    const bake = await Bake.start(call.bake);

    for (const phase of PHASES) {
      if (phase === call.phase) {
        faults.forEach((fault) => harness.proxy.failNext(call.action, 1, fault, call.matches));
      }
      await bake.step(phase);
    }

    expect(harness.proxy.unusedFaults()).toEqual({});
    const attempts = attemptsOfFaultedCall();
    expect(attempts.map((attempt) => [attempt.action, attempt.attempt, attempt.maxAttempts, attempt.status, attempt.errorCode])).toEqual([
      [call.action, 1, MAX_ATTEMPTS, faults[0].status, faults[0].code],
      [call.action, 2, MAX_ATTEMPTS, faults[1].status, faults[1].code],
      // DeregisterImage deleted the snapshot already (DeleteAssociatedSnapshots): the explicit DeleteSnapshot finds it gone.
      call.action === 'DeleteSnapshot' ? [call.action, 3, MAX_ATTEMPTS, 400, 'InvalidSnapshot.NotFound'] : [call.action, 3, MAX_ATTEMPTS, 200, undefined],
    ]);
    expect(attempts.every((attempt) => call.matches?.(attempt.params) ?? true)).toBe(true);
    expect(attempts.map((attempt) => attempt.region)).toEqual(attempts.map(() => call.region ?? REGION));
    // Backoff: no retry at once, and the second wait at least twice the first one's lower bound.
    const [first, second] = waitsBetween(attempts);
    expect(first).toBeGreaterThanOrEqual(40);
    expect(second).toBeGreaterThanOrEqual(80);
  });
});

describe('once the SDK gives up', () => {
  beforeEach(loadFreshHandler);

  test.each(CALLS.map((call) => [call.label, call] as const))(
    '%s throttled on every attempt: fails naming the call, its ids, the code and the attempts; the Delete that follows cleans up',
    async (_label, call) => {
      pinJitter(0.01);
      const bake = await Bake.start(call.bake);
      for (const phase of PHASES.slice(0, PHASES.indexOf(call.phase))) {
        await bake.step(phase);
      }
      harness.proxy.failNext(call.action, MAX_ATTEMPTS + 4, EC2_FAULTS.throttling, call.matches);

      const failure = await bake.step(call.phase).then(() => undefined, (error: unknown) => error);

      const message = (failure as Error | undefined)?.message ?? '(it did not fail)';
      expect(message).toContain(call.names(bake.ids));
      expect(message).toContain(`RequestLimitExceeded: Request limit exceeded. (after ${MAX_ATTEMPTS} attempts)`);
      const attempts = attemptsOfFaultedCall();
      expect(attempts.map((attempt) => [attempt.attempt, attempt.errorCode])).toEqual(
        Array.from({ length: MAX_ATTEMPTS }, (_, index) => [index + 1, 'RequestLimitExceeded']),
      );
      expect(harness.proxy.unusedFaults()).toEqual({ [call.action]: 4 });

      // CloudFormation's Delete (the rollback of a failed Create, or the retry of a failed Delete) removes what is left.
      harness.proxy.clearFaults();
      await bake.delete();
    },
  );

  test('CreateImage answered InternalError on every attempt: fails naming the builder, the image name and the code; no image is left', async () => {
    pinJitter(0.2);
    const bake = await Bake.start();
    harness.proxy.failNext('CreateImage', MAX_ATTEMPTS + 1, EC2_FAULTS.internalError);

    await expect(handler.onEvent(bake.createEvent)).rejects.toThrow(
      `CreateImage for builder ${bake.builder} (image name ${bake.name}) failed: InternalError: An internal error has occurred. (after ${MAX_ATTEMPTS} attempts)`,
    );

    expect(harness.proxy.count('CreateImage')).toBe(MAX_ATTEMPTS);
    expect(harness.proxy.unusedFaults()).toEqual({ CreateImage: 1 });
    expect(await ownImageIds()).toEqual([]);
  });
});

// -------------------------------------------------------------------------------------------------------
// Answers lost after EC2 carried the request out
// -------------------------------------------------------------------------------------------------------

const LOSSES: ReadonlyArray<[string, LostResponse]> = [['an InternalError answer', EC2_FAULTS.internalError], ['a reset connection', 'connection-reset']];

describe('an answer lost after EC2 carried the request out, so that the SDK sends it again', () => {
  test.each(LOSSES)('CreateImage (%s): the retry meets InvalidAMIName.Duplicate, the handler adopts the image; one image exists', async (_label, how) => {
    pinJitter(0.99);
    const bake = await Bake.start();
    harness.proxy.loseResponses('CreateImage', 1, how);

    await bake.create();

    const createImages = harness.proxy.requests.filter((request) => request.action === 'CreateImage');
    expect(createImages.map((request) => [request.attempt, request.injected, request.errorCode])).toEqual([
      [1, 'response-lost', how === 'connection-reset' ? 'ECONNRESET' : how.code],
      [2, undefined, 'InvalidAMIName.Duplicate'],
    ]);
    expect(createImages[1].invocationId).toBe(createImages[0].invocationId);
    await bake.poll();
    await bake.delete();
  });

  // Both ways of losing an answer are retried alike by the SDK (CreateImage above shows it): one way per call here.
  // The answer EC2 gives the repeated request: StopInstances and TerminateInstances repeat fine; the others find the
  // image or snapshot gone (the handler also takes InvalidAMIID.NotFound for a gone image).
  test.each([
    ['StopInstances', 'a reset connection', 'stop', 'poll', 'connection-reset', undefined],
    ['TerminateInstances', 'an InternalError answer', 'terminate', 'poll', EC2_FAULTS.internalError, undefined],
    ['DeregisterImage', 'a reset connection', 'stop', 'delete', 'connection-reset', 'InvalidAMIID.Unavailable'],
    // DeleteSnapshot: DeregisterImage deletes the snapshot itself (DeleteAssociatedSnapshots), so the explicit call
    // answers NotFound and has no answer to lose; the unit tests and the consistency tests cover its retries.
  ] as const)(
    '%s (%s): the repeated request finds the work done; the bake and the delete succeed',
    async (action, _label, builderAfterBake, phase, how, repeatedAnswer) => {
      pinJitter(0.99);
      const bake = await Bake.start(builderAfterBake === 'terminate' ? TERMINATE : DEFAULTS);
      for (const step of PHASES) {
        if (step === phase) {
          harness.proxy.loseResponses(action, 1, how);
        }
        await bake.step(step);
      }

      expect(harness.proxy.unusedFaults()).toEqual({});
      const sent = harness.proxy.requests.filter((request) => request.action === action);
      expect(sent.map((request) => [request.attempt, request.injected, request.errorCode])).toEqual([
        [1, 'response-lost', how === 'connection-reset' ? 'ECONNRESET' : how.code],
        [2, undefined, repeatedAnswer],
      ]);
      expect(sent[1].invocationId).toBe(sent[0].invocationId);
    },
  );
});

// -------------------------------------------------------------------------------------------------------
// Images that fail or stay pending
// -------------------------------------------------------------------------------------------------------

describe('an image that does not become available', () => {
  test('failed: isComplete fails naming image, builder, state, StateReason and where to look; the Delete removes the image and its snapshot', async () => {
    const bake = await Bake.start();
    await bake.create();
    const reason = { code: 'Server.InternalError', message: 'Internal error while creating the snapshot' };
    harness.proxy.failImage(bake.imageId, 2, reason);

    const failure = handler.isComplete(completeEvent(bake.createEvent, { PhysicalResourceId: bake.imageId }));

    await expect(failure).rejects.toThrow(
      `Image ${bake.imageId} from builder ${bake.builder} is failed (Server.InternalError: Internal error while creating the snapshot).`,
    );
    await expect(failure).rejects.toThrow(/cfn-init log \(\/var\/log\/cfn-init\.log; also in the builder's system log.*printLog/);
    // The builder is left as it is, for a look at it.
    expect(await instanceState(bake.builder)).toBe('running');
    expect(harness.proxy.count('StopInstances')).toBe(0);

    // The rollback's Delete sees the image failed too, and removes it with its snapshot.
    await bake.delete();
    expect(harness.proxy.unusedRewrites()).toBe(0);
  });

  test('pending past bakeTimeout: isComplete fails naming bakeTimeout and its value; the Delete removes the pending image and its snapshot', async () => {
    const bake = await Bake.start({ props: { [Prop.BAKE_TIMEOUT_SECONDS]: '900' } });
    await bake.create();
    // Pending for the two polls and for the Delete.
    harness.proxy.holdPending(bake.imageId, 3);
    const poll = (startedAt: Date) => handler.isComplete(completeEvent(bake.createEvent, {
      PhysicalResourceId: bake.imageId,
      Data: { ...bake.created?.Data, [Attr.REQUEST_STARTED_AT]: startedAt.toISOString() },
    }));
    await expect(poll(new Date())).resolves.toEqual({ IsComplete: false });

    // The request started an hour ago.
    const failure = poll(new Date(Date.now() - 3_600_000));

    await expect(failure).rejects.toThrow(new RegExp(
      `^Image ${bake.imageId} from builder ${bake.builder} is still pending after 360\\d s, longer than bakeTimeout \\(900 s\\)`,
    ));
    await expect(failure).rejects.toThrow('the pending image and its copies are deleted with this resource');
    expect(await instanceState(bake.builder)).toBe('running');

    await bake.delete();
    expect(harness.proxy.unusedRewrites()).toBe(0);
    expect(harness.proxy.count('DeregisterImage')).toBe(1);
    expect(harness.proxy.count('DeleteSnapshot')).toBe(1);
  });
});
