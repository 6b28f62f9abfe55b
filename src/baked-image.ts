import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { Annotations, Aws, CfnResource, CustomResource, Duration, Names, RemovalPolicy, Size, Stack, Tags, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { acknowledge, acknowledgeEncryptedVolumes } from './private/acknowledge';
import { validationError } from './private/errors';
import { BakeProvider } from './private/bake-provider';
import { BuilderAfterBake } from './builder-after-bake';
import {
  Attr,
  copyImageIdAttribute,
  DEFAULT_BAKE_TIMEOUT_SECONDS,
  encodeProperties,
  IMAGE_NAME_PATTERN,
  imageInputs,
  MANIFEST_DIRECTORY,
  MAX_BAKE_TIMEOUT_SECONDS,
  MAX_DEPRECATE_AFTER_SECONDS,
  MAX_DESCRIPTION_LENGTH,
  MAX_KEEP_SUPERSEDED,
  MAX_NAME_PREFIX_LENGTH,
  MAX_SIGNAL_TIMEOUT_SECONDS,
  MAX_USER_DATA_BYTES,
  MIN_DEPRECATE_AFTER_SECONDS,
  MIN_TIMEOUT_SECONDS,
  PARAMETER_NAME_PATTERN,
  REGION_PATTERN,
  type Removal,
  sharesWithAnyone,
  SHARING_LISTS,
  Tag,
  VALIDATION_HEREDOC_END,
} from './private/contract';
import { RootVolume } from './private/root-volume';
import { validationUserData } from './private/validation-script';
import { Sanitize } from './sanitize';
import { ImageValidation } from './validation';

/** The config set, and config, the builder runs last to clean up before the image is captured. */
const SANITIZE_CONFIG = 'cdkBakedImageSanitize';

/** The config set, and config, that writes the manifest into the image, after the user's and before the clean-up. */
const MANIFEST_CONFIG = 'cdkBakedImageManifest';

/** Instance families on the Xen hypervisor: GetConsoleOutput gives their latest output only on Nitro types. */
const XEN_INSTANCE_FAMILIES = /^(t1|t2|m1|m2|m3|m4|c1|c3|c4|r3|r4|x1|x1e|i2|i3|d2|g2|g3|g3s|p2|p3|h1|f1)\.(?!metal)/;

/** This library's version, recorded in every image's manifest. */
const LIBRARY_VERSION: string = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version;

/**
 * Who may launch a baked image besides the account that bakes it.
 */
export interface ImageSharing {
  /**
   * AWS account ids (12 digits).
   *
   * @default - none
   */
  readonly accounts?: string[];

  /**
   * AWS Organizations organization ARNs (`arn:aws:organizations::111122223333:organization/o-...`).
   *
   * @default - none
   */
  readonly organizationArns?: string[];

  /**
   * AWS Organizations organizational unit ARNs (`arn:aws:organizations::111122223333:ou/o-.../ou-...`).
   *
   * @default - none
   */
  readonly organizationalUnitArns?: string[];
}

/**
 * Properties of a BakedImage.
 */
export interface BakedImageProps {
  /**
   * The VPC the builder instance runs in. The builder needs outbound access to whatever its
   * cfn-init config downloads, and to the CloudFormation endpoint to signal.
   */
  readonly vpc: ec2.IVpc;

  /**
   * Where in the VPC the builder runs. It gets no public IP address and no inbound rule, so it needs
   * a route out (a NAT gateway, or VPC endpoints for everything the config uses).
   *
   * @default - private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * The base image the builder starts from.
   *
   * cfn-init and cfn-signal must be installed at `/opt/aws/bin` (Amazon Linux), or installable with
   * `dnf` or `yum` as the `aws-cfn-bootstrap` package: the builder installs it when it is missing.
   */
  readonly machineImage: ec2.IMachineImage;

  /**
   * What to bake: the cfn-init configuration applied to the builder before the image is captured.
   */
  readonly init: ec2.CloudFormationInit;

  /**
   * How to apply `init`: config sets, timeout of the builder's signal, and so on.
   *
   * The builder always runs with init options, so that any change of `init` replaces the builder
   * and therefore bakes a new image.
   *
   * @default - the `default` config set, and a signal timeout of 30 minutes
   */
  readonly initOptions?: ec2.ApplyCloudFormationInitOptions;

  /**
   * The builder's instance type. Match the architecture of `machineImage` (for example a Graviton
   * type for an arm64 image).
   *
   * The AWS Control Tower proactive control CT.EC2.PR.19 asks for a Nitro type that encrypts traffic
   * between instances in transit, which t3 is not: for example c6a.large (2 vCPUs and 4 GiB like
   * t3.medium, at about 1.8 times its on-demand price in us-east-1), m6i, m7i-flex, or c7g and m7g
   * (Graviton, for arm64 images).
   * A change of the type bakes a new image.
   *
   * @default t3.medium
   */
  readonly instanceType?: ec2.InstanceType;

  /**
   * Enable detailed (one-minute) CloudWatch monitoring of the builder, which the AWS Control Tower
   * proactive control CT.EC2.PR.13 asks for. CloudWatch bills its seven metrics by the hour while the
   * builder runs: well under a cent per bake hour, about USD 2 a month for a builder left running
   * (`BuilderAfterBake.KEEP_RUNNING`), at us-east-1 prices. Changing it updates the builder in place,
   * without a new image; a builder already terminated (`BuilderAfterBake.TERMINATE`) cannot be updated:
   * change `rebakeTrigger` with it.
   *
   * @default true
   */
  readonly detailedMonitoring?: boolean;

  /**
   * The builder's root device name, where its encrypted root volume is mapped. It must match the
   * base image's root device, or the image keeps an unencrypted root volume and gains an extra one.
   *
   * @default - `/dev/xvda` for Linux (Amazon Linux), `/dev/sda1` for Windows
   */
  readonly rootDeviceName?: string;

  /**
   * The size of the builder's root volume, and so of the image's.
   *
   * @default - the size of the base image's root snapshot
   */
  readonly rootVolumeSize?: Size;

  /**
   * The KMS key that encrypts the builder's root volume, and so the image's snapshot. Instances
   * launched from the image (an Auto Scaling group's service-linked role, for one) need permission
   * to use a customer managed key.
   *
   * @default - the account's default EBS key (`aws/ebs`)
   */
  readonly volumeEncryptionKey?: kms.IKey;

  /**
   * Let AWS Systems Manager Session Manager reach the builder (for debugging a bake), through the
   * `AmazonSSMManagedInstanceCore` managed policy on the builder's role.
   *
   * @default false
   */
  readonly ssmSessionAccess?: boolean;

  /**
   * A prefix of the AMI name. The final name is the prefix, a dash and a 16-character fingerprint of
   * the image inputs: unique per builder and the same when a request is retried.
   *
   * At most 111 characters of letters, digits, spaces and `( ) [ ] . / - ' @ _`.
   *
   * @default - derived from the construct path
   */
  readonly imageName?: string;

  /**
   * The AMI description, at most 255 characters.
   *
   * @default - names the construct path that baked it
   */
  readonly imageDescription?: string;

  /**
   * What happens to the image and its snapshots when it is replaced by a rebake or removed with the
   * stack. `DESTROY` deregisters the image and deletes its snapshots; `RETAIN` keeps both.
   *
   * @default RemovalPolicy.DESTROY
   */
  readonly removalPolicy?: RemovalPolicy;

  /**
   * Any value; change it to bake a new image from a fresh builder although nothing else changed
   * (for example to pick up the latest package updates).
   *
   * @default - no trigger
   */
  readonly rebakeTrigger?: string;

  /**
   * What happens to the builder once the image is available.
   *
   * @default BuilderAfterBake.STOP
   */
  readonly builderAfterBake?: BuilderAfterBake;

  /**
   * What the builder removes after `init` succeeded and before the image is captured: cloud-init
   * state, SSH host keys, authorized keys, shell history, cfn-init's cached metadata, the machine id,
   * temporary files and logs, so that nothing of the builder's identity or of the bake's inputs is
   * baked into every instance.
   *
   * @default Sanitize.defaults()
   */
  readonly sanitize?: Sanitize;

  /**
   * Capture the image without rebooting the builder first.
   *
   * Faster, but EC2 then gives no file-system consistency guarantee for the image.
   *
   * @default false
   */
  readonly noReboot?: boolean;

  /**
   * Share the image: launch permissions for other accounts, organizations or organizational units,
   * granted once the image is available and kept exactly as listed (a shorter list removes
   * permissions; no rebake). The image is never made public.
   *
   * Images encrypted with the AWS managed key `aws/ebs` cannot be shared, so sharing needs
   * `volumeEncryptionKey`. When that key is defined in this app (a `kms.Key`), its key policy lets the
   * listed accounts and organizations use it to launch the image; an imported key must already allow them.
   *
   * @default - not shared
   */
  readonly shareWith?: ImageSharing;

  /**
   * How many superseded images to keep after rebakes (with their snapshots), newest first, as rollback
   * insurance and for a fast revert; older ones are deleted. Only images this BakedImage made (by tag)
   * are counted or deleted, and all of them go when the BakedImage leaves the stack or the stack is
   * deleted. 0 deletes a replaced image as soon as the update has succeeded.
   *
   * @default 0
   */
  readonly keepSupersededImages?: number;

  /**
   * Deprecate the image this long after it was created (EC2 then hides it from default image
   * listings; instances and launch templates that name it keep working). An Update that changes only
   * this keeps the image and moves the date.
   *
   * @default - never deprecated
   */
  readonly deprecateAfter?: Duration;

  /**
   * Protect the image from deregistration outside this stack. The stack's own Delete (on replacement
   * or stack deletion, with `removalPolicy` DESTROY) lifts the protection first.
   *
   * @default false
   */
  readonly deregistrationProtection?: boolean;

  /**
   * Publish the image id to an SSM parameter of this name, of data type `aws:ec2:image` (so that EC2
   * launch templates and instance refresh can resolve it). The parameter follows every rebake and is
   * deleted with the stack.
   *
   * With `copyToRegions`, each copy's id is published as well, to a parameter of the same name in the copy's
   * region, written by the handler once the copies are available (and after every rebake), and deleted with the
   * image: a stack in that region reads it at its own deploy time with
   * `ec2.MachineImage.fromSsmParameter(name)`, and follows the copy across rebakes (see Copies in other regions
   * in the README). The name must then be a literal string.
   *
   * @default - no parameter
   */
  readonly imageIdParameterName?: string;

  /**
   * Test the image before anything uses it: once it is available, a short-lived test instance launched
   * from it (in the builder's subnet and security group) runs this validation, and the bake completes
   * only if it passes. On failure or timeout the CloudFormation reason carries the tail of the output and
   * the image is deleted; the test instance is terminated in every case. Validation runs before the copies
   * to other regions, so only a tested image is copied. Changing the validation tests the existing image
   * again, without a rebake.
   *
   * @default - no validation
   */
  readonly validation?: ImageValidation;

  /**
   * Copy the image to these regions once it is available (CopyImage). The bake completes when every copy
   * is available; the copies carry the image's name, description and tags, are shared and deprecated like
   * it, and are deleted with their snapshots when the image is (a shorter list deletes the copies no
   * longer listed, without a rebake). `imageIdForRegion(region)` gives each copy's id.
   *
   * Region names must be literal strings (they name the custom resource's attributes), and not the stack's
   * own region. Large images to far regions take a while: the copies count against `bakeTimeout`.
   *
   * @default - no copies
   */
  readonly copyToRegions?: string[];

  /**
   * The KMS keys that encrypt the copies, by region (a key of that region, by ARN: for example
   * `kms.Key.fromKeyArn(this, 'EuKey', 'arn:aws:kms:eu-west-1:...')`, or a multi-Region replica). The
   * provider's role is granted their use. A copy in a region not listed here is encrypted with that
   * region's default EBS key, and so cannot be shared.
   *
   * @default - every copy is encrypted with its region's default EBS key (`aws/ebs`)
   */
  readonly copyEncryptionKeys?: { [region: string]: kms.IKey };

  /**
   * How long the bake may take after CreateImage before it fails: the image becoming available, and its
   * copies to other regions. A CloudFormation custom resource can wait at most an hour, so this is at
   * most 50 minutes.
   *
   * @default Duration.minutes(50)
   */
  readonly bakeTimeout?: Duration;
}

/**
 * An AMI baked at deploy time from a builder instance configured with cfn-init.
 *
 * The builder runs `init`, signals CloudFormation, and a custom resource captures it as an AMI and
 * waits until the AMI is available. A change of any input (base image, init config, instance type,
 * name, description, rebake trigger) replaces the builder and bakes a new image; the previous image is
 * deleted with its snapshots once the stack update has succeeded.
 *
 * A BakedImage is itself an `ec2.IMachineImage`: hand it to an Auto Scaling group or launch template.
 *
 * @example
 * declare const vpc: ec2.IVpc;
 * const image = new BakedImage(this, 'WebImage', {
 *   vpc,
 *   machineImage: ec2.MachineImage.latestAmazonLinux2023(),
 *   init: ec2.CloudFormationInit.fromElements(
 *     ec2.InitPackage.yum('nginx'),
 *     ec2.InitService.enable('nginx', { serviceManager: ec2.ServiceManager.SYSTEMD }),
 *   ),
 * });
 * new autoscaling.AutoScalingGroup(this, 'Web', {
 *   vpc,
 *   instanceType: new ec2.InstanceType('t3.micro'),
 *   machineImage: image,
 * });
 */
export class BakedImage extends Construct implements ec2.IMachineImage, iam.IGrantable {
  /**
   * The id of the baked AMI (a token, available once the image is).
   *
   * @attribute
   */
  public readonly imageId: string;

  /**
   * The name of the baked AMI.
   *
   * @attribute
   */
  public readonly imageName: string;

  /** The builder instance the image is captured from. */
  public readonly builder: ec2.Instance;

  /** The builder's role: grant it what the cfn-init config needs (an S3 bucket, a secret, ...). */
  public readonly role: iam.IRole;

  /** The builder's role, as a grantable. */
  public readonly grantPrincipal: iam.IPrincipal;

  /** The operating system of the base image, and so of the baked one. */
  public readonly osType: ec2.OperatingSystemType;

  /**
   * A fingerprint of the builder's cfn-init configuration (the rendered metadata of the config sets it
   * runs). The same configuration gives the same fingerprint; it is recorded in the image's manifest.
   */
  public readonly initFingerprint: string;

  /** The SSM parameter that holds the image id, when `imageIdParameterName` is set. */
  public readonly imageIdParameter?: ssm.IStringParameter;

  /** The regions the image is copied to (`copyToRegions`). */
  public readonly copyRegions: string[];

  private readonly imageResource: CustomResource;

  private readonly volumeEncryptionKey?: kms.IKey;

  private autoScalingGranted = false;

  constructor(scope: Construct, id: string, props: BakedImageProps) {
    super(scope, id);
    // From JavaScript nothing enforces the required props, and a missing vpc would surface as a subnet error.
    const missing = (['vpc', 'machineImage', 'init'] as const).filter((name) => props?.[name] === undefined);
    if (missing.length > 0) {
      throw validationError('BakedImageMissingProps', `${missing.map((name) => `${name} is required`).join(', ')} (BakedImage ${this.node.path})`, this);
    }
    if (props.imageIdParameterName !== undefined) {
      PARAMETER_NAMES.set(this, props.imageIdParameterName);
    }

    const namePrefix = props.imageName ?? defaultNamePrefix(this);
    const description = props.imageDescription ?? `Baked by cdk-baked-image from ${this.node.path}`;
    const shaping = { namePrefix, description, noReboot: props.noReboot ?? false, rebakeTrigger: props.rebakeTrigger };
    const bakeTimeout = props.bakeTimeout ?? Duration.seconds(DEFAULT_BAKE_TIMEOUT_SECONDS);
    const instanceType = props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MEDIUM);
    const builderAfterBake = props.builderAfterBake ?? BuilderAfterBake.STOP;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    const vpcSubnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    const problems = inputProblems(this, {
      namePrefix,
      description,
      bakeTimeout,
      removalPolicy,
      vpc: props.vpc,
      vpcSubnets,
      parameterName: props.imageIdParameterName,
      initTimeout: props.initOptions?.timeout,
      deprecateAfter: props.deprecateAfter,
      keepSuperseded: props.keepSupersededImages,
    });
    problems.push(...sharingProblems(props.shareWith, props.volumeEncryptionKey));
    problems.push(...copyProblems(this, props.copyToRegions, props.copyEncryptionKeys, props.shareWith));
    const copyParameterName = (props.copyToRegions ?? []).length > 0 ? props.imageIdParameterName : undefined;
    if (copyParameterName !== undefined && Token.isUnresolved(copyParameterName)) {
      problems.push('imageIdParameterName must be a literal string with copyToRegions: it names the parameters the handler writes in the copy regions, and the permissions to write them');
    }
    problems.push(...validationProblems(props.validation, bakeTimeout, instanceType));
    this.copyRegions = [...props.copyToRegions ?? []];
    if (problems.some((problem) => problem.startsWith('vpcSubnets'))) {
      // Without subnets there is no builder to check the rest against.
      throwIfInvalid(this, problems);
    }

    const base = props.machineImage.getImage(this);
    this.osType = base.osType;
    if (base.osType === ec2.OperatingSystemType.WINDOWS) {
      Annotations.of(this).addWarningV2('cdk-baked-image:windows',
        'The base image is Windows. The builder is captured as it is, without Sysprep and with no default clean-up, so every instance launched from the image starts with the builder\'s computer name, security identifier and EC2Launch state. Windows images are not supported for production yet: bake on Linux, or add a last config set that resets EC2Launch and generalizes the builder yourself (see Windows in the README).');
    }
    problems.push(...parameterNameProblems(this, props.imageIdParameterName));
    if (props.validation && base.osType !== ec2.OperatingSystemType.LINUX) {
      problems.push('validation runs its test from cloud-init user data, on Linux images only: remove validation for a Windows image');
    }

    // The image inputs go into the builder's user data. With init options, ec2.Instance derives its
    // logical id from the user data, so any change of them replaces the builder, and the new instance
    // id tells the custom resource to bake a new image from a fresh, fully configured instance.
    const sanitizeCommands = (props.sanitize ?? Sanitize.defaults()).commandsFor(base.osType);
    const configSets = props.initOptions?.configSets ?? ['default'];
    const userData = ec2.UserData.forOperatingSystem(base.osType);
    // The image inputs but the builder itself (IMAGE_INPUTS), and what shapes the builder.
    const { instanceId: _builder, ...inputs } = imageInputs({ instanceId: '', ...shaping });
    userData.addCommands(`# cdk-baked-image inputs: ${Stack.of(this).toJsonString({
      sanitize: sanitizeCommands.length > 0 ? createHash('sha256').update(JSON.stringify(sanitizeCommands)).digest('hex').slice(0, 16) : 'none',
      ...inputs,
      instanceType: instanceType.toString(),
    })}`);
    if (base.osType === ec2.OperatingSystemType.LINUX) {
      // Some images (AL2023 minimal, for one) lack aws-cfn-bootstrap; cfn-init below needs it.
      userData.addCommands(
        'if [ ! -x /opt/aws/bin/cfn-init ]; then dnf install -y aws-cfn-bootstrap || yum install -y aws-cfn-bootstrap; fi',
      );
    }

    this.builder = new ec2.Instance(this, 'Builder', {
      vpc: props.vpc,
      vpcSubnets,
      instanceType,
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
      instanceName: `${namePrefix} builder`,
      ssmSessionPermissions: props.ssmSessionAccess ?? false,
      // On the network interface, not only by the subnet's setting (CT.EC2.PR.8).
      associatePublicIpAddress: false,
      detailedMonitoring: props.detailedMonitoring ?? true,
      blockDevices: [{
        deviceName: props.rootDeviceName ?? (base.osType === ec2.OperatingSystemType.WINDOWS ? '/dev/sda1' : '/dev/xvda'),
        volume: new RootVolume({
          encrypted: true,
          kmsKey: props.volumeEncryptionKey,
          volumeSize: props.rootVolumeSize?.toGibibytes(),
          volumeType: ec2.EbsDeviceVolumeType.GP3,
          deleteOnTermination: true,
        }),
      }],
    });
    problems.push(...configSetProblems(this.builder, configSets));
    throwIfInvalid(this, problems);
    this.initFingerprint = initFingerprint(this.builder);
    const manifest = {
      baseImageId: base.imageId,
      configSets: configSets.join(' '),
      initFingerprint: this.initFingerprint,
      libraryVersion: LIBRARY_VERSION,
    };
    addManifestConfig(this.builder, manifest, base.osType);
    if (sanitizeCommands.length > 0) {
      addSanitizeConfig(this.builder, sanitizeCommands);
    }

    acknowledgeEncryptedVolumes(this.builder.instance);
    if (props.detailedMonitoring === false) {
      acknowledge(this.builder.instance, 'AwsSolutions-EC28',
        'detailedMonitoring is off on request: the builder lives for one bake and is then stopped or terminated, so its one-minute metrics would bill for data nobody reads.');
    }
    acknowledge(this.builder.instance, 'AwsSolutions-EC29',
      'CloudFormation replaces the builder whenever the image inputs change, and the bake handler stops or terminates it: termination protection would block both.');
    this.role = this.builder.role;
    this.grantPrincipal = this.builder.grantPrincipal;

    const provider = BakeProvider.getOrCreate(this);
    const image = new CustomResource(this, 'Image', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::BakedImage',
      removalPolicy,
      properties: encodeProperties({
        instanceId: this.builder.instanceId,
        ...shaping,
        // RemovalPolicy.DESTROY and RETAIN (the only ones accepted above) are the contract's values.
        removal: removalPolicy as string as Removal,
        builderAfterBake,
        bakeTimeoutSeconds: bakeTimeout.toSeconds(),
        sharing: {
          accounts: props.shareWith?.accounts ?? [],
          organizationArns: props.shareWith?.organizationArns ?? [],
          organizationalUnitArns: props.shareWith?.organizationalUnitArns ?? [],
        },
        deprecateAfterSeconds: props.deprecateAfter?.toSeconds(),
        deregistrationProtection: props.deregistrationProtection ?? false,
        keepSuperseded: props.keepSupersededImages ?? 0,
        validation: props.validation ? {
          userData: validationUserData(props.validation.script, props.validation.timeout.toSeconds()),
          timeoutSeconds: props.validation.timeout.toSeconds(),
          instanceType: (props.validation.instanceType ?? instanceType).toString(),
          subnetId: builderSubnetId(this.builder),
          securityGroupIds: this.builder.connections.securityGroups.map((group) => group.securityGroupId),
        } : undefined,
        copyToRegions: this.copyRegions,
        copyKmsKeyIds: Object.fromEntries(Object.entries(props.copyEncryptionKeys ?? {}).map(([region, key]) => [region, key.keyArn])),
        copyParameterName,
        manifest,
      }),
    });
    const imageLogicalId = Stack.of(this).getLogicalId(image.node.defaultChild as CfnResource);
    // The handlers may image, stop and terminate only instances with these tags: this builder.
    Tags.of(this.builder).add(Tag.STACK_ID, Aws.STACK_ID, { includeResourceTypes: ['AWS::EC2::Instance'] });
    Tags.of(this.builder).add(Tag.LOGICAL_ID, imageLogicalId, { includeResourceTypes: ['AWS::EC2::Instance'] });
    if (props.validation) {
      provider.grantValidation(builderSubnetId(this.builder), this.builder.connections.securityGroups.map((group) => group.securityGroupId));
      // The test instance's volumes are made from the image's encrypted snapshots, with the provider's permissions.
      if (props.volumeEncryptionKey) {
        grantKeyUse(props.volumeEncryptionKey, provider.role, COPY_KEY_ACTIONS);
      }
    }
    if (this.copyRegions.length > 0) {
      provider.grantCopies(this.copyRegions);
      if (copyParameterName !== undefined) {
        provider.grantCopyParameters(copyParameterName, this.copyRegions);
      }
      // Copying reads the image's snapshots (encrypted with volumeEncryptionKey, when given) and writes the
      // copies' (with the region's key, when given): EBS does both with the provider's permissions.
      for (const key of [props.volumeEncryptionKey, ...Object.values(props.copyEncryptionKeys ?? {})]) {
        if (key) {
          grantKeyUse(key, provider.role, COPY_KEY_ACTIONS);
        }
      }
    }
    // The handlers' permissions must exist before the first request reaches them.
    image.node.addDependency(provider.role);

    // The custom resource is what the image is: Stack.getLogicalId(bakedImage.node.defaultChild) names it.
    this.node.defaultChild = image.node.defaultChild;
    this.imageResource = image;
    this.volumeEncryptionKey = props.volumeEncryptionKey;
    this.imageId = image.getAttString(Attr.IMAGE_ID);
    this.imageName = image.getAttString(Attr.IMAGE_NAME);

    if (props.imageIdParameterName !== undefined) {
      this.imageIdParameter = new ssm.StringParameter(this, 'ImageIdParameter', {
        parameterName: props.imageIdParameterName,
        stringValue: this.imageId,
        dataType: ssm.ParameterDataType.AWS_EC2_IMAGE,
        description: `The AMI baked by ${this.node.path} (cdk-baked-image)`,
      });
    }

    if (props.shareWith && props.volumeEncryptionKey) {
      shareKey(this, props.shareWith, props.volumeEncryptionKey);
    }
    if (sharesWithAnyone(props.shareWith) && Object.keys(props.copyEncryptionKeys ?? {}).length > 0) {
      Annotations.of(this).addWarningV2('cdk-baked-image:shareCopyKeys',
        'shareWith with copyEncryptionKeys: the key policy of each copy\'s key must let the listed accounts use it (kms:Decrypt, kms:DescribeKey, kms:ReEncrypt*, kms:GenerateDataKeyWithoutPlaintext, kms:CreateGrant), or they cannot launch the copies.');
    }

    if (props.noReboot) {
      Annotations.of(this).addWarningV2('cdk-baked-image:noReboot',
        'noReboot is set: EC2 captures the builder without a reboot and gives no file-system consistency guarantee for the image. Remove noReboot unless the bake time matters more.');
    }
    if (builderAfterBake === BuilderAfterBake.KEEP_RUNNING) {
      Annotations.of(this).addWarningV2('cdk-baked-image:builderKeepRunning',
        'builderAfterBake is KEEP_RUNNING: the builder instance is billed until the stack is deleted. Use STOP or TERMINATE outside debugging.');
    }
  }

  /**
   * A launch template for the image, ready for the launch-time phase: an Auto Scaling group given it can
   * run its own `init` (per-environment configuration, on every instance at launch) on top of what the
   * image baked. Defaults to this image, IMDSv2 required, user data for the image's operating system (a
   * group with `init` adds its cfn-init call to it), and a new instance role when `props` gives none (the
   * group's cfn-init and cfn-signal run with it). Every other property is passed on as given.
   *
   * @param scope the scope of the launch template
   * @param id its construct id
   * @param props launch template properties; `machineImage` defaults to this image
   */
  public newLaunchTemplate(scope: Construct, id: string, props: ec2.LaunchTemplateProps = {}): ec2.LaunchTemplate {
    const template = new ec2.LaunchTemplate(scope, id, {
      requireImdsv2: true,
      ...props,
      machineImage: props.machineImage ?? this,
      // Without feature flags a launch template takes no user data from its image, and a group with
      // `init` then refuses it: the group adds its cfn-init call to this user data.
      userData: props.userData ?? ec2.UserData.forOperatingSystem(this.osType),
      role: props.role ?? new iam.Role(scope, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        description: `Instances launched from ${this.node.path}: the launch-time cfn-init and cfn-signal run with it`,
      }),
    });
    return template;
  }

  /**
   * Lets a principal launch instances from the image in this account: with a customer managed
   * `volumeEncryptionKey`, the KMS actions EBS needs to make volumes from the image's snapshots
   * (`kms:Decrypt`, `kms:DescribeKey`, `kms:ReEncrypt*`, `kms:GenerateDataKeyWithoutPlaintext`,
   * `kms:CreateGrant`) on that key; with the AWS managed key nothing is needed, and nothing is granted.
   *
   * An Auto Scaling group launches with its service-linked role, not with a grantable of this app: use
   * `grantLaunchToAutoScaling()` for it.
   */
  public grantLaunch(grantee: iam.IGrantable): iam.Grant {
    if (!this.volumeEncryptionKey) {
      return iam.Grant.drop(grantee, 'launch an image encrypted with the AWS managed key aws/ebs');
    }
    return grantKeyUse(this.volumeEncryptionKey, grantee, LAUNCH_KEY_ACTIONS);
  }

  /**
   * Lets this account's Auto Scaling groups launch the image: with a customer managed
   * `volumeEncryptionKey` defined in this app, its key policy allows the Auto Scaling service-linked role
   * (`AWSServiceRoleForAutoScaling`) the key actions EBS needs, and `kms:CreateGrant` only for AWS
   * resources. Nothing is needed for the AWS managed key. An imported key gets a warning: add the two
   * statements to its policy yourself.
   *
   * KMS refuses a key policy that names a role which does not exist: the service-linked role exists once
   * any Auto Scaling group was created in the account, or after
   * `aws iam create-service-linked-role --aws-service-name autoscaling.amazonaws.com`.
   */
  public grantLaunchToAutoScaling(): void {
    const key = this.volumeEncryptionKey;
    if (!key || this.autoScalingGranted) {
      return;
    }
    this.autoScalingGranted = true;
    const role = new iam.ArnPrincipal(
      `arn:${Aws.PARTITION}:iam::${Stack.of(this).account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`);
    if (!(key instanceof kms.Key)) {
      Annotations.of(this).addWarningV2('cdk-baked-image:autoScalingImportedKey',
        'grantLaunchToAutoScaling with an imported volumeEncryptionKey: add to its key policy a statement allowing the role AWSServiceRoleForAutoScaling kms:Encrypt, kms:Decrypt, kms:ReEncrypt*, kms:GenerateDataKey* and kms:DescribeKey, and one allowing it kms:CreateGrant with kms:GrantIsForAWSResource true.');
      return;
    }
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AutoScalingLaunchesBakedImage',
      principals: [role],
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
      resources: ['*'],
    }));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AutoScalingAttachesBakedImageVolumes',
      principals: [role],
      actions: ['kms:CreateGrant'],
      resources: ['*'],
      conditions: { Bool: { 'kms:GrantIsForAWSResource': true } },
    }));
  }

  /**
   * The id of the image in a region: the copy's for a region of `copyToRegions`, the image's own for the
   * stack's region. A token of this stack, for this stack's own resources and outputs.
   *
   * Do not hand it to a stack of another region through `crossRegionReferences`: CDK's cross-region export
   * refuses a changed value, and every rebake changes the copy's id. Set `imageIdParameterName` instead, and
   * read the parameter of that name in the other region's stack (`ec2.MachineImage.fromSsmParameter(name)`).
   */
  public imageIdForRegion(region: string): string {
    if (!Token.isUnresolved(region) && region === Stack.of(this).region) {
      return this.imageId;
    }
    if (!this.copyRegions.includes(region)) {
      throw validationError('BakedImageNoCopy', `${this.node.path} has no copy in '${region}': copyToRegions lists ${this.copyRegions.length > 0 ? this.copyRegions.map((r) => `'${r}'`).join(', ') : 'no region'}`);
    }
    return this.imageResource.getAttString(copyImageIdAttribute(region));
  }

  /**
   * The baked image, for an Auto Scaling group, a launch template or an instance.
   */
  public getImage(_scope: Construct): ec2.MachineImageConfig {
    return {
      imageId: this.imageId,
      osType: this.osType,
      userData: ec2.UserData.forOperatingSystem(this.osType),
    };
  }
}

