import { createHash } from 'crypto';
import {
  AVAILABILITY_ZONE_PATTERN,
  KMS_KEY_ARN_PATTERN,
  MAX_KEEP_SUPERSEDED,
  NAME_FINGERPRINT_LENGTH,
  PARAMETER_NAME_PATTERN,
  REGION_PATTERN,
  SECURITY_GROUP_ID_PATTERN,
  SHARING_LISTS,
} from './limits';
import { Prop } from './names';
import { BuilderAfterBake } from '../../builder-after-bake';

/**
 * What a BakedImage asks its handlers to do, typed: the construct encodes it into the custom resource's
 * properties (`encodeProperties`), and the handlers decode those properties back (`decodeProperties`).
 * CloudFormation turns every value into a string on the way, and hands the previous properties back on an
 * Update, so the decoder accepts anything an earlier version of the construct wrote.
 */
export interface BakeSpec {
  /** The builder instance the image is created from. */
  readonly instanceId: string;
  /** Prefix of the AMI name; the handler appends a fingerprint of the image inputs. */
  readonly namePrefix: string;
  /** The AMI description. */
  readonly description?: string;
  /** Capture without rebooting the builder (no file-system consistency guarantee). */
  readonly noReboot: boolean;
  /** Free-form value; a change bakes a new image from a fresh builder. */
  readonly rebakeTrigger?: string;
  /** What happens to the image and its snapshots on Delete. */
  readonly removal: Removal;
  /** What happens to the builder once the image is available. */
  readonly builderAfterBake: BuilderAfterBake;
  /** Seconds the image (and its copies) may take to become available. */
  readonly bakeTimeoutSeconds?: number;
  /** Who may launch the image besides this account. */
  readonly sharing: Sharing;
  /** Seconds after creation at which the image is deprecated; undefined: never. */
  readonly deprecateAfterSeconds?: number;
  /** Whether the image is protected from deregistration (the stack's Delete lifts it first). */
  readonly deregistrationProtection: boolean;
  /**
   * Whether the image and its copies are made IMDSv2-only (ImdsSupport v2.0) once available. Not an image input
   * here: EC2 cannot undo it, so the construct replaces the builder when it is turned off (its user data records it).
   */
  readonly requireImdsv2: boolean;
  /**
   * Availability Zones of the stack's region where the image's snapshots get fast snapshot restore once it is
   * available; disabled again when the image is superseded but kept (and automatically when its snapshots go).
   */
  readonly fastSnapshotRestoreZones: string[];
  /** How many superseded images to keep after a replacement. */
  readonly keepSuperseded: number;
  /** The regions the image is copied to, besides its own. */
  readonly copyToRegions: string[];
  /** KMS key ARNs that encrypt the copies, by region (absent: the region's default EBS key). */
  readonly copyKmsKeyIds: Record<string, string>;
  /** The SSM parameter each copy's id is written to, in the copy's region; undefined: none. */
  readonly copyParameterName?: string;
  /** The test the image must pass before the bake completes; undefined: none. */
  readonly validation?: ValidationSpec;
  /** What the image is made of, for its manifest tags. */
  readonly manifest: Manifest;
}

/** The spec as the handlers see it: decoded, with the validation's fingerprint worked out. */
export interface BakeProperties extends Omit<BakeSpec, 'validation'> {
  readonly validation?: Validation;
}

/**
 * What happens to the image on Delete: the values of aws-cdk-lib's `RemovalPolicy.DESTROY` and
 * `RemovalPolicy.RETAIN`, which the construct writes as they are.
 */
export const RemovalMode = {
  DESTROY: 'destroy',
  RETAIN: 'retain',
} as const;

/** One of RemovalMode. */
export type Removal = (typeof RemovalMode)[keyof typeof RemovalMode];

