/**
 * The names on the wire between the BakedImage construct and its handlers: the custom resource's
 * properties and attributes, the tags the handlers set, and the markers of the scripts they run.
 *
 * Property names are a contract with every deployed stack (CloudFormation hands the old properties back on
 * an Update): rename one only with a decoder that still reads the old name.
 */

/** Names of the custom resource's properties (ResourceProperties). */
export const Prop = {
  /** The builder instance the image is created from. */
  INSTANCE_ID: 'InstanceId',
  /** Prefix of the AMI name; the handler appends a fingerprint of the image inputs. */
  NAME_PREFIX: 'NamePrefix',
  /** AMI description. */
  DESCRIPTION: 'Description',
  /** 'true' to skip the reboot before the snapshot (no file-system consistency guarantee). */
  NO_REBOOT: 'NoReboot',
  /** Free-form value; a change bakes a new image from a fresh builder. */
  REBAKE_TRIGGER: 'RebakeTrigger',
  /** What happens to the image and its snapshots on Delete: one of RemovalMode (spec.ts). */
  REMOVAL: 'Removal',
  /** What happens to the builder once the image is available: one of BuilderAfterBake. */
  BUILDER_AFTER_BAKE: 'BuilderAfterBake',
  /** Seconds an image may stay pending before the bake is failed. */
  BAKE_TIMEOUT_SECONDS: 'BakeTimeoutSeconds',
  /** Account ids the image is shared with (launch permissions); a list. */
  SHARE_ACCOUNTS: 'ShareWithAccounts',
  /** Organization ARNs the image is shared with; a list. */
  SHARE_ORGANIZATIONS: 'ShareWithOrganizations',
  /** Organizational unit ARNs the image is shared with; a list. */
  SHARE_ORGANIZATIONAL_UNITS: 'ShareWithOrganizationalUnits',
  /** Seconds after its creation at which the image is deprecated; absent: never. */
  DEPRECATE_AFTER_SECONDS: 'DeprecateAfterSeconds',
  /** 'true' to protect the image from deregistration (the Delete lifts it first). */
  DEREGISTRATION_PROTECTION: 'DeregistrationProtection',
  /**
   * 'true' to make the image and its copies IMDSv2-only (ImdsSupport v2.0) once available; absent: 'false' (the
   * constructs before it never asked). EC2 cannot undo it: the construct bakes a new image when it is turned off.
   */
  REQUIRE_IMDSV2: 'RequireImdsv2',
  /** Availability Zones of the stack's region where the image's snapshots get fast snapshot restore; a list. */
  FAST_SNAPSHOT_RESTORE_ZONES: 'FastSnapshotRestoreZones',
  /** How many superseded images of this resource to keep after a replacement; '0' or absent: none. */
  KEEP_SUPERSEDED: 'KeepSupersededImages',
  /** Regions the image is copied to once available; a list. */
  COPY_TO_REGIONS: 'CopyToRegions',
  /** KMS key ARNs that encrypt the copies, by region; an object. Regions not listed use their default EBS key. */
  COPY_KMS_KEYS: 'CopyKmsKeyIds',
  /**
   * The SSM parameter each copy's id is written to, in the copy's region (data type aws:ec2:image); absent: none.
   * The stack's own region has its parameter as a CloudFormation resource.
   */
  COPY_IMAGE_ID_PARAMETER_NAME: 'CopyImageIdParameterName',
  /** Validation: the user data of the test instance (a bash script); absent: no validation. */
  VALIDATION_USER_DATA: 'ValidationUserData',
  /** Validation: seconds the test may run, from the test instance's launch. */
  VALIDATION_TIMEOUT_SECONDS: 'ValidationTimeoutSeconds',
  /** Validation: the test instance's type. */
  VALIDATION_INSTANCE_TYPE: 'ValidationInstanceType',
  /** Validation: the subnet the test instance runs in (the builder's). */
  VALIDATION_SUBNET_ID: 'ValidationSubnetId',
  /** Validation: the security groups of the test instance (the builder's); a list. */
  VALIDATION_SECURITY_GROUP_IDS: 'ValidationSecurityGroupIds',
  /** Manifest: the base image the builder started from. */
  BASE_IMAGE_ID: 'BaseImageId',
  /** Manifest: the config sets the builder ran, space-separated. */
  CONFIG_SETS: 'ConfigSets',
  /** Manifest: a fingerprint of the builder's cfn-init metadata. */
  INIT_FINGERPRINT: 'InitFingerprint',
  /** Manifest: the version of cdk-baked-image that defined the bake. */
  LIBRARY_VERSION: 'LibraryVersion',
} as const;