/** A readable, valid AMI name prefix from the construct path: letters, digits and dashes. */
function defaultNamePrefix(scope: Construct): string {
  return Names.uniqueResourceName(scope, { maxLength: 64, separator: '-' });
}

interface ValidatedInputs {
  readonly namePrefix: string;
  readonly description: string;
  readonly bakeTimeout: Duration;
  readonly removalPolicy: RemovalPolicy;
  readonly vpc: ec2.IVpc;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly parameterName?: string;
  readonly initTimeout?: Duration;
  readonly deprecateAfter?: Duration;
  readonly keepSuperseded?: number;
}

/** Checks the inputs the builder needs at synth time and returns every problem. Tokens are left alone. */
function inputProblems(scope: Construct, inputs: ValidatedInputs): string[] {
  const problems: string[] = [];
  const { namePrefix, description, bakeTimeout, removalPolicy } = inputs;

  if (!Token.isUnresolved(namePrefix)) {
    if (namePrefix.length < 1 || namePrefix.length > MAX_NAME_PREFIX_LENGTH) {
      problems.push(`imageName must be 1 to ${MAX_NAME_PREFIX_LENGTH} characters (a dash and a 16-character fingerprint are appended to make the AMI name), got ${namePrefix.length}: '${namePrefix}'`);
    }
    if (namePrefix.length > 0 && !IMAGE_NAME_PATTERN.test(namePrefix)) {
      const bad = [...new Set([...namePrefix].filter((c) => !IMAGE_NAME_PATTERN.test(c)))].join('');
      problems.push(`imageName may contain only letters, digits, spaces and ( ) [ ] . / - ' @ _ (EC2's rule for AMI names), got '${namePrefix}' with '${bad}'`);
    }
  }
  if (inputs.parameterName !== undefined && !Token.isUnresolved(inputs.parameterName)) {
    const name = inputs.parameterName;
    if (!PARAMETER_NAME_PATTERN.test(name)) {
      problems.push(`imageIdParameterName must be an SSM parameter name of at most 1011 letters, digits and _ . - /, not starting with aws or ssm, got '${name}'`);
    }
  }
  if (!Token.isUnresolved(description) && description.length > MAX_DESCRIPTION_LENGTH) {
    problems.push(`imageDescription must be at most ${MAX_DESCRIPTION_LENGTH} characters (EC2's limit), got ${description.length}`);
  }
  if (!bakeTimeout.isUnresolved()) {
    const seconds = bakeTimeout.toSeconds();
    if (seconds < MIN_TIMEOUT_SECONDS || seconds > MAX_BAKE_TIMEOUT_SECONDS) {
      problems.push(`bakeTimeout must be between 1 and ${MAX_BAKE_TIMEOUT_SECONDS / 60} minutes (a CloudFormation custom resource waits at most one hour), got ${bakeTimeout.toHumanString()}`);
    }
  }
  if (removalPolicy !== RemovalPolicy.DESTROY && removalPolicy !== RemovalPolicy.RETAIN) {
    problems.push(`removalPolicy must be RemovalPolicy.DESTROY or RemovalPolicy.RETAIN, got ${removalPolicy}`);
  }

  if (inputs.keepSuperseded !== undefined && !Token.isUnresolved(inputs.keepSuperseded)) {
    const keep = inputs.keepSuperseded;
    if (!Number.isInteger(keep) || keep < 0 || keep > MAX_KEEP_SUPERSEDED) {
      problems.push(`keepSupersededImages must be a whole number from 0 to ${MAX_KEEP_SUPERSEDED}, got ${keep}`);
    } else if (keep > 0 && removalPolicy === RemovalPolicy.RETAIN) {
      problems.push(`keepSupersededImages (${keep}) has no effect with removalPolicy RETAIN, which keeps every image: remove one of them`);
    }
  }
  if (inputs.deprecateAfter && !inputs.deprecateAfter.isUnresolved()) {
    const seconds = inputs.deprecateAfter.toSeconds();
    if (seconds < MIN_DEPRECATE_AFTER_SECONDS || seconds > MAX_DEPRECATE_AFTER_SECONDS) {
      problems.push(`deprecateAfter must be between 1 minute and 10 years (EC2's range), got ${inputs.deprecateAfter.toHumanString()}`);
    }
  }
  if (inputs.initTimeout && !inputs.initTimeout.isUnresolved() && inputs.initTimeout.toSeconds() > MAX_SIGNAL_TIMEOUT_SECONDS) {
    problems.push(`initOptions.timeout must be at most 12 hours (CloudFormation's limit for a CreationPolicy signal), got ${inputs.initTimeout.toHumanString()}`);
  }
  problems.push(...subnetProblems(scope, inputs.vpc, inputs.vpcSubnets));
  return problems;
}