/** How the image is tested before the bake completes. */
export interface ValidationSpec {
  /** The test instance's user data: a bash script that reports on the serial console. */
  readonly userData: string;
  readonly timeoutSeconds: number;
  readonly instanceType: string;
  readonly subnetId: string;
  readonly securityGroupIds: string[];
}

/** A validation, decoded. */
export interface Validation extends ValidationSpec {
  /** Identifies this validation: an image that passed it is not tested again. */
  readonly fingerprint: string;
}

/** What an image is made of: recorded as tags on the image and its snapshots. */
export interface Manifest {
  readonly baseImageId?: string;
  readonly configSets?: string;
  readonly initFingerprint?: string;
  readonly libraryVersion?: string;
}

/** Launch permissions of an image: the same three lists as the construct's `shareWith`. */
export interface Sharing {
  readonly accounts: string[];
  readonly organizationArns: string[];
  readonly organizationalUnitArns: string[];
}

/**
 * The inputs that shape the image, by their spec field and property name: a change of any of them is a
 * different image (an Update bakes anew), and they make the AMI name's fingerprint. Everything else (removal,
 * builder handling, sharing, copies, ...) is applied to the existing image without a rebake.
 *
 * The construct puts the same inputs, but the instance id, into the builder's user data: a change of any of
 * them replaces the builder, and the new instance id reaches the handler.
 */
export const IMAGE_INPUTS = {
  instanceId: Prop.INSTANCE_ID,
  namePrefix: Prop.NAME_PREFIX,
  description: Prop.DESCRIPTION,
  noReboot: Prop.NO_REBOOT,
  rebakeTrigger: Prop.REBAKE_TRIGGER,
} as const;

/** The image inputs of a spec, in IMAGE_INPUTS order, absent ones as '' (or false). */
export function imageInputs(spec: Pick<BakeSpec, keyof typeof IMAGE_INPUTS>): Record<keyof typeof IMAGE_INPUTS, string | boolean> {
  return {
    instanceId: spec.instanceId,
    namePrefix: spec.namePrefix,
    description: spec.description ?? '',
    noReboot: spec.noReboot,
    rebakeTrigger: spec.rebakeTrigger ?? '',
  };
}

/**
 * The AMI name for a set of image inputs: `<prefix>-<fingerprint of the other inputs>`.
 *
 * Deterministic, so that a retried Create, or a rollback that asks again for an image that still exists, finds
 * the image it already made instead of making a second one. The builder's instance id makes it unique per builder.
 */
export function imageName(spec: Pick<BakeSpec, keyof typeof IMAGE_INPUTS>): string {
  const { namePrefix, ...others } = imageInputs(spec);
  const fingerprint = createHash('sha256').update(JSON.stringify(Object.values(others))).digest('hex').slice(0, NAME_FINGERPRINT_LENGTH);
  return `${namePrefix}-${fingerprint}`;
}

/** True when a sharing lists anybody: one account, organization or unit. Missing lists count as empty. */
export function sharesWithAnyone(sharing: { readonly [list in keyof Sharing]?: readonly unknown[] } | undefined): boolean {
  return (sharing?.accounts?.length ?? 0) + (sharing?.organizationArns?.length ?? 0) + (sharing?.organizationalUnitArns?.length ?? 0) > 0;
}

