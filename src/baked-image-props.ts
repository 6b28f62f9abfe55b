import { Duration, RemovalPolicy, Size } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { BuilderAfterBake } from './builder-after-bake';
import { Sanitize } from './sanitize';
import { ImageValidation } from './validation';

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
 * A copy of the baked image in another region.
 */
export interface ImageCopy {
  /**
   * The region of the copy: a literal region name (it names the custom resource's attribute that
   * `imageIdForRegion` reads), not the stack's own region.
   */
  readonly region: string;

  /**
   * The KMS key that encrypts the copy: a key of the copy's region, by ARN (for example
   * `kms.Key.fromKeyArn(this, 'EuKey', 'arn:aws:kms:eu-west-1:...')`, or a multi-Region replica). The
   * provider's role is granted its use. A copy encrypted with its region's default EBS key cannot be shared.
   *
   * @default - the region's default EBS key (`aws/ebs`)
   */
  readonly encryptionKey?: kms.IKey;
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
   * `AmazonSSMManagedInstanceCore` managed policy on the builder's role, as `ec2.Instance`'s prop of the
   * same name does.
   *
   * @default false
   */
  readonly ssmSessionPermissions?: boolean;

  /**
   * A prefix of the AMI name. The final name is the prefix, a dash and a 16-character fingerprint of
   * the image inputs: unique per builder and the same when a request is retried.
   *
   * At most 111 characters of letters, digits, spaces and `( ) [ ] . / - ' @ _`.
   *
   * @default - derived from the construct path
   */
  readonly imageNamePrefix?: string;

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
   * Make the image, and each of its copies, IMDSv2-only once it is available (`ImdsSupport` `v2.0`):
   * instances launched from it require IMDSv2 by default (`HttpTokens` required, hop limit 2) when their
   * launch template or `RunInstances` call says nothing about metadata options. Explicit metadata options
   * at launch, and an account-level default of `optional`, still win; enforce IMDSv2 account-wide with
   * EC2's own controls. The builder already ran the baked software with IMDSv2 required, so the software
   * is known to work with it.
   *
   * EC2 cannot take the attribute back from an image: setting this to `false` replaces the builder and
   * bakes a new image without it (and setting it to `true` again bakes another one). An image made from a
   * base image that has the attribute (Amazon Linux 2023's do) keeps it even then; the handler logs a
   * warning, and instances need `HttpTokens` optional at launch to use IMDSv1. An image of an earlier
   * version of this library, which did not set it, is made IMDSv2-only in place by the first deploy with
   * this version: its builder is not replaced.
   *
   * @default true
   */
  readonly requireImdsv2?: boolean;

  /**
   * Availability Zones of the stack's region (such as `us-east-1a`) where the image's snapshots get EBS
   * fast snapshot restore once the image is available: volumes created there from the image deliver their
   * full performance at once, without lazy loading from S3, within the snapshot's volume creation credits
   * (for a snapshot of S GiB, a bucket of MAX(1, MIN(10, 1024 / S)) credits per zone, refilled at
   * MIN(10, 1024 / S) per hour, empty when enabled).
   *
   * It costs while it is enabled, whether instances launch or not: one DSU-hour per snapshot and zone,
   * billed per minute with a one-hour minimum, USD 0.75 in us-east-1 (USD 540 per 30 days per zone; see
   * the Amazon EBS pricing page for other regions). A synth-time warning says so. EBS enables it for at
   * most 5 snapshots per Region by default, and a rebake needs the new image's while the old one's is
   * still on. It is disabled when a superseded image is kept (`keepSupersededImages`) and before an image
   * is deleted. Copies in other regions do not get it, nor do the accounts the image is shared with (it
   * applies to this account only). It cannot be combined with `removalPolicy` RETAIN: a retained image
   * would keep it, and its price, with no stack left to disable it.
   *
   * `newLaunchTemplate()` then leaves the root volume's initialization rate out: EBS initializes a
   * volume with a rate at that rate instead of by fast snapshot restore.
   *
   * @default - no fast snapshot restore
   */
  readonly fastSnapshotRestoreZones?: string[];

  /**
   * Publish the image id to an SSM parameter of this name, of data type `aws:ec2:image` (so that EC2
   * launch templates and instance refresh can resolve it). The parameter follows every rebake and is
   * deleted with the stack.
   *
   * With `copies`, each copy's id is published as well, to a parameter of the same name in the copy's
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
   * Copy the image to other regions once it is available (CopyImage). The bake completes when every copy
   * is available; the copies carry the image's name, description and tags, are shared and deprecated like
   * it, and are deleted with their snapshots when the image is (a shorter list deletes the copies no
   * longer listed, without a rebake). `imageIdForRegion(region)` gives each copy's id.
   *
   * Large images to far regions take a while: the copies count against `bakeTimeout`.
   *
   * @default - no copies
   */
  readonly copies?: ImageCopy[];

  /**
   * How long the bake may take after CreateImage before it fails: the image becoming available, and its
   * copies to other regions. A CloudFormation custom resource can wait at most an hour, so this is at
   * most 50 minutes.
   *
   * @default Duration.minutes(50)
   */
  readonly bakeTimeout?: Duration;
}