/** The `imageIdParameterName` of each BakedImage that sets one. */
const PARAMETER_NAMES = new WeakMap<BakedImage, string>();

/**
 * Two BakedImages that write one SSM parameter name in the same account and region fail at deploy (the second
 * parameter already exists): name the other one. Stacks whose environment is not known at synth are left alone.
 */
function parameterNameProblems(image: BakedImage, name: string | undefined): string[] {
  if (name === undefined || Token.isUnresolved(name)) {
    return [];
  }
  const env = (scope: Construct) => `${Stack.of(scope).account}/${Stack.of(scope).region}`;
  const twin = image.node.root.node.findAll().find((other): other is BakedImage =>
    other instanceof BakedImage && other !== image && PARAMETER_NAMES.get(other) === name
    && (Stack.of(other) === Stack.of(image) || (!Token.isUnresolved(env(other)) && env(other) === env(image))));
  if (!twin) {
    return [];
  }
  return [`imageIdParameterName '${name}' is already the parameter of ${twin.node.path} in the same account and region: SSM parameter names are unique there, so the second one fails at deploy. Give each BakedImage its own name`];
}

/** Throws one error that lists every problem, if there is any. */
function throwIfInvalid(scope: Construct, problems: string[]): void {
  if (problems.length > 0) {
    throw validationError('BakedImageInvalidProps', `Invalid BakedImage ${scope.node.path}:\n  - ${problems.join('\n  - ')}`, scope);
  }
}