/** The custom resource's properties for a spec: what the construct writes. */
export function encodeProperties(spec: BakeSpec): Record<string, unknown> {
  const validation = spec.validation;
  return {
    [Prop.INSTANCE_ID]: spec.instanceId,
    [Prop.NAME_PREFIX]: spec.namePrefix,
    [Prop.DESCRIPTION]: spec.description ?? '',
    [Prop.NO_REBOOT]: String(spec.noReboot),
    [Prop.REBAKE_TRIGGER]: spec.rebakeTrigger ?? '',
    [Prop.REMOVAL]: spec.removal,
    [Prop.BUILDER_AFTER_BAKE]: spec.builderAfterBake,
    ...(spec.bakeTimeoutSeconds !== undefined ? { [Prop.BAKE_TIMEOUT_SECONDS]: String(spec.bakeTimeoutSeconds) } : {}),
    [Prop.SHARE_ACCOUNTS]: spec.sharing.accounts,
    [Prop.SHARE_ORGANIZATIONS]: spec.sharing.organizationArns,
    [Prop.SHARE_ORGANIZATIONAL_UNITS]: spec.sharing.organizationalUnitArns,
    ...(spec.deprecateAfterSeconds !== undefined ? { [Prop.DEPRECATE_AFTER_SECONDS]: String(spec.deprecateAfterSeconds) } : {}),
    [Prop.DEREGISTRATION_PROTECTION]: String(spec.deregistrationProtection),
    [Prop.REQUIRE_IMDSV2]: String(spec.requireImdsv2),
    ...(spec.fastSnapshotRestoreZones.length > 0 ? { [Prop.FAST_SNAPSHOT_RESTORE_ZONES]: spec.fastSnapshotRestoreZones } : {}),
    [Prop.KEEP_SUPERSEDED]: String(spec.keepSuperseded),
    ...(validation ? {
      [Prop.VALIDATION_USER_DATA]: validation.userData,
      [Prop.VALIDATION_TIMEOUT_SECONDS]: String(validation.timeoutSeconds),
      [Prop.VALIDATION_INSTANCE_TYPE]: validation.instanceType,
      [Prop.VALIDATION_SUBNET_ID]: validation.subnetId,
      [Prop.VALIDATION_SECURITY_GROUP_IDS]: validation.securityGroupIds,
    } : {}),
    ...(spec.copyToRegions.length > 0 ? {
      [Prop.COPY_TO_REGIONS]: spec.copyToRegions,
      [Prop.COPY_KMS_KEYS]: spec.copyKmsKeyIds,
    } : {}),
    ...(spec.copyParameterName !== undefined ? { [Prop.COPY_IMAGE_ID_PARAMETER_NAME]: spec.copyParameterName } : {}),
    ...(spec.manifest.baseImageId !== undefined ? { [Prop.BASE_IMAGE_ID]: spec.manifest.baseImageId } : {}),
    ...(spec.manifest.configSets !== undefined ? { [Prop.CONFIG_SETS]: spec.manifest.configSets } : {}),
    ...(spec.manifest.initFingerprint !== undefined ? { [Prop.INIT_FINGERPRINT]: spec.manifest.initFingerprint } : {}),
    ...(spec.manifest.libraryVersion !== undefined ? { [Prop.LIBRARY_VERSION]: spec.manifest.libraryVersion } : {}),
  };
}

/** Thrown for properties the construct would never write: the message goes to the CloudFormation event. */
export class InvalidPropertiesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidPropertiesError';
  }
}

/** Decodes the custom resource's properties at the boundary: strings in, typed values out, defaults applied. */
export function decodeProperties(props: Record<string, unknown>): BakeProperties {
  return {
    instanceId: requiredString(props, Prop.INSTANCE_ID),
    namePrefix: requiredString(props, Prop.NAME_PREFIX),
    description: optionalString(props, Prop.DESCRIPTION),
    noReboot: parseBoolean(props, Prop.NO_REBOOT),
    rebakeTrigger: optionalString(props, Prop.REBAKE_TRIGGER),
    removal: oneOf(props, Prop.REMOVAL, RemovalMode, RemovalMode.DESTROY),
    builderAfterBake: oneOf(props, Prop.BUILDER_AFTER_BAKE, BuilderAfterBake, BuilderAfterBake.STOP),
    bakeTimeoutSeconds: parsePositiveInteger(props, Prop.BAKE_TIMEOUT_SECONDS),
    sharing: decodeSharing(props),
    deprecateAfterSeconds: parsePositiveInteger(props, Prop.DEPRECATE_AFTER_SECONDS),
    keepSuperseded: parseCount(props, Prop.KEEP_SUPERSEDED),
    deregistrationProtection: parseBoolean(props, Prop.DEREGISTRATION_PROTECTION),
    requireImdsv2: parseBoolean(props, Prop.REQUIRE_IMDSV2),
    fastSnapshotRestoreZones: decodeFastSnapshotRestoreZones(props),
    copyToRegions: decodeCopyRegions(props),
    copyKmsKeyIds: decodeCopyKeys(props),
    copyParameterName: decodeCopyParameterName(props),
    validation: decodeValidation(props),
    manifest: {
      baseImageId: optionalString(props, Prop.BASE_IMAGE_ID),
      configSets: optionalString(props, Prop.CONFIG_SETS),
      initFingerprint: optionalString(props, Prop.INIT_FINGERPRINT),
      libraryVersion: optionalString(props, Prop.LIBRARY_VERSION),
    },
  };
}

