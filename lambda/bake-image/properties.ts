import { createHash } from 'crypto';
import {
  ACCOUNT_ID_PATTERN,
  BuilderMode,
  IMAGE_SHAPING_PROPS,
  KMS_KEY_ARN_PATTERN,
  MAX_KEEP_SUPERSEDED,
  ORGANIZATION_ARN_PATTERN,
  ORGANIZATIONAL_UNIT_ARN_PATTERN,
  PARAMETER_NAME_PATTERN,
  Prop,
  REGION_PATTERN,
  RemovalMode,
} from '../../src/private/contract';

/** ResourceProperties parsed into typed values (CloudFormation delivers every value as a string). */
export interface BakeProperties {
  readonly instanceId: string;
  readonly namePrefix: string;
  readonly description?: string;
  readonly noReboot: boolean;
  readonly rebakeTrigger?: string;
  readonly removal: (typeof RemovalMode)[keyof typeof RemovalMode];
  readonly builderAfterBake: (typeof BuilderMode)[keyof typeof BuilderMode];
  readonly bakeTimeoutSeconds?: number;
  /** Who may launch the image besides this account. */
  readonly sharing: Sharing;
  /** What the image is made of, for its manifest tags. */
  readonly manifest: Manifest;
  /** Seconds after creation at which the image is deprecated. */
  readonly deprecateAfterSeconds?: number;
  /** Whether the image is protected from deregistration. */
  readonly deregistrationProtection: boolean;
  /** How many superseded images to keep after a replacement. */
  readonly keepSuperseded: number;
  /** The regions the image is copied to, besides its own. */
  readonly copyToRegions: string[];
  /** KMS key ARNs that encrypt the copies, by region (absent: the region's default EBS key). */
  readonly copyKmsKeyIds: Record<string, string>;
  /** The SSM parameter each copy's id is written to, in the copy's region; undefined: none. */
  readonly copyParameterName?: string;
  /** The test the image must pass before the bake completes; undefined: none. */
  readonly validation?: Validation;
}

/** How the image is tested before the bake completes. */
export interface Validation {
  /** The test instance's user data: a bash script that reports on the serial console. */
  readonly userData: string;
  readonly timeoutSeconds: number;
  readonly instanceType: string;
  readonly subnetId: string;
  readonly securityGroupIds: string[];
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

/** Launch permissions of an image. */
export interface Sharing {
  readonly accounts: string[];
  readonly organizationArns: string[];
  readonly organizationalUnitArns: string[];
}

/** Thrown for properties the construct would never write: the message goes to the CloudFormation event. */
export class InvalidPropertiesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidPropertiesError';
  }
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

function oneOf<T extends string>(name: string, value: string | undefined, allowed: Record<string, T>, fallback: T): T {
  if (value === undefined) {
    return fallback;
  }
  const values = Object.values(allowed);
  if (!values.includes(value as T)) {
    throw new InvalidPropertiesError(`Property ${name} must be one of ${values.join(', ')}, got '${value}'`);
  }
  return value as T;
}

function parseBoolean(name: string, value: string | undefined): boolean {
  if (value === undefined) {
    return false;
  }
  if (value !== 'true' && value !== 'false') {
    throw new InvalidPropertiesError(`Property ${name} must be 'true' or 'false', got '${value}'`);
  }
  return value === 'true';
}

function parseCount(name: string, value: string | undefined): number {
  if (value === undefined) {
    return 0;
  }
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > MAX_KEEP_SUPERSEDED) {
    throw new InvalidPropertiesError(`Property ${name} must be a whole number from 0 to ${MAX_KEEP_SUPERSEDED}, got '${value}'`);
  }
  return parsed;
}