/** Attributes the custom resource returns (Fn::GetAtt). */
export const Attr = {
  IMAGE_ID: 'ImageId',
  IMAGE_NAME: 'ImageName',
  /**
   * When onEvent started this request's work (ISO 8601). The provider framework hands onEvent's Data to every
   * isComplete of the request: bakeTimeout and the other deadlines count from it, not from the image's creation.
   */
  REQUEST_STARTED_AT: 'RequestStartedAt',
  /** Delete: snapshots EC2 still reported in use after their image was deregistered, `region/snap-...` space-separated. */
  SNAPSHOTS_IN_USE: 'SnapshotsInUse',
} as const;

/** The attribute that holds the id of the image's copy in a region: `ImageId.eu-west-1`. */
export function copyImageIdAttribute(region: string): string {
  return `${Attr.IMAGE_ID}.${region}`;
}

/** Tag keys set on every image and snapshot the handlers create. */
export const Tag = {
  MANAGED_BY: 'cdk-baked-image:managed-by',
  STACK_NAME: 'cdk-baked-image:stack-name',
  STACK_ID: 'cdk-baked-image:stack-id',
  LOGICAL_ID: 'cdk-baked-image:logical-id',
  /** The AMI name, also on the snapshots: a Delete retried after the image is gone still finds them. */
  IMAGE_NAME: 'cdk-baked-image:image-name',
  /** Manifest tags: what the image is made of. */
  BASE_IMAGE: 'cdk-baked-image:base-image',
  CONFIG_SETS: 'cdk-baked-image:config-sets',
  INIT_FINGERPRINT: 'cdk-baked-image:init-fingerprint',
  VERSION: 'cdk-baked-image:version',
  BAKED_AT: 'cdk-baked-image:baked-at',
  /**
   * On an image: the regions it was ever copied to, space-separated. A Delete looks for copies there as well
   * as in the regions its properties list, which may have changed since.
   */
  COPY_REGIONS: 'cdk-baked-image:copy-regions',
  /** On a copy: `<region>/<image id>` of the image it was copied from. */
  COPIED_FROM: 'cdk-baked-image:copied-from',
  /** On an image: the fingerprint of the validation it passed. */
  VALIDATED: 'cdk-baked-image:validated',
  /** On a test instance: the image it validates. */
  VALIDATES: 'cdk-baked-image:validates',
  /** On a test instance: the CloudFormation request it was launched for. */
  VALIDATION_REQUEST: 'cdk-baked-image:validation-request',
} as const;

/** Validation report lines on the test instance's console: `<prefix>| <output line>`, and `<prefix>: exit <code>` last. */
export const VALIDATION_REPORT_PREFIX = 'cdk-baked-image-validation';

/** The line that marks the test instance's user data as a validation script. */
export const VALIDATION_MARKER = '# cdk-baked-image: image validation';

/** The end of the here-document that carries the user's validation script. */
export const VALIDATION_HEREDOC_END = 'CDK_BAKED_IMAGE_VALIDATION_EOF';

/** Where the builder writes the manifest, inside the image. */
export const MANIFEST_DIRECTORY = '/etc/baked-image';

/** Value of Tag.MANAGED_BY. */
export const MANAGED_BY_VALUE = 'cdk-baked-image';