/**
 * True when an Update asks for a different image: an image input changed. Values are compared as
 * CloudFormation delivers them (strings), absent and empty being the same.
 */
export function imageInputsChanged(oldProps: Record<string, unknown>, newProps: Record<string, unknown>): boolean {
  return Object.values(IMAGE_INPUTS).some((name) => (optionalString(oldProps, name) ?? '') !== (optionalString(newProps, name) ?? ''));
}

/** The regions a set of properties copies the image to (none when it names none). */
export function decodeCopyRegions(props: Record<string, unknown>): string[] {
  return stringList(props, Prop.COPY_TO_REGIONS, REGION_PATTERN, 'region names (us-west-2)');
}

/** The SSM parameter a set of properties writes each copy's id to, in the copy's region (undefined: none). */
export function decodeCopyParameterName(props: Record<string, unknown>): string | undefined {
  const name = optionalString(props, Prop.COPY_IMAGE_ID_PARAMETER_NAME);
  if (name !== undefined && !PARAMETER_NAME_PATTERN.test(name)) {
    throw new InvalidPropertiesError(
      `Property ${Prop.COPY_IMAGE_ID_PARAMETER_NAME} must be an SSM parameter name of letters, digits and _ . - /, not starting with aws or ssm, got '${name}'`);
  }
  return name;
}

/** The Availability Zones a set of properties enables fast snapshot restore in (none when it names none). */
export function decodeFastSnapshotRestoreZones(props: Record<string, unknown>): string[] {
  return stringList(props, Prop.FAST_SNAPSHOT_RESTORE_ZONES, AVAILABILITY_ZONE_PATTERN, 'Availability Zone names (us-east-1a)');
}

/** The launch permissions a set of properties asks for (none when the properties carry none). */
export function decodeSharing(props: Record<string, unknown>): Sharing {
  const list = (name: string, kind: keyof Sharing) => stringList(props, name, SHARING_LISTS[kind].pattern, SHARING_LISTS[kind].what);
  return {
    accounts: list(Prop.SHARE_ACCOUNTS, 'accounts'),
    organizationArns: list(Prop.SHARE_ORGANIZATIONS, 'organizationArns'),
    organizationalUnitArns: list(Prop.SHARE_ORGANIZATIONAL_UNITS, 'organizationalUnitArns'),
  };
}

function decodeValidation(props: Record<string, unknown>): Validation | undefined {
  const userData = optionalString(props, Prop.VALIDATION_USER_DATA);
  if (userData === undefined) {
    return undefined;
  }
  const spec: ValidationSpec = {
    userData,
    timeoutSeconds: parsePositiveInteger(props, Prop.VALIDATION_TIMEOUT_SECONDS, true)!,
    instanceType: requiredString(props, Prop.VALIDATION_INSTANCE_TYPE),
    subnetId: requiredString(props, Prop.VALIDATION_SUBNET_ID),
    securityGroupIds: stringList(props, Prop.VALIDATION_SECURITY_GROUP_IDS, SECURITY_GROUP_ID_PATTERN, 'security group ids'),
  };
  const fingerprint = createHash('sha256').update(JSON.stringify([spec.userData, spec.timeoutSeconds, spec.instanceType])).digest('hex').slice(0, 16);
  return { ...spec, fingerprint };
}