function parsePositiveInteger(name: string, value: string | undefined): number | undefined {
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

/** Parses the custom resource's properties at the boundary: strings in, typed values out. */
export function parseProperties(props: Record<string, unknown>): BakeProperties {
  return {
    instanceId: requiredString(props, Prop.INSTANCE_ID),
    namePrefix: requiredString(props, Prop.NAME_PREFIX),
    description: optionalString(props, Prop.DESCRIPTION),
    noReboot: parseBoolean(Prop.NO_REBOOT, optionalString(props, Prop.NO_REBOOT)),
    rebakeTrigger: optionalString(props, Prop.REBAKE_TRIGGER),
    removal: oneOf(Prop.REMOVAL, optionalString(props, Prop.REMOVAL), RemovalMode, RemovalMode.DESTROY),
    builderAfterBake: oneOf(Prop.BUILDER_AFTER_BAKE, optionalString(props, Prop.BUILDER_AFTER_BAKE), BuilderMode, BuilderMode.STOP),
    bakeTimeoutSeconds: parsePositiveInteger(Prop.BAKE_TIMEOUT_SECONDS, optionalString(props, Prop.BAKE_TIMEOUT_SECONDS)),
    sharing: parseSharing(props),
    deprecateAfterSeconds: parsePositiveInteger(Prop.DEPRECATE_AFTER_SECONDS, optionalString(props, Prop.DEPRECATE_AFTER_SECONDS)),
    keepSuperseded: parseCount(Prop.KEEP_SUPERSEDED, optionalString(props, Prop.KEEP_SUPERSEDED)),
    deregistrationProtection: parseBoolean(Prop.DEREGISTRATION_PROTECTION, optionalString(props, Prop.DEREGISTRATION_PROTECTION)),
    copyToRegions: parseCopyRegions(props),
    copyKmsKeyIds: parseCopyKeys(props),
    copyParameterName: parseCopyParameterName(props),
    validation: parseValidation(props),
    manifest: {
      baseImageId: optionalString(props, Prop.BASE_IMAGE_ID),
      configSets: optionalString(props, Prop.CONFIG_SETS),
      initFingerprint: optionalString(props, Prop.INIT_FINGERPRINT),
      libraryVersion: optionalString(props, Prop.LIBRARY_VERSION),
    },
  };
}

function parseValidation(props: Record<string, unknown>): Validation | undefined {
  const userData = optionalString(props, Prop.VALIDATION_USER_DATA);
  if (userData === undefined) {
    return undefined;
  }
  const timeoutSeconds = parsePositiveInteger(Prop.VALIDATION_TIMEOUT_SECONDS, requiredString(props, Prop.VALIDATION_TIMEOUT_SECONDS)) ?? 0;
  const instanceType = requiredString(props, Prop.VALIDATION_INSTANCE_TYPE);
  const subnetId = requiredString(props, Prop.VALIDATION_SUBNET_ID);
  const securityGroupIds = stringList(props, Prop.VALIDATION_SECURITY_GROUP_IDS, /^sg-[0-9a-f]+$/, 'security group ids');
  const fingerprint = createHash('sha256').update(JSON.stringify([userData, timeoutSeconds, instanceType])).digest('hex').slice(0, 16);
  return { userData, timeoutSeconds, instanceType, subnetId, securityGroupIds, fingerprint };
}

/** The regions a set of properties copies the image to (none when it names none). */
export function parseCopyRegions(props: Record<string, unknown>): string[] {
  return stringList(props, Prop.COPY_TO_REGIONS, REGION_PATTERN, 'region names (us-west-2)');
}

/** The SSM parameter a set of properties writes each copy's id to, in the copy's region (undefined: none). */
export function parseCopyParameterName(props: Record<string, unknown>): string | undefined {
  const name = optionalString(props, Prop.COPY_IMAGE_ID_PARAMETER_NAME);
  if (name !== undefined && !PARAMETER_NAME_PATTERN.test(name)) {
    throw new InvalidPropertiesError(
      `Property ${Prop.COPY_IMAGE_ID_PARAMETER_NAME} must be an SSM parameter name of letters, digits and _ . - /, not starting with aws or ssm, got '${name}'`);
  }
  return name;
}

function parseCopyKeys(props: Record<string, unknown>): Record<string, string> {
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

/** The launch permissions a set of properties asks for (none when the properties carry none). */
export function parseSharing(props: Record<string, unknown>): Sharing {
  return {
    accounts: stringList(props, Prop.SHARE_ACCOUNTS, ACCOUNT_ID_PATTERN, '12-digit account ids'),
    organizationArns: stringList(props, Prop.SHARE_ORGANIZATIONS, ORGANIZATION_ARN_PATTERN, 'organization ARNs'),
    organizationalUnitArns: stringList(props, Prop.SHARE_ORGANIZATIONAL_UNITS, ORGANIZATIONAL_UNIT_ARN_PATTERN, 'organizational unit ARNs'),
  };
}

/** True when a sharing lists nobody. */
export function sharesWithNobody(sharing: Sharing): boolean {
  return sharing.accounts.length + sharing.organizationArns.length + sharing.organizationalUnitArns.length === 0;
}

/**
 * True when an Update asks for a different image: a property that shapes the image changed.
 * Values are compared as CloudFormation delivers them (strings), absent and empty being the same.
 */
export function imageInputsChanged(oldProps: Record<string, unknown>, newProps: Record<string, unknown>): boolean {
  return IMAGE_SHAPING_PROPS.some((name) => (optionalString(oldProps, name) ?? '') !== (optionalString(newProps, name) ?? ''));
}