/** The builder needs exactly the subnets the selection names; a public one gets a warning. */
function subnetProblems(scope: Construct, vpc: ec2.IVpc, selection: ec2.SubnetSelection): string[] {
  let selected: ec2.SelectedSubnets;
  try {
    selected = vpc.selectSubnets(selection);
  } catch (error) {
    return [`vpcSubnets selects no subnet of the VPC (${(error as Error).message}). Pass vpcSubnets that exist, for example { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS } in a VPC with NAT gateways`];
  }
  if (selected.subnets.length === 0) {
    return [`vpcSubnets selects no subnet of the VPC: ${JSON.stringify(selection)}. Pass a selection that matches at least one subnet`];
  }
  if (selected.hasPublic) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:publicSubnet',
      'The builder is placed in a public subnet. It gets no public IP address and no inbound rule, so it reaches the internet only through VPC endpoints; prefer private subnets with egress (the default).');
  }
  return [];
}

/** Config sets named in initOptions must exist in init, or cfn-init fails on the builder after minutes. */
function configSetProblems(builder: ec2.Instance, configSets: string[]): string[] {
  const metadata = builder.instance.getMetadata('AWS::CloudFormation::Init');
  const sets = metadata?.configSets;
  if (!sets || typeof sets !== 'object' || Token.isUnresolved(sets)) {
    return [];
  }
  const defined = Object.keys(sets);
  const missing = configSets.filter((name) => !Token.isUnresolved(name) && !defined.includes(name));
  if (missing.length === 0) {
    return [];
  }
  return [`initOptions.configSets names ${missing.map((name) => `'${name}'`).join(', ')}, which init does not define (it defines ${defined.map((name) => `'${name}'`).join(', ') || 'none'}). Name config sets of init, or add them with CloudFormationInit.fromConfigSets`];
}

