/**
 * Synth benchmark: the same app with N BakedImages, or with N plain ec2.Instances on a fixed AMI, each
 * feeding an Auto Scaling group through a launch template. Timed in-process (new App .. app.synth()).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, CfnResource, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BakedImage } from '../src';
import { median } from './stats';
import { BakeProvider } from '../src/private/bake-provider';

/** baked: BakedImages; plain: plain instances; provider: the plain app plus the BakedImage provider alone. */
export type AppKind = 'baked' | 'plain' | 'provider';

/** The fixed AMI both apps start from (a Region map: the stack stays environment-agnostic). */
const BASE_IMAGE = ec2.MachineImage.genericLinux({ 'us-east-1': 'ami-0123456789abcdef0' });
const STACK_NAME = 'BenchStack';
/** Construct id of the stack-wide provider (src/private/bake-provider.ts). */
const PROVIDER_ID = 'CdkBakedImageProvider';

export interface Template {
  readonly Resources: Record<string, { readonly Type: string; readonly Properties?: Record<string, unknown> }>;
}

export interface SynthResult {
  readonly ms: number;
  readonly template: Template;
  /** Size of the template file as written to the cloud assembly. */
  readonly templateBytes: number;
  /** Logical ids of the resources under the stack-wide provider construct. */
  readonly providerLogicalIds: string[];
  /** Logical ids of the resources under the first image's construct (BakedImage or plain Instance). */
  readonly firstImageLogicalIds: string[];
  /** Logical ids of what the consumer declares for the first image: launch template, its security group, the ASG. */
  readonly firstConsumerLogicalIds: string[];
}

/** Builds and synthesizes one app; the time covers construction and synthesis. */
export function synthApp(kind: AppKind, images: number): SynthResult {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-synth-${kind}-`));
  try {
    const start = process.hrtime.bigint();
    const app = new App({
      outdir,
      context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true },
    });
    const stack = new Stack(app, STACK_NAME);
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    for (let i = 1; i <= images; i++) {
      addFleet(stack, vpc, kind, i);
    }
    if (kind === 'provider') {
      BakeProvider.getOrCreate(stack);
    }
    const assembly = app.synth();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;

    const artifact = assembly.getStackByName(STACK_NAME);
    const logicalIdsUnder = (prefix: string) => stack.node.findAll()
      .filter((construct): construct is CfnResource => CfnResource.isCfnResource(construct) && construct.node.path.startsWith(prefix))
      // resolve(), not getLogicalId(): the builder instance overrides its logical id (a hash of its user data).
      .map((resource) => stack.resolve(resource.logicalId) as string);
    return {
      ms,
      template: artifact.template as Template,
      templateBytes: fs.statSync(artifact.templateFullPath).size,
      providerLogicalIds: logicalIdsUnder(`${STACK_NAME}/${PROVIDER_ID}/`),
      firstImageLogicalIds: logicalIdsUnder(`${STACK_NAME}/${kind === 'baked' ? 'Image1' : 'Instance1'}/`),
      firstConsumerLogicalIds: ['Template1', 'FleetSecurityGroup1', 'Fleet1'].flatMap((id) => logicalIdsUnder(`${STACK_NAME}/${id}/`)),
    };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** One image (baked, or a plain instance on the fixed AMI) and the Auto Scaling group it feeds. */
function addFleet(stack: Stack, vpc: ec2.IVpc, kind: AppKind, i: number): void {
  let machineImage: ec2.IMachineImage;
  if (kind === 'baked') {
    machineImage = new BakedImage(stack, `Image${i}`, {
      vpc,
      machineImage: BASE_IMAGE,
      imageNamePrefix: `bench-image-${i}`,
      init: ec2.CloudFormationInit.fromElements(
        ec2.InitPackage.yum('nginx'),
        ec2.InitFile.fromString('/usr/share/nginx/html/index.html', `<h1>fleet ${i}</h1>\n`),
        ec2.InitService.enable('nginx', { enabled: true, ensureRunning: true }),
      ),
    });
  } else {
    new ec2.Instance(stack, `Instance${i}`, {
      vpc,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MEDIUM),
      machineImage: BASE_IMAGE,
    });
    machineImage = BASE_IMAGE;
  }
  const launchTemplate = new ec2.LaunchTemplate(stack, `Template${i}`, {
    machineImage,
    instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
    requireImdsv2: true,
    securityGroup: new ec2.SecurityGroup(stack, `FleetSecurityGroup${i}`, { vpc }),
  });
  new autoscaling.AutoScalingGroup(stack, `Fleet${i}`, { vpc, launchTemplate, minCapacity: 1, maxCapacity: 2 });
}

export interface SynthTiming {
  readonly images: number;
  readonly bakedMs: number[];
  readonly plainMs: number[];
  readonly bakedMedian: number;
  readonly plainMedian: number;
  readonly ratio: number;
  readonly baked: SynthResult;
  readonly plain: SynthResult;
  /** The plain app plus the provider alone (only for the N given to timeSynth as `providerAt`). */
  readonly providerMs?: number[];
  readonly providerMedian?: number;
}

/**
 * Times each N `runs` times per kind after one warm-up of each, rotating which kind goes first in each
 * round so that drift and GC pauses hit all of them. The provider-only app is timed at N = `providerAt`.
 */
export function timeSynth(counts: readonly number[], runs: number, providerAt: number): SynthTiming[] {
  for (const n of counts) {
    synthApp('baked', n);
    synthApp('plain', n);
  }
  synthApp('provider', providerAt);
  return counts.map((images) => {
    const kinds: AppKind[] = images === providerAt ? ['baked', 'plain', 'provider'] : ['baked', 'plain'];
    const times = new Map<AppKind, number[]>(kinds.map((kind) => [kind, []]));
    const last = new Map<AppKind, SynthResult>();
    for (let run = 0; run < runs; run++) {
      for (let k = 0; k < kinds.length; k++) {
        const kind = kinds[(run + k) % kinds.length];
        const result = synthApp(kind, images);
        times.get(kind)?.push(result.ms);
        last.set(kind, result);
      }
    }
    const baked = last.get('baked');
    const plain = last.get('plain');
    if (!baked || !plain) {
      throw new Error('timeSynth needs at least one run');
    }
    const bakedMs = times.get('baked') ?? [];
    const plainMs = times.get('plain') ?? [];
    const providerMs = times.get('provider');
    const bakedMedian = median(bakedMs);
    const plainMedian = median(plainMs);
    return {
      images,
      bakedMs,
      plainMs,
      bakedMedian,
      plainMedian,
      ratio: bakedMedian / plainMedian,
      baked,
      plain,
      ...(providerMs ? { providerMs, providerMedian: median(providerMs) } : {}),
    };
  });
}

/** Resources of a template counted by type. */
export function countByType(template: Template, logicalIds?: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    if (!logicalIds || logicalIds.includes(logicalId)) {
      counts.set(resource.Type, (counts.get(resource.Type) ?? 0) + 1);
    }
  }
  return counts;
}

/** Bytes of the given resources in the template, as pretty-printed by the CDK (one-space indent). */
export function resourceBytes(template: Template, logicalIds: readonly string[]): number {
  const subset = Object.fromEntries(logicalIds.map((id) => [id, template.Resources[id]]));
  return Buffer.byteLength(JSON.stringify(subset, undefined, 1));
}
