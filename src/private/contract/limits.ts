/**
 * The limits and defaults of the bake, each written once: the construct checks inputs against them at synth
 * time, and the handlers check the properties they receive against the same values.
 *
 * Most are EC2's, CloudFormation's or SSM's own limits; the reference each comes from is named beside it.
 */

/** A bake may take at most this long: a CloudFormation custom resource waits at most one hour, less margin. */
export const MAX_BAKE_TIMEOUT_SECONDS = 50 * 60;

/** bakeTimeout when none is given: the most a custom resource allows. */
export const DEFAULT_BAKE_TIMEOUT_SECONDS = MAX_BAKE_TIMEOUT_SECONDS;

/** The shortest bakeTimeout and validation timeout: EC2 takes longer than this to do anything. */
export const MIN_TIMEOUT_SECONDS = 60;

/** CloudFormation waits at most 12 hours for a CreationPolicy signal (the builder's init). */
export const MAX_SIGNAL_TIMEOUT_SECONDS = 12 * 3600;

/** EC2's range for an image's deprecation time (EnableImageDeprecation): 1 minute (in practice) to 10 years. */
export const MIN_DEPRECATE_AFTER_SECONDS = 60;
export const MAX_DEPRECATE_AFTER_SECONDS = 10 * 365 * 24 * 3600;

/** EC2 accepts AMI descriptions of at most 255 characters (CreateImage). */
export const MAX_DESCRIPTION_LENGTH = 255;

/** EC2 takes at most 16 KB of user data, before base64 (RunInstances). */
export const MAX_USER_DATA_BYTES = 16 * 1024;

/** The most superseded images a BakedImage may keep. */
export const MAX_KEEP_SUPERSEDED = 50;

/** EC2 accepts tag values of at most 256 characters. */
export const MAX_TAG_VALUE_LENGTH = 256;

/** Length of the fingerprint the handler appends to the name prefix (plus one '-' separator). */
export const NAME_FINGERPRINT_LENGTH = 16;

/** EC2 accepts AMI names of 3 to 128 characters (CreateImage). */
export const MAX_IMAGE_NAME_LENGTH = 128;

/** The longest name prefix that still leaves room for '-' and the fingerprint. */
export const MAX_NAME_PREFIX_LENGTH = MAX_IMAGE_NAME_LENGTH - NAME_FINGERPRINT_LENGTH - 1;

/** Characters EC2 accepts in an AMI name: letters, digits, ( ) [ ] . / - ' @ _ and space. */
export const IMAGE_NAME_PATTERN = /^[A-Za-z0-9()[\]./\-'@_ ]+$/;

/** An AWS account id. */
export const ACCOUNT_ID_PATTERN = /^\d{12}$/;

/** arn:PARTITION:organizations::MANAGEMENT_ACCOUNT:organization/o-xxxxxxxxxx */
export const ORGANIZATION_ARN_PATTERN = /^arn:aws[a-z-]*:organizations::\d{12}:organization\/o-[a-z0-9]{10,32}$/;

/** arn:PARTITION:organizations::MANAGEMENT_ACCOUNT:ou/o-xxxxxxxxxx/ou-xxxx-xxxxxxxx */
export const ORGANIZATIONAL_UNIT_ARN_PATTERN = /^arn:aws[a-z-]*:organizations::\d{12}:ou\/o-[a-z0-9]{10,32}\/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$/;

/** An AWS Region name: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-5`. */
export const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/**
 * An Availability Zone name, as EnableFastSnapshotRestores takes it: `us-east-1a`, `ap-southeast-5b` (the pattern
 * of Amazon Data Lifecycle Manager's FastRestoreRule, which enables the same fast snapshot restore).
 */
export const AVAILABILITY_ZONE_PATTERN = /^([a-z]+-){2,3}\d[a-z]$/;

/** At most this many Availability Zones for fast snapshot restore (FastRestoreRule's limit). */
export const MAX_FAST_SNAPSHOT_RESTORE_ZONES = 10;

/** EBS enables fast snapshot restore for at most this many snapshots per Region by default (Amazon EBS User Guide). */
export const FAST_SNAPSHOT_RESTORE_SNAPSHOTS_PER_REGION = 5;

/** Images of one stack with fast snapshot restore that fit the default quota, each needing two snapshots during a rebake. */
export const FAST_SNAPSHOT_RESTORE_IMAGES_PER_QUOTA = Math.floor(FAST_SNAPSHOT_RESTORE_SNAPSHOTS_PER_REGION / 2);

/**
 * Fast snapshot restore's price: one DSU-hour per snapshot and Availability Zone while enabled, billed per minute with
 * a one-hour minimum, USD 0.75 in us-east-1 ("How AWS Pricing Works", Amazon EBS; prices vary by region).
 */
export const FAST_SNAPSHOT_RESTORE_USD_PER_DSU_HOUR = 0.75;

/** A KMS key ARN (copies name their key by ARN: a key id or alias means nothing in another region). */
export const KMS_KEY_ARN_PATTERN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;

/** A security group id. */
export const SECURITY_GROUP_ID_PATTERN = /^sg-[0-9a-f]+$/;

/**
 * An SSM parameter name (PutParameter): at most 1011 letters, digits and _ . - /, not starting with aws or
 * ssm in any case.
 */
export const PARAMETER_NAME_PATTERN = /^(?!\/?(aws|ssm))[a-zA-Z0-9_.\-/]{1,1011}$/i;

/** What each list of the sharing holds, for error messages on both sides. */
export const SHARING_LISTS = {
  accounts: { pattern: ACCOUNT_ID_PATTERN, what: '12-digit account ids' },
  organizationArns: { pattern: ORGANIZATION_ARN_PATTERN, what: 'organization ARNs (arn:aws:organizations::111122223333:organization/o-...)' },
  organizationalUnitArns: {
    pattern: ORGANIZATIONAL_UNIT_ARN_PATTERN,
    what: 'organizational unit ARNs (arn:aws:organizations::111122223333:ou/o-.../ou-...)',
  },
} as const;
