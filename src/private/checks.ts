import { Annotations, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct, IConstruct } from 'constructs';
import {
  AVAILABILITY_ZONE_PATTERN,
  FAST_SNAPSHOT_RESTORE_USD_PER_DSU_HOUR,
  IMAGE_NAME_PATTERN,
  MAX_BAKE_TIMEOUT_SECONDS,
  MAX_DEPRECATE_AFTER_SECONDS,
  MAX_DESCRIPTION_LENGTH,
  MAX_FAST_SNAPSHOT_RESTORE_ZONES,
  MAX_KEEP_SUPERSEDED,
  MAX_NAME_PREFIX_LENGTH,
  MAX_SIGNAL_TIMEOUT_SECONDS,
  MAX_USER_DATA_BYTES,
  MIN_DEPRECATE_AFTER_SECONDS,
  MIN_TIMEOUT_SECONDS,
  PARAMETER_NAME_PATTERN,
  REGION_PATTERN,
  sharesWithAnyone,
  SHARING_LISTS,
  VALIDATION_HEREDOC_END,
} from './contract';
import { validationError } from './errors';
import { validationUserData } from './validation-script';
import type { BakedImageProps, ImageCopy, ImageSharing } from '../baked-image-props';
import type { ImageValidation } from '../validation';

/**
 * The synth-time checks of a BakedImage's props. Each returns every problem it finds, as a sentence that
 * names the prop, shows the value and says the fix; `throwIfInvalid` throws them all at once. Token values
 * are left alone, not misjudged.
 */

/** Instance families on the Xen hypervisor: GetConsoleOutput gives their latest output only on Nitro types. */
const XEN_INSTANCE_FAMILIES = /^(t1|t2|m1|m2|m3|m4|c1|c3|c4|r3|r4|x1|x1e|i2|i3|d2|g2|g3|g3s|p2|p3|h1|f1)\.(?!metal)/;

/** The props with their defaults applied, as the construct uses them. */
export interface ResolvedInputs {
  readonly namePrefix: string;
  readonly description: string;
  readonly bakeTimeout: Duration;
  readonly removalPolicy: RemovalPolicy;
  readonly vpcSubnets: ec2.SubnetSelection;
  readonly instanceType: ec2.InstanceType;
}

/** The props JavaScript callers may leave out although they are required (TypeScript and jsii languages cannot). */
export function throwIfMissing(scope: Construct, props: BakedImageProps | undefined): void {
  const missing = (['vpc', 'machineImage', 'init'] as const).filter((name) => props?.[name] === undefined);
  if (missing.length > 0) {
    throw validationError('BakedImageMissingProps', `${missing.map((name) => `${name} is required`).join(', ')} (BakedImage ${scope.node.path})`, scope);
  }
}

/** Throws one error that lists every problem, if there is any. */
export function throwIfInvalid(scope: Construct, problems: string[]): void {
  if (problems.length > 0) {
    throw validationError('BakedImageInvalidProps', `Invalid BakedImage ${scope.node.path}:\n  - ${problems.join('\n  - ')}`, scope);
  }
}

/** Every problem the props show before the builder exists. */
export function propsProblems(scope: Construct, props: BakedImageProps, inputs: ResolvedInputs): string[] {
  return [
    ...inputProblems(scope, props, inputs),
    ...sharingProblems(props.shareWith, props.volumeEncryptionKey),
    ...copyProblems(scope, props.copies, props.shareWith),
    ...copyParameterProblems(props),
    ...validationProblems(props.validation, inputs.bakeTimeout, inputs.instanceType),
  ];
}

/** The problems that only the base image's operating system reveals, and its warnings. */
export function operatingSystemProblems(scope: Construct, props: BakedImageProps, osType: ec2.OperatingSystemType): string[] {
  if (osType === ec2.OperatingSystemType.WINDOWS) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:windows',
      'The base image is Windows. The builder is captured as it is, without Sysprep and with no default clean-up, so every instance launched from the image starts with the builder\'s computer name, security identifier and EC2Launch state. Windows images are not supported for production yet: bake on Linux, or add a last config set that resets EC2Launch and generalizes the builder yourself (see Windows in the README).');
  }
  if (props.validation && osType !== ec2.OperatingSystemType.LINUX) {
    return ['validation runs its test from cloud-init user data, on Linux images only: remove validation for a Windows image'];
  }
  return [];
}