function decodeCopyKeys(props: Record<string, unknown>): Record<string, string> {
  const value = props[Prop.COPY_KMS_KEYS];
  if (value === undefined || value === null || value === '') {
    return {};
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidPropertiesError(`Property ${Prop.COPY_KMS_KEYS} must map region names to KMS key ARNs, got ${Array.isArray(value) ? 'a list' : typeof value}`);
  }
  const keys: Record<string, string> = {};
  for (const [region, arn] of Object.entries(value as Record<string, unknown>)) {
    if (!REGION_PATTERN.test(region) || typeof arn !== 'string' || !KMS_KEY_ARN_PATTERN.test(arn) || arn.split(':')[3] !== region) {
      throw new InvalidPropertiesError(`Property ${Prop.COPY_KMS_KEYS} must map each region to the ARN of a KMS key in that region, got ${region}: '${String(arn)}'`);
    }
    keys[region] = arn;
  }
  return keys;
}

function optionalString(props: Record<string, unknown>, name: string): string | undefined {
  const value = props[name];
  if (value === undefined || value === null || value === '') {
    return undefined;
  }
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
    throw new InvalidPropertiesError(`Property ${name} must be a string, got ${typeof value}`);
  }
  return String(value);
}

function requiredString(props: Record<string, unknown>, name: string): string {
  const value = optionalString(props, name);
  if (value === undefined) {
    throw new InvalidPropertiesError(`Property ${name} is required`);
  }
  return value;
}

function oneOf<T extends string>(props: Record<string, unknown>, name: string, allowed: Record<string, T>, fallback: T): T {
  const value = optionalString(props, name);
  if (value === undefined) {
    return fallback;
  }
  const values = Object.values(allowed);
  if (!values.includes(value as T)) {
    throw new InvalidPropertiesError(`Property ${name} must be one of ${values.join(', ')}, got '${value}'`);
  }
  return value as T;
}

function parseBoolean(props: Record<string, unknown>, name: string): boolean {
  const value = optionalString(props, name);
  if (value === undefined) {
    return false;
  }
  if (value !== 'true' && value !== 'false') {
    throw new InvalidPropertiesError(`Property ${name} must be 'true' or 'false', got '${value}'`);
  }
  return value === 'true';
}

function parseCount(props: Record<string, unknown>, name: string): number {
  const value = optionalString(props, name);
  if (value === undefined) {
    return 0;
  }
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > MAX_KEEP_SUPERSEDED) {
    throw new InvalidPropertiesError(`Property ${name} must be a whole number from 0 to ${MAX_KEEP_SUPERSEDED}, got '${value}'`);
  }
  return parsed;
}

function parsePositiveInteger(props: Record<string, unknown>, name: string, required = false): number | undefined {
  const value = required ? requiredString(props, name) : optionalString(props, name);
  if (value === undefined) {
    return undefined;
  }
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) {
    throw new InvalidPropertiesError(`Property ${name} must be a positive whole number of seconds, got '${value}'`);
  }
  return parsed;
}

function stringList(props: Record<string, unknown>, name: string, pattern: RegExp, what: string): string[] {
  const value = props[name];
  if (value === undefined || value === null || value === '') {
    return [];
  }
  if (!Array.isArray(value)) {
    throw new InvalidPropertiesError(`Property ${name} must be a list of ${what}, got ${typeof value}`);
  }
  const items = value.map(String);
  const bad = items.filter((item) => !pattern.test(item));
  if (bad.length > 0) {
    throw new InvalidPropertiesError(`Property ${name} must list ${what}, got '${bad.join("', '")}'`);
  }
  return [...new Set(items)];
}