/** sha256 of the builder's rendered cfn-init metadata, before the library adds its own config sets. */
function initFingerprint(builder: ec2.Instance): string {
  const metadata = Stack.of(builder).resolve(builder.instance.getMetadata('AWS::CloudFormation::Init'));
  return createHash('sha256').update(JSON.stringify(metadata ?? {})).digest('hex').slice(0, 16);
}

interface ManifestContent {
  readonly baseImageId: string;
  readonly configSets: string;
  readonly initFingerprint: string;
  readonly libraryVersion: string;
}

/**
 * Writes the manifest into the image: `manifest.json` (base image, config sets, init fingerprint,
 * library version, stack), `packages.txt` (every installed package, on Linux) and `baked-at`.
 */
function addManifestConfig(builder: ec2.Instance, manifest: ManifestContent, osType: ec2.OperatingSystemType): void {
  const key = 'AWS::CloudFormation::Init';
  const metadata = builder.instance.getMetadata(key);
  if (!metadata || typeof metadata !== 'object' || Token.isUnresolved(metadata)) {
    throw new Error(`Cannot add the manifest to ${builder.node.path}: its cfn-init metadata is not a plain object`);
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
    throw new Error(`Cannot add the sanitize step to ${builder.node.path}: its cfn-init metadata is not a plain object`);
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

/** Each listed account, organization and unit must be well-formed; sharing needs a customer managed key. */
function sharingProblems(sharing: ImageSharing | undefined, key: kms.IKey | undefined): string[] {
  if (!sharing) {
    return [];
  }
  const problems: string[] = [];
  const check = (name: string, values: string[] | undefined, pattern: RegExp, what: string) => {
    if (values === undefined || Token.isUnresolved(values)) {
      return;
    }
    const bad = values.filter((value) => !Token.isUnresolved(value) && !pattern.test(value));
    if (bad.length > 0) {
      problems.push(`shareWith.${name} must list ${what}, got '${bad.join("', '")}'`);
    }
  };
  for (const list of ['accounts', 'organizationArns', 'organizationalUnitArns'] as const) {
    check(list, sharing[list], SHARING_LISTS[list].pattern, SHARING_LISTS[list].what);
  }
  if (sharesWithAnyone(sharing) && !key) {
    problems.push('shareWith needs volumeEncryptionKey: an image encrypted with the AWS managed key aws/ebs cannot be shared. Pass a customer managed kms.Key');
  }
  return problems;
}

/** The validation must fit into the bake and carry its script intact. */
function validationProblems(validation: ImageValidation | undefined, bakeTimeout: Duration, builderType: ec2.InstanceType): string[] {
  if (!validation) {
    return [];
  }
  const problems: string[] = [];
  const testInstanceType = (validation.instanceType ?? builderType).toString();
  if (!Token.isUnresolved(testInstanceType) && XEN_INSTANCE_FAMILIES.test(testInstanceType)) {
    problems.push(`validation's test instance type ${testInstanceType} is not a Nitro type: the handler reads the test's report with GetConsoleOutput Latest, which EC2 supports on Nitro instances only. Set validation.instanceType to a Nitro type (t3, m5, c6i, ...)`);
  }
  if (!validation.timeout.isUnresolved()) {
    const seconds = validation.timeout.toSeconds();
    if (seconds < MIN_TIMEOUT_SECONDS || (!bakeTimeout.isUnresolved() && seconds > bakeTimeout.toSeconds())) {
      problems.push(`validation timeout must be between 1 minute and bakeTimeout (${bakeTimeout.toHumanString()}), got ${validation.timeout.toHumanString()}`);
    }
  }
  if (Token.isUnresolved(validation.script)) {
    problems.push('validation script must be a literal string: it becomes the test instance\'s user data');
  } else if (validation.script.split('\n').some((line) => line.trim() === VALIDATION_HEREDOC_END)) {
    problems.push(`validation script must not contain a line '${VALIDATION_HEREDOC_END}': it ends the here-document that carries the script`);
  } else {
    const bytes = Buffer.byteLength(validationUserData(validation.script, 600), 'utf8');
    if (bytes > MAX_USER_DATA_BYTES) {
      problems.push(`validation script is too long: the test instance's user data would be ${bytes} bytes, EC2 takes at most ${MAX_USER_DATA_BYTES}. Put the test into the image (a bake-time file) and run that`);
    }
  }
  return problems;
}

/** The KMS actions the provider needs on the source and destination keys to copy an encrypted image. */
const COPY_KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:CreateGrant'];

/**
 * Copy regions must be literal region names, each once, not the stack's own; keys must be for listed regions
 * and in them; a shared image needs a key in every copy region (aws/ebs images cannot be shared).
 */
function copyProblems(
  scope: Construct,
  regions: string[] | undefined,
  keys: { [region: string]: kms.IKey } | undefined,
  sharing: ImageSharing | undefined,
): string[] {
  const problems: string[] = [];
  const listed = regions ?? [];
  if (Token.isUnresolved(listed) || listed.some((region) => Token.isUnresolved(region))) {
    return ['copyToRegions must list literal region names: they name the attributes imageIdForRegion() reads'];
  }
  const bad = listed.filter((region) => !REGION_PATTERN.test(region));
  if (bad.length > 0) {
    problems.push(`copyToRegions must list region names like 'us-west-2', got '${bad.join("', '")}'`);
  }
  const repeated = listed.filter((region, index) => listed.indexOf(region) !== index);
  if (repeated.length > 0) {
    problems.push(`copyToRegions lists ${[...new Set(repeated)].map((r) => `'${r}'`).join(', ')} more than once`);
  }
  const home = Stack.of(scope).region;
  if (!Token.isUnresolved(home) && listed.includes(home)) {
    problems.push(`copyToRegions lists '${home}', the stack's own region, where the image already is: remove it`);
  }
  for (const [region, key] of Object.entries(keys ?? {})) {
    if (!listed.includes(region)) {
      problems.push(`copyEncryptionKeys names '${region}', which copyToRegions does not list`);
    } else if (!Token.isUnresolved(key.env.region) && key.env.region !== region) {
      problems.push(`copyEncryptionKeys['${region}'] is a key of '${key.env.region}': a copy is encrypted with a key of its own region`);
    }
  }
  const unkeyed = listed.filter((region) => !keys?.[region]);
  if (sharesWithAnyone(sharing) && unkeyed.length > 0) {
    problems.push(`shareWith with copies in ${unkeyed.map((r) => `'${r}'`).join(', ')} needs copyEncryptionKeys for them: a copy encrypted with the region's aws/ebs key cannot be shared`);
  }
  return problems;
}

/**
 * Grants the use of a key: `kms:CreateGrant` in a statement of its own, only for grants to AWS resources
 * (`kms:GrantIsForAWSResource`), as the EBS encryption docs recommend; the other actions as asked.
 */
function grantKeyUse(key: kms.IKey, grantee: iam.IGrantable, actions: string[]): iam.Grant {
  const grant = key.grant(grantee, ...actions.filter((action) => action !== 'kms:CreateGrant'));
  if (!actions.includes('kms:CreateGrant')) {
    return grant;
  }
  return grant.combine(iam.Grant.addToPrincipal({
    grantee,
    actions: ['kms:CreateGrant'],
    resourceArns: [key.keyArn],
    conditions: { Bool: { 'kms:GrantIsForAWSResource': true } },
  }));
}

/** The KMS actions an account needs on the key of a shared image to launch instances from it. */
const LAUNCH_KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncrypt*', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:CreateGrant'];

/**
 * Lets the accounts and organizations the image is shared with use its key, when the key is defined
 * in this app. Organizational units cannot be named in a key policy by their ARN: they get a warning.
 */
function shareKey(scope: Construct, sharing: ImageSharing, key: kms.IKey): void {
  if (!sharesWithAnyone(sharing)) {
    return;
  }
  if (!(key instanceof kms.Key)) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:shareImportedKey',
      'shareWith with an imported volumeEncryptionKey: its key policy must let the listed accounts use it (kms:Decrypt, kms:DescribeKey, kms:ReEncrypt*, kms:GenerateDataKeyWithoutPlaintext, kms:CreateGrant), or they cannot launch the image.');
    return;
  }
  // The key actions, and kms:CreateGrant in a statement of its own, only for grants to AWS resources (EBS makes them).
  const allow = (sid: string, principals: iam.IPrincipal[]) => {
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid,
      actions: LAUNCH_KEY_ACTIONS.filter((action) => action !== 'kms:CreateGrant'),
      principals,
      resources: ['*'],
    }));
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: `${sid}Grants`,
      actions: ['kms:CreateGrant'],
      principals,
      resources: ['*'],
      conditions: { Bool: { 'kms:GrantIsForAWSResource': true } },
    }));
  };
  const accounts = sharing.accounts ?? [];
  if (accounts.length > 0) {
    allow('LaunchSharedBakedImageAccounts', accounts.map((account) => new iam.AccountPrincipal(account)));
  }
  // One statement per organization: each principal carries its own aws:PrincipalOrgID condition.
  (sharing.organizationArns ?? []).forEach((arn, index) => {
    allow(`LaunchSharedBakedImageOrganization${index + 1}`, [new iam.OrganizationPrincipal(arn.split('/').pop()!)]);
  });
  if ((sharing.organizationalUnitArns ?? []).length > 0) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:shareOuKey',
      'shareWith.organizationalUnitArns: a key policy cannot name organizational units by ARN. Let them use volumeEncryptionKey with an aws:PrincipalOrgPaths condition, or they cannot launch the image.');
  }
}

/** The builder's subnet: on its network interface, where `associatePublicIpAddress: false` puts it instead of SubnetId. */
function builderSubnetId(builder: ec2.Instance): string {
  const interfaces = builder.instance.networkInterfaces;
  const first = Array.isArray(interfaces) ? interfaces[0] as ec2.CfnInstance.NetworkInterfaceProperty : undefined;
  const subnetId = builder.instance.subnetId ?? first?.subnetId;
  if (subnetId === undefined) {
    throw validationError('BakedImageBuilderSubnet', `Cannot find the subnet of ${builder.node.path}`, builder);
  }
  return subnetId;
}
