import { Annotations, Aws, CfnResource, CustomResource, Duration, RemovalPolicy, Stack, Tags, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { BakedImageProps } from './baked-image-props';
import { BuilderAfterBake } from './builder-after-bake';
import type { BakedImageLaunchTemplateProps } from './launch-template-props';
import { BakeProvider } from './private/bake-provider';
import { builderSubnetId, createBuilder, defaultNamePrefix } from './private/builder';
import {
  copyKeys,
  operatingSystemProblems,
  parameterNameProblems,
  propsProblems,
  registerParameterName,
  ResolvedInputs,
  throwIfInvalid,
  throwIfMissing,
} from './private/checks';
import {
  Attr,
  copyImageIdAttribute,
  DEFAULT_BAKE_TIMEOUT_SECONDS,
  encodeProperties,
  FAST_SNAPSHOT_RESTORE_IMAGES_PER_QUOTA,
  FAST_SNAPSHOT_RESTORE_SNAPSHOTS_PER_REGION,
  type Removal,
  sharesWithAnyone,
  Tag,
} from './private/contract';
import { validationError } from './private/errors';
import { COPY_KEY_ACTIONS, grantKeyToAutoScaling, grantKeyUse, LAUNCH_KEY_ACTIONS, shareKey, warnSharedCopyKeys } from './private/key-policies';
import { mapRootVolume, rootDeviceNameFor, setVolumeInitializationRate } from './private/root-device';
import { validationUserData } from './private/validation-script';

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
 *   launchTemplate: new ec2.LaunchTemplate(this, 'WebTemplate', {
 *     machineImage: image,
 *     instanceType: new ec2.InstanceType('t3.micro'),
 *     requireImdsv2: true,
 *   }),
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
   * The device name of the image's root volume: `rootDeviceName`, or `/dev/xvda` (Linux) and `/dev/sda1`
   * (Windows). A launch template of your own maps its root volume settings to it (see Launch speed in the README).
   */
  public readonly rootDeviceName: string;

  /**
   * A fingerprint of the builder's cfn-init configuration (the rendered metadata of the config sets it
   * runs). The same configuration gives the same fingerprint; it is recorded in the image's manifest.
   */
  public readonly initFingerprint: string;

  /** The SSM parameter that holds the image id, when `imageIdParameterName` is set. */
  public readonly imageIdParameter?: ssm.IStringParameter;

  /** The regions the image is copied to (`copies`). */
  public readonly copyRegions: string[];

  /** The Availability Zones where the image's snapshots get fast snapshot restore (`fastSnapshotRestoreZones`). */
  public readonly fastSnapshotRestoreZones: string[];

  private readonly imageResource: CustomResource;

  private readonly volumeEncryptionKey?: kms.IKey;

  private autoScalingGrant?: iam.Grant;

  constructor(scope: Construct, id: string, props: BakedImageProps) {
    super(scope, id);
    throwIfMissing(this, props);
    registerParameterName(this, props.imageIdParameterName);

    const inputs: ResolvedInputs = {
      namePrefix: props.imageNamePrefix ?? defaultNamePrefix(this),
      description: props.imageDescription ?? `Baked by cdk-baked-image from ${this.node.path}`,
      bakeTimeout: props.bakeTimeout ?? Duration.seconds(DEFAULT_BAKE_TIMEOUT_SECONDS),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
      vpcSubnets: props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      instanceType: props.instanceType ?? ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MEDIUM),
    };
    const builderAfterBake = props.builderAfterBake ?? BuilderAfterBake.STOP;
    const problems = propsProblems(this, props, inputs);
    if (problems.some((problem) => problem.startsWith('vpcSubnets'))) {
      // Without subnets there is no builder to check the rest against.
      throwIfInvalid(this, problems);
    }
    const base = props.machineImage.getImage(this);
    this.osType = base.osType;
    this.rootDeviceName = rootDeviceNameFor(base.osType, props.rootDeviceName);
    problems.push(...operatingSystemProblems(this, props, base.osType));
    problems.push(...parameterNameProblems(this, props.imageIdParameterName));

    const builder = createBuilder(this, props, inputs, base, problems);
    this.builder = builder.instance;
    this.initFingerprint = builder.manifest.initFingerprint;
    this.role = this.builder.role;
    this.grantPrincipal = this.builder.grantPrincipal;
    this.copyRegions = (props.copies ?? []).map((copy) => copy.region);
    this.fastSnapshotRestoreZones = [...props.fastSnapshotRestoreZones ?? []];
    const copyEncryptionKeys = copyKeys(props.copies);
    const copyParameterName = this.copyRegions.length > 0 ? props.imageIdParameterName : undefined;
    const builderSecurityGroupIds = this.builder.connections.securityGroups.map((group) => group.securityGroupId);

    const provider = BakeProvider.getOrCreate(this);
    const image = new CustomResource(this, 'Image', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::BakedImage',
      removalPolicy: inputs.removalPolicy,
      properties: encodeProperties({
        instanceId: this.builder.instanceId,
        namePrefix: inputs.namePrefix,
        description: inputs.description,
        noReboot: props.noReboot ?? false,
        rebakeTrigger: props.rebakeTrigger,
        // RemovalPolicy.DESTROY and RETAIN (the only ones the checks accept) are the contract's values.
        removal: inputs.removalPolicy as string as Removal,
        builderAfterBake,
        bakeTimeoutSeconds: inputs.bakeTimeout.toSeconds(),
        sharing: {
          accounts: props.shareWith?.accounts ?? [],
          organizationArns: props.shareWith?.organizationArns ?? [],
          organizationalUnitArns: props.shareWith?.organizationalUnitArns ?? [],
        },
        deprecateAfterSeconds: props.deprecateAfter?.toSeconds(),
        deregistrationProtection: props.deregistrationProtection ?? false,
        requireImdsv2: props.requireImdsv2 ?? true,
        fastSnapshotRestoreZones: this.fastSnapshotRestoreZones,
        keepSuperseded: props.keepSupersededImages ?? 0,
        validation: props.validation ? {
          userData: validationUserData(props.validation.script, props.validation.timeout.toSeconds()),
          timeoutSeconds: props.validation.timeout.toSeconds(),
          instanceType: (props.validation.instanceType ?? inputs.instanceType).toString(),
          subnetId: builderSubnetId(this.builder),
          securityGroupIds: builderSecurityGroupIds,
        } : undefined,
        copyToRegions: this.copyRegions,
        copyKmsKeyIds: Object.fromEntries(Object.entries(copyEncryptionKeys).map(([region, key]) => [region, key.keyArn])),
        copyParameterName,
        manifest: builder.manifest,
      }),
    });
    const imageLogicalId = Stack.of(this).getLogicalId(image.node.defaultChild as CfnResource);
    // The handlers may image, stop and terminate only instances with these tags: this builder.
    Tags.of(this.builder).add(Tag.STACK_ID, Aws.STACK_ID, { includeResourceTypes: ['AWS::EC2::Instance'] });
    Tags.of(this.builder).add(Tag.LOGICAL_ID, imageLogicalId, { includeResourceTypes: ['AWS::EC2::Instance'] });
    if (props.validation) {
      provider.grantValidation(builderSubnetId(this.builder), builderSecurityGroupIds);
      // The test instance's volumes are made from the image's encrypted snapshots, with the provider's permissions.
      if (props.volumeEncryptionKey) {
        grantKeyUse(props.volumeEncryptionKey, provider.role, COPY_KEY_ACTIONS);
      }
    }
    if (this.fastSnapshotRestoreZones.length > 0 && provider.grantFastSnapshotRestores() > FAST_SNAPSHOT_RESTORE_IMAGES_PER_QUOTA) {
      Annotations.of(this).addWarningV2('cdk-baked-image:fastSnapshotRestoreQuota',
        `This stack has more than ${FAST_SNAPSHOT_RESTORE_IMAGES_PER_QUOTA} images with fast snapshot restore. EBS enables it for at most `
        + `${FAST_SNAPSHOT_RESTORE_SNAPSHOTS_PER_REGION} snapshots per Region by default, and a rebake needs a second one for a while `
        + '(the new image\'s, until the update\'s cleanup): ask for a higher quota, or a bake fails once it is reached.');
    }
    if (this.copyRegions.length > 0) {
      provider.grantCopies(this.copyRegions);
      if (copyParameterName !== undefined) {
        provider.grantCopyParameters(copyParameterName, this.copyRegions);
      }
      // Copying reads the image's snapshots (encrypted with volumeEncryptionKey, when given) and writes the
      // copies' (with the region's key, when given): EBS does both with the provider's permissions.
      for (const key of [props.volumeEncryptionKey, ...Object.values(copyEncryptionKeys)]) {
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
    if (sharesWithAnyone(props.shareWith) && Object.keys(copyEncryptionKeys).length > 0) {
      warnSharedCopyKeys(this);
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
   * With `rootVolumeInitialization` at a provisioned rate, the template maps `rootDeviceName` to a gp3 volume
   * deleted on termination, with no size (the snapshot's) and no encryption setting (the snapshot's encryption
   * carries over), or sets the rate on the mapping `blockDevices` gives it. By default EBS initializes the
   * root volume lazily, and the template maps nothing.
   *
   * @param scope the scope of the launch template
   * @param id its construct id
   * @param props launch template properties; `machineImage` defaults to this image
   */
  public newLaunchTemplate(scope: Construct, id: string, props: BakedImageLaunchTemplateProps = {}): ec2.LaunchTemplate {
    const { rootVolumeInitialization, ...templateProps } = props;
    const templatePath = `${scope.node.path}/${id}`;
    const ownImage = templateProps.machineImage === undefined || templateProps.machineImage === this;
    if (!ownImage && rootVolumeInitialization?.rate !== undefined) {
      throw validationError('BakedImageRootVolumeInitialization',
        `${templatePath}: rootVolumeInitialization sets a rate for the root volume of ${this.node.path} (${this.rootDeviceName}), but machineImage is another image. `
        + 'Remove rootVolumeInitialization, or leave machineImage to this image.', scope);
    }
    const rateMiBs = ownImage ? rootVolumeInitialization?.rate?.toMebibytes() : undefined;
    if (rateMiBs !== undefined && this.fastSnapshotRestoreZones.length > 0) {
      Annotations.of(scope).addWarningV2('cdk-baked-image:rateOverridesFastSnapshotRestore',
        `${templatePath}: rootVolumeInitialization sets ${rateMiBs} MiB/s, but ${this.node.path} has fast snapshot restore in `
        + `${this.fastSnapshotRestoreZones.join(', ')}: EBS initializes a volume with a rate at that rate instead of by fast snapshot restore. `
        + 'Leave rootVolumeInitialization out (lazy) to use fast snapshot restore.');
    }
    const root = rateMiBs !== undefined ? mapRootVolume(scope, templatePath, this.rootDeviceName, templateProps.blockDevices) : undefined;
    const template = new ec2.LaunchTemplate(scope, id, {
      requireImdsv2: true,
      ...templateProps,
      blockDevices: root?.blockDevices ?? templateProps.blockDevices,
      machineImage: templateProps.machineImage ?? this,
      // Without feature flags a launch template takes no user data from its image, and a group with
      // `init` then refuses it: the group adds its cfn-init call to this user data.
      userData: templateProps.userData ?? ec2.UserData.forOperatingSystem(this.osType),
      role: templateProps.role ?? new iam.Role(scope, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        description: `Instances launched from ${this.node.path}: the launch-time cfn-init and cfn-signal run with it`,
      }),
    });
    if (root && rateMiBs !== undefined) {
      setVolumeInitializationRate(template, root.index, rateMiBs);
    }
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
   *
   * @returns the grant; calling it again returns the same grant and adds nothing
   */
  public grantLaunchToAutoScaling(): iam.Grant {
    if (!this.volumeEncryptionKey) {
      return iam.Grant.drop(new iam.ServicePrincipal('autoscaling.amazonaws.com'), 'launch an image encrypted with the AWS managed key aws/ebs');
    }
    this.autoScalingGrant ??= grantKeyToAutoScaling(this, this.volumeEncryptionKey);
    return this.autoScalingGrant;
  }

  /**
   * The id of the image in a region: the copy's for a region of `copies`, the image's own for the
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
      throw validationError('BakedImageNoCopy',
        `${this.node.path} has no copy in '${region}': its copies are in ${this.copyRegions.length > 0 ? this.copyRegions.map((r) => `'${r}'`).join(', ') : 'no region'}`, this);
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