function inputProblems(scope: Construct, props: BakedImageProps, inputs: ResolvedInputs): string[] {
  const problems: string[] = [];
  const { namePrefix, description, bakeTimeout, removalPolicy } = inputs;

  if (!Token.isUnresolved(namePrefix)) {
    if (namePrefix.length < 1 || namePrefix.length > MAX_NAME_PREFIX_LENGTH) {
      problems.push(`imageNamePrefix must be 1 to ${MAX_NAME_PREFIX_LENGTH} characters (a dash and a 16-character fingerprint are appended to make the AMI name), got ${namePrefix.length}: '${namePrefix}'`);
    }
    if (namePrefix.length > 0 && !IMAGE_NAME_PATTERN.test(namePrefix)) {
      const bad = [...new Set([...namePrefix].filter((c) => !IMAGE_NAME_PATTERN.test(c)))].join('');
      problems.push(`imageNamePrefix may contain only letters, digits, spaces and ( ) [ ] . / - ' @ _ (EC2's rule for AMI names), got '${namePrefix}' with '${bad}'`);
    }
  }
  if (props.imageIdParameterName !== undefined && !Token.isUnresolved(props.imageIdParameterName)) {
    const name = props.imageIdParameterName;
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

  if (props.keepSupersededImages !== undefined && !Token.isUnresolved(props.keepSupersededImages)) {
    const keep = props.keepSupersededImages;
    if (!Number.isInteger(keep) || keep < 0 || keep > MAX_KEEP_SUPERSEDED) {
      problems.push(`keepSupersededImages must be a whole number from 0 to ${MAX_KEEP_SUPERSEDED}, got ${keep}`);
    } else if (keep > 0 && removalPolicy === RemovalPolicy.RETAIN) {
      problems.push(`keepSupersededImages (${keep}) has no effect with removalPolicy RETAIN, which keeps every image: remove one of them`);
    }
  }
  if (props.deprecateAfter && !props.deprecateAfter.isUnresolved()) {
    const seconds = props.deprecateAfter.toSeconds();
    if (seconds < MIN_DEPRECATE_AFTER_SECONDS || seconds > MAX_DEPRECATE_AFTER_SECONDS) {
      problems.push(`deprecateAfter must be between 1 minute and 10 years (EC2's range), got ${props.deprecateAfter.toHumanString()}`);
    }
  }
  problems.push(...fastSnapshotRestoreProblems(scope, props.fastSnapshotRestoreZones ?? [], removalPolicy));
  if (props.initOptions?.timeout && !props.initOptions.timeout.isUnresolved() && props.initOptions.timeout.toSeconds() > MAX_SIGNAL_TIMEOUT_SECONDS) {
    problems.push(`initOptions.timeout must be at most 12 hours (CloudFormation's limit for a CreationPolicy signal), got ${props.initOptions.timeout.toHumanString()}`);
  }
  problems.push(...subnetProblems(scope, props.vpc, inputs.vpcSubnets));
  return problems;
}

/** Fast snapshot restore: zone names of the stack's region, never with RETAIN; and a warning with its price. */
function fastSnapshotRestoreProblems(scope: Construct, zones: string[], removalPolicy: RemovalPolicy): string[] {
  if (zones.length === 0) {
    return [];
  }
  const problems: string[] = [];
  const region = Stack.of(scope).region;
  const known = zones.filter((zone) => !Token.isUnresolved(zone));
  // A zone's name is its region's and one letter (us-east-1a); EC2 checks the letter.
  const bad = known.filter((zone) => !AVAILABILITY_ZONE_PATTERN.test(zone)
    || (!Token.isUnresolved(region) && !(zone.startsWith(region) && /^[a-z]$/.test(zone.slice(region.length)))));
  if (bad.length > 0) {
    problems.push(`fastSnapshotRestoreZones must name Availability Zones of the stack's region${Token.isUnresolved(region) ? '' : ` (${region}a, ${region}b, ...)`}, got '${bad.join("', '")}'`);
  }
  if (new Set(known).size !== known.length) {
    problems.push(`fastSnapshotRestoreZones names a zone twice: '${known.join("', '")}'`);
  }
  if (zones.length > MAX_FAST_SNAPSHOT_RESTORE_ZONES) {
    problems.push(`fastSnapshotRestoreZones may name at most ${MAX_FAST_SNAPSHOT_RESTORE_ZONES} Availability Zones, got ${zones.length}`);
  }
  if (removalPolicy === RemovalPolicy.RETAIN) {
    problems.push('fastSnapshotRestoreZones cannot be combined with removalPolicy RETAIN: the retained image would keep fast snapshot restore, '
      + 'billed every hour, with no stack left to disable it. Remove one of them.');
  }
  const monthly = Math.round(FAST_SNAPSHOT_RESTORE_USD_PER_DSU_HOUR * 720 * zones.length);
  Annotations.of(scope).addWarningV2('cdk-baked-image:fastSnapshotRestore',
    `Fast snapshot restore in ${zones.length} Availability Zone(s) is billed while enabled, launches or not: one DSU-hour per snapshot `
    + `and zone, USD ${FAST_SNAPSHOT_RESTORE_USD_PER_DSU_HOUR} in us-east-1: about USD ${monthly} per 30 days for each snapshot of the image `
    + '(see the Amazon EBS pricing page for other regions).');
  return problems;
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
export function configSetProblems(builder: ec2.Instance, configSets: string[]): string[] {
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

/** The `imageIdParameterName` of each BakedImage that sets one. */
const PARAMETER_NAMES = new WeakMap<IConstruct, string>();

/** Records a BakedImage's parameter name, for `parameterNameProblems` of the BakedImages that come after it. */
export function registerParameterName(image: IConstruct, name: string | undefined): void {
  if (name !== undefined) {
    PARAMETER_NAMES.set(image, name);
  }
}

/**
 * Two BakedImages that write one SSM parameter name in the same account and region fail at deploy (the second
 * parameter already exists): name the other one. Stacks whose environment is not known at synth are left alone.
 */
export function parameterNameProblems(image: Construct, name: string | undefined): string[] {
  if (name === undefined || Token.isUnresolved(name)) {
    return [];
  }
  const env = (scope: Construct) => `${Stack.of(scope).account}/${Stack.of(scope).region}`;
  const twin = image.node.root.node.findAll().find((other) =>
    other !== image && PARAMETER_NAMES.get(other) === name
    && (Stack.of(other) === Stack.of(image) || (!Token.isUnresolved(env(other)) && env(other) === env(image))));
  if (!twin) {
    return [];
  }
  return [`imageIdParameterName '${name}' is already the parameter of ${twin.node.path} in the same account and region: SSM parameter names are unique there, so the second one fails at deploy. Give each BakedImage its own name`];
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

/**
 * Copies must name literal regions, each once, not the stack's own; a copy's key must be of its region; a
 * shared image needs a key for every copy (aws/ebs images cannot be shared).
 */
function copyProblems(scope: Construct, copies: ImageCopy[] | undefined, sharing: ImageSharing | undefined): string[] {
  const listed = copies ?? [];
  if (Token.isUnresolved(listed) || listed.some((copy) => Token.isUnresolved(copy.region))) {
    return ['copies must name literal regions: they name the attributes imageIdForRegion() reads'];
  }
  const problems: string[] = [];
  const regions = listed.map((copy) => copy.region);
  const bad = regions.filter((region) => !REGION_PATTERN.test(region));
  if (bad.length > 0) {
    problems.push(`copies must name regions like 'us-west-2', got '${bad.join("', '")}'`);
  }
  const repeated = regions.filter((region, index) => regions.indexOf(region) !== index);
  if (repeated.length > 0) {
    problems.push(`copies name ${[...new Set(repeated)].map((r) => `'${r}'`).join(', ')} more than once`);
  }
  const home = Stack.of(scope).region;
  if (!Token.isUnresolved(home) && regions.includes(home)) {
    problems.push(`copies name '${home}', the stack's own region, where the image already is: remove it`);
  }
  for (const { region, encryptionKey } of listed) {
    if (encryptionKey && !Token.isUnresolved(encryptionKey.env.region) && encryptionKey.env.region !== region) {
      problems.push(`the encryptionKey of the copy to '${region}' is a key of '${encryptionKey.env.region}': a copy is encrypted with a key of its own region`);
    }
  }
  const unkeyed = listed.filter((copy) => !copy.encryptionKey).map((copy) => copy.region);
  if (sharesWithAnyone(sharing) && unkeyed.length > 0) {
    problems.push(`shareWith with copies to ${unkeyed.map((r) => `'${r}'`).join(', ')} needs an encryptionKey for each: a copy encrypted with the region's aws/ebs key cannot be shared`);
  }
  return problems;
}

/** With copies, the parameter name also names the parameters the handler writes in the copy regions. */
function copyParameterProblems(props: BakedImageProps): string[] {
  if ((props.copies ?? []).length > 0 && props.imageIdParameterName !== undefined && Token.isUnresolved(props.imageIdParameterName)) {
    return ['imageIdParameterName must be a literal string with copies: it names the parameters the handler writes in the copy regions, and the permissions to write them'];
  }
  return [];
}

/** The keys the copies are encrypted with, by region. */
export function copyKeys(copies: ImageCopy[] | undefined): Record<string, kms.IKey> {
  return Object.fromEntries((copies ?? []).filter((copy) => copy.encryptionKey).map((copy) => [copy.region, copy.encryptionKey!]));
}
