import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Aws, Duration, Names, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeEncryptedVolumes } from './acknowledge';
import { configSetProblems, ResolvedInputs, throwIfInvalid } from './checks';
import { imageInputs, MANIFEST_DIRECTORY, type Manifest } from './contract';
import { validationError } from './errors';
import { rootDeviceNameFor } from './root-device';
import { RootVolume } from './root-volume';
import type { BakedImageProps } from '../baked-image-props';
import { Sanitize } from '../sanitize';

/** The config set, and config, the builder runs last to clean up before the image is captured. */
const SANITIZE_CONFIG = 'cdkBakedImageSanitize';

/** The config set, and config, that writes the manifest into the image, after the user's and before the clean-up. */
const MANIFEST_CONFIG = 'cdkBakedImageManifest';

/** This library's version, recorded in every image's manifest. */
const LIBRARY_VERSION: string = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;

/** A readable, valid AMI name prefix from the construct path: letters, digits and dashes. */
export function defaultNamePrefix(scope: Construct): string {
  return Names.uniqueResourceName(scope, { maxLength: 64, separator: '-' });
}

/** The builder, and what the image records of it. */
export interface Builder {
  readonly instance: ec2.Instance;
  /** What the image is made of: its manifest, also handed to the handlers for the image's tags. */
  readonly manifest: Required<Manifest>;
}

/**
 * The builder instance: the base image, the user's init with the library's manifest and clean-up config sets
 * after it, IMDSv2 required, no public IP, an encrypted root volume.
 *
 * The image inputs go into the builder's user data. With init options, ec2.Instance derives its logical id
 * from the user data, so any change of them replaces the builder, and the new instance id tells the custom
 * resource to bake a new image from a fresh, fully configured instance.
 */
export function createBuilder(
  scope: Construct,
  props: BakedImageProps,
  inputs: ResolvedInputs,
  base: ec2.MachineImageConfig,
  problems: string[],
): Builder {
  const osType = base.osType;
  const sanitizeCommands = (props.sanitize ?? Sanitize.defaults())._commandsFor(osType);
  const configSets = props.initOptions?.configSets ?? ['default'];
  const userData = ec2.UserData.forOperatingSystem(osType);
  // The image inputs but the builder itself (IMAGE_INPUTS), and what shapes the builder.
  const { instanceId: _builder, ...imageShaping } = imageInputs({
    instanceId: '',
    namePrefix: inputs.namePrefix,
    description: inputs.description,
    noReboot: props.noReboot ?? false,
    rebakeTrigger: props.rebakeTrigger,
  });
  userData.addCommands(`# cdk-baked-image inputs: ${Stack.of(scope).toJsonString({
    sanitize: sanitizeCommands.length > 0 ? createHash('sha256').update(JSON.stringify(sanitizeCommands)).digest('hex').slice(0, 16) : 'none',
    ...imageShaping,
    instanceType: inputs.instanceType.toString(),
    // Only when off: EC2 cannot take ImdsSupport v2.0 back from an image, so turning it off needs a new one. The
    // default writes nothing, which keeps the builders of images baked before the attribute existed.
    ...(props.requireImdsv2 === false ? { imdsSupport: 'unset' } : {}),
  })}`);
  if (osType === ec2.OperatingSystemType.LINUX) {
    // Some images (AL2023 minimal, for one) lack aws-cfn-bootstrap; cfn-init below needs it.
    userData.addCommands(
      'if [ ! -x /opt/aws/bin/cfn-init ]; then dnf install -y aws-cfn-bootstrap || yum install -y aws-cfn-bootstrap; fi',
    );
  }

  const instance = new ec2.Instance(scope, 'Builder', {
    vpc: props.vpc,
    vpcSubnets: inputs.vpcSubnets,
    instanceType: inputs.instanceType,
    machineImage: props.machineImage,
    userData,
    userDataCausesReplacement: true,
    init: props.init,
    initOptions: {
      timeout: Duration.minutes(30),
      ...props.initOptions,
      configSets: [...configSets, MANIFEST_CONFIG, ...(sanitizeCommands.length > 0 ? [SANITIZE_CONFIG] : [])],
    },
    httpTokens: ec2.HttpTokens.REQUIRED,
    httpEndpoint: true,
    instanceName: `${inputs.namePrefix} builder`,
    ssmSessionPermissions: props.ssmSessionPermissions ?? false,
    // On the network interface, not only by the subnet's setting (CT.EC2.PR.8).
    associatePublicIpAddress: false,
    detailedMonitoring: props.detailedMonitoring ?? true,
    blockDevices: [{
      deviceName: rootDeviceNameFor(osType, props.rootDeviceName),
      volume: new RootVolume({
        encrypted: true,
        kmsKey: props.volumeEncryptionKey,
        volumeSize: props.rootVolumeSize?.toGibibytes(),
        volumeType: ec2.EbsDeviceVolumeType.GP3,
        deleteOnTermination: true,
      }),
    }],
  });
  problems.push(...configSetProblems(instance, configSets));
  throwIfInvalid(scope, problems);

  const manifest = {
    baseImageId: base.imageId,
    configSets: configSets.join(' '),
    initFingerprint: initFingerprint(instance),
    libraryVersion: LIBRARY_VERSION,
  };
  addManifestConfig(instance, manifest, osType);
  if (sanitizeCommands.length > 0) {
    addSanitizeConfig(instance, sanitizeCommands);
  }

  acknowledgeEncryptedVolumes(instance.instance);
  if (props.detailedMonitoring === false) {
    acknowledge(instance.instance, 'AwsSolutions-EC28',
      'detailedMonitoring is off on request: the builder lives for one bake and is then stopped or terminated, so its one-minute metrics would bill for data nobody reads.');
  }
  acknowledge(instance.instance, 'AwsSolutions-EC29',
    'CloudFormation replaces the builder whenever the image inputs change, and the bake handler stops or terminates it: termination protection would block both.');
  return { instance, manifest };
}

/** sha256 of the builder's rendered cfn-init metadata, before the library adds its own config sets. */
function initFingerprint(builder: ec2.Instance): string {
  const metadata = Stack.of(builder).resolve(builder.instance.getMetadata('AWS::CloudFormation::Init'));
  return createHash('sha256').update(JSON.stringify(metadata ?? {})).digest('hex').slice(0, 16);
}

/**
 * Writes the manifest into the image: `manifest.json` (base image, config sets, init fingerprint,
 * library version, stack), `packages.txt` (every installed package, on Linux) and `baked-at`.
 */
function addManifestConfig(builder: ec2.Instance, manifest: Required<Manifest>, osType: ec2.OperatingSystemType): void {
  const key = 'AWS::CloudFormation::Init';
  const metadata = builder.instance.getMetadata(key);
  if (!metadata || typeof metadata !== 'object' || Token.isUnresolved(metadata)) {
    throw validationError('BakedImageInitMetadata', `Cannot add the manifest to ${builder.node.path}: its cfn-init metadata is not a plain object`, builder);
  }
  const linux = osType !== ec2.OperatingSystemType.WINDOWS;
  const directory = linux ? MANIFEST_DIRECTORY : 'C:\\ProgramData\\baked-image';
  const file = (name: string) => (linux ? `${directory}/${name}` : `${directory}\\${name}`);
  const config: Record<string, unknown> = {
    files: {
      [file('manifest.json')]: {
        content: { ...manifest, stackName: Aws.STACK_NAME, builtBy: 'cdk-baked-image' },
        ...(linux ? { mode: '000644', owner: 'root', group: 'root' } : {}),
      },
    },
  };
  if (linux) {
    config.commands = {
      '1-packages': {
        command: `(rpm -qa --qf '%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n' 2>/dev/null || dpkg-query -W -f='\${Package}=\${Version}\\n' 2>/dev/null) | sort > ${file('packages.txt')}; true`,
      },
      '2-baked-at': { command: `date -u +%Y-%m-%dT%H:%M:%SZ > ${file('baked-at')}` },
    };
  }
  builder.instance.addMetadata(key, {
    ...metadata,
    configSets: { ...metadata.configSets, [MANIFEST_CONFIG]: [MANIFEST_CONFIG] },
    [MANIFEST_CONFIG]: config,
  });
}

/**
 * Adds the clean-up as the builder's last cfn-init config set. It goes into the builder's own rendered
 * metadata, never into the user's CloudFormationInit, which may be shared with other resources.
 */
function addSanitizeConfig(builder: ec2.Instance, commands: string[]): void {
  const key = 'AWS::CloudFormation::Init';
  const metadata = builder.instance.getMetadata(key);
  if (!metadata || typeof metadata !== 'object' || Token.isUnresolved(metadata)) {
    throw validationError('BakedImageInitMetadata', `Cannot add the sanitize step to ${builder.node.path}: its cfn-init metadata is not a plain object`, builder);
  }
  const width = String(commands.length).length;
  const rendered: Record<string, { command: string }> = {};
  commands.forEach((command, index) => {
    rendered[`${String(index + 1).padStart(width, '0')}-sanitize`] = { command };
  });
  builder.instance.addMetadata(key, {
    ...metadata,
    configSets: { ...metadata.configSets, [SANITIZE_CONFIG]: [SANITIZE_CONFIG] },
    [SANITIZE_CONFIG]: { commands: rendered },
  });
}

/** The builder's subnet: on its network interface, where `associatePublicIpAddress: false` puts it instead of SubnetId. */
export function builderSubnetId(builder: ec2.Instance): string {
  const interfaces = builder.instance.networkInterfaces;
  const first = Array.isArray(interfaces) ? interfaces[0] as ec2.CfnInstance.NetworkInterfaceProperty : undefined;
  const subnetId = builder.instance.subnetId ?? first?.subnetId;
  if (subnetId === undefined) {
    throw validationError('BakedImageBuilderSubnet', `Cannot find the subnet of ${builder.node.path}`, builder);
  }
  return subnetId;
}
