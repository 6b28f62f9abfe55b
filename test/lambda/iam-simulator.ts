/**
 * Test harness: decides, the way AWS IAM would, whether the policy the construct synthesizes for the bake-image
 * handlers allows each API request they make. moto_server enforces no IAM; this fills that gap.
 *
 * Three parts:
 * - The template side: {@link handlerPolicies} (and {@link keyPolicies}) take a synthesized template and return the
 *   handlers' identity policies with every CloudFormation intrinsic resolved ({@link resolveIntrinsics}).
 * - The request side: `authorizationChecks` (iam-requests.ts) maps one request to the authorizations AWS performs, with
 *   exactly the context keys the Service Authorization Reference lists for each.
 * - The decision: {@link IamSimulator} evaluates each check with `@cloud-copilot/iam-simulate` in its Strict mode, and
 *   says why a check is denied (the action, the resource, its context, and which statement failed on which condition).
 *
 * Two traits of iam-simulate 0.1.173 that the simulator works around, so that its answers are AWS's:
 * - It accepts every global condition key for every action, and aws:ResourceTag/*, aws:RequestTag/* and aws:TagKeys
 *   are among them (as are the resource type's own keys): it would evaluate aws:ResourceTag for a CopyImage source image.
 *   The simulator refuses a check that carries a key the reference does not list for its action and resource type.
 * - It reads a `*` in the request's resource as a pattern ("some matching resource is allowed"), so that a policy on
 *   `image/ami-1` would allow creating `image/*`. AWS matches the policy's patterns against the literal ARN of a
 *   resource being created. The simulator hands iam-simulate the id `*` as one character no policy names (U+2217),
 *   which only a policy wildcard (`*` or `?`) matches, as only a policy wildcard matches the literal `*`.
 */
import { getDenialReasons, runSimulation, type RequestAnalysis, type StatementExplain } from '@cloud-copilot/iam-simulate';
import {
  type ApiRequest, type AuthorizationCheck, authorizationChecks, type ContextValue, type Ec2Lookup, isSupported, supportedKeys,
} from './iam-requests';

export { authorizationChecks } from './iam-requests';
export type { ApiRequest, AuthorizationCheck, Ec2Lookup, ResourceFacts } from './iam-requests';

/** An IAM policy document. */
export interface PolicyDocument {
  readonly Version?: string;
  readonly Statement: Array<Record<string, unknown>> | Record<string, unknown>;
}

/** A synthesized CloudFormation template (the parts read here). */
export interface CfnTemplate {
  readonly Resources?: Record<string, { readonly Type: string; readonly Properties?: any }>;
}

/** What the intrinsics of a template resolve to: the stack's pseudo parameters, and its resources' ids and attributes. */
export interface IntrinsicEnv {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  readonly stackName: string;
  readonly stackId: string;
  /** Default `amazonaws.com`. */
  readonly urlSuffix?: string;
  /** The physical id of a resource (`Ref`); undefined when unknown. */
  readonly ref?: (logicalId: string) => string | undefined;
  /** An attribute of a resource (`Fn::GetAtt`); undefined when unknown. */
  readonly getAtt?: (logicalId: string, attribute: string) => string | undefined;
}

/** The logical id of the handlers' role starts with this (construct `CdkBakedImageProvider`, role `HandlerRole`). */
export const HANDLER_ROLE_PREFIX = 'CdkBakedImageProviderHandlerRole';

function pseudo(name: string, env: IntrinsicEnv): string | undefined {
  const parameters: Record<string, string> = {
    'AWS::Partition': env.partition,
    'AWS::Region': env.region,
    'AWS::AccountId': env.account,
    'AWS::StackId': env.stackId,
    'AWS::StackName': env.stackName,
    'AWS::URLSuffix': env.urlSuffix ?? 'amazonaws.com',
  };
  return parameters[name];
}

function ref(name: string, env: IntrinsicEnv): string {
  const value = name.startsWith('AWS::') ? pseudo(name, env) : env.ref?.(name);
  if (value === undefined) {
    throw new Error(`Cannot resolve {"Ref": "${name}"}`);
  }
  return value;
}

function getAtt(logicalId: string, attribute: string): (env: IntrinsicEnv) => string {
  return (env) => {
    const value = env.getAtt?.(logicalId, attribute);
    if (value === undefined) {
      throw new Error(`Cannot resolve {"Fn::GetAtt": ["${logicalId}", "${attribute}"]}`);
    }
    return value;
  };
}

function asString(value: unknown, where: string): string {
  if (typeof value !== 'string' && typeof value !== 'number') {
    throw new Error(`${where} expects a string, got ${JSON.stringify(value)}`);
  }
  return String(value);
}

function asList(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new Error(`${where} expects a list, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `${Name}`, `${Resource.Attribute}` and `${!Literal}` of Fn::Sub, with the variables of its two-argument form. */
function sub(template: string, variables: Record<string, unknown>, env: IntrinsicEnv): string {
  return template.replace(/\$\{([^}]*)\}/g, (_match, name: string) => {
    if (name.startsWith('!')) {
      return `\${${name.slice(1)}}`;
    }
    if (name in variables) {
      return asString(variables[name], `Fn::Sub variable ${name}`);
    }
    const dot = name.indexOf('.');
    return dot > 0 && !name.startsWith('AWS::') ? getAtt(name.slice(0, dot), name.slice(dot + 1))(env) : ref(name, env);
  });
}

function intrinsic(name: string, argument: unknown, env: IntrinsicEnv): unknown {
  const resolve = (value: unknown) => resolveIntrinsics(value, env);
  switch (name) {
    case 'Ref':
      return ref(asString(argument, 'Ref'), env);
    case 'Fn::GetAtt': {
      const [logicalId, attribute] = Array.isArray(argument) ? argument.map(resolve) : asString(argument, name).split(/\.(.*)/);
      return getAtt(asString(logicalId, name), asString(attribute, name))(env);
    }
    case 'Fn::Join': {
      const [separator, parts] = asList(argument, name);
      return asList(resolve(parts), name).map((part) => asString(part, name)).join(asString(separator, name));
    }
    case 'Fn::Select': {
      const [index, list] = asList(resolve(argument), name);
      const items = asList(list, name);
      const i = Number(index);
      if (!Number.isInteger(i) || i < 0 || i >= items.length) {
        throw new Error(`Fn::Select index ${JSON.stringify(index)} out of ${JSON.stringify(items)}`);
      }
      return items[i];
    }
    case 'Fn::Split': {
      const [separator, text] = asList(resolve(argument), name);
      return asString(text, name).split(asString(separator, name));
    }
    case 'Fn::Sub': {
      const [template, variables] = typeof argument === 'string' ? [argument, {}] : asList(argument, name);
      return sub(asString(template, name), resolve(variables ?? {}) as Record<string, unknown>, env);
    }
    default:
      throw new Error(`Cannot resolve ${name}: ${JSON.stringify(argument)}`);
  }
}

/**
 * A template fragment with its CloudFormation intrinsics resolved: Ref (pseudo parameters and, through env.ref,
 * resources), Fn::GetAtt (env.getAtt), Fn::Join, Fn::Select, Fn::Split and Fn::Sub. Throws on anything else, naming it.
 */
export function resolveIntrinsics(value: unknown, env: IntrinsicEnv): unknown {
  if (Array.isArray(value)) {
    return value.map((item) => resolveIntrinsics(item, env));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const entries = Object.entries(value);
  if (entries.length === 1 && (entries[0][0] === 'Ref' || entries[0][0].startsWith('Fn::'))) {
    return intrinsic(entries[0][0], entries[0][1], env);
  }
  return Object.fromEntries(entries.map(([key, item]) => [key, resolveIntrinsics(item, env)]));
}

/**
 * The identity policies of the bake handlers' role, resolved: the AWS::IAM::Policy and AWS::IAM::ManagedPolicy
 * resources attached to it and its inline Policies. Its ManagedPolicyArns (none today) are ignored.
 */
export function handlerPolicies(template: CfnTemplate, env: IntrinsicEnv): PolicyDocument[] {
  const resources = Object.entries(template.Resources ?? {});
  const roles = resources.filter(([id, resource]) => resource.Type === 'AWS::IAM::Role' && id.startsWith(HANDLER_ROLE_PREFIX));
  if (roles.length !== 1) {
    throw new Error(`Expected one AWS::IAM::Role ${HANDLER_ROLE_PREFIX}..., found ${roles.map(([id]) => id).join(', ') || 'none'}`);
  }
  const [roleId, role] = roles[0];
  const attached = resources
    .filter(([, r]) => ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy'].includes(r.Type))
    .filter(([, r]) => (r.Properties?.Roles ?? []).some((name: unknown) => (name as { Ref?: string })?.Ref === roleId))
    .map(([, r]) => r.Properties.PolicyDocument);
  const inline = (role.Properties?.Policies ?? []).map((policy: { PolicyDocument: unknown }) => policy.PolicyDocument);
  return [...attached, ...inline].map((document) => resolveIntrinsics(document, env) as PolicyDocument);
}

/** The resolved key policy of each AWS::KMS::Key, by logical id. */
export function keyPolicies(template: CfnTemplate, env: IntrinsicEnv): Record<string, PolicyDocument> {
  return Object.fromEntries(Object.entries(template.Resources ?? {})
    .filter(([, resource]) => resource.Type === 'AWS::KMS::Key')
    .map(([id, resource]) => [id, resolveIntrinsics(resource.Properties?.KeyPolicy, env) as PolicyDocument]));
}

export interface SimulatorOptions {
  /** The role the handlers run as: `arn:aws:iam::123456789012:role/...`. */
  readonly principalArn: string;
  readonly account: string;
  /** Resource policies by resource ARN (a KMS key's key policy, by the key's ARN). */
  readonly resourcePolicies?: Record<string, PolicyDocument>;
}

export interface Decision {
  /** Every check that decides the request (not optional, on a resource that exists) is allowed. */
  readonly allowed: boolean;
  /** One readable message per denied check. */
  readonly denials: string[];
  /** Optional checks that were denied: the part of the request AWS leaves undone (a snapshot it keeps). */
  readonly undone: AuthorizationCheck[];
}

/** Stands for the `*` id of a resource being created (U+2217): one character no policy names (see the header). */
const CREATED_ID = '\u2217';

function literalResource(resource: string): string {
  return resource === '*' ? resource : resource.replace(/\*/g, CREATED_ID);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : value === undefined ? [] : [value];
}

/** Why one statement that names the action and the resource did not apply: its failed conditions. */
function failedConditions(explain: StatementExplain): string {
  const failed = (explain.conditions ?? []).filter((condition) => !condition.matches).map((condition) => {
    const expected = asArray(condition.values).map((value) => (value as { value: string }).value);
    const actual = condition.failedBecauseMissing ? 'the request has no such key' : `the request has ${condition.resolvedConditionKeyValue ?? '?'}`;
    return `${condition.operator} ${condition.conditionKeyValue} ${JSON.stringify(expected)} failed: ${actual}`;
  });
  return `statement ${explain.identifier}: ${failed.join('; ') || 'does not apply'}`;
}

function denialMessage(check: AuthorizationCheck, analysis: RequestAnalysis): string {
  const lines = [
    `${check.action} on ${check.resource} (${check.description}): ${analysis.result}`,
    `  context: ${JSON.stringify(check.context)}`,
  ];
  for (const reason of getDenialReasons(analysis)) {
    if (reason.denialType === 'Explicit') {
      lines.push(`  denied by ${reason.policyType} statement ${reason.statementId ?? `#${reason.statementIndex}`} of ${reason.policyIdentifier ?? 'the resource policy'}`);
    } else if (reason.policyType !== 'identity') {
      lines.push(`  no ${reason.policyType} policy statement allows it`);
    }
  }
  if (analysis.identityAnalysis?.result !== 'Allowed') {
    const near = (analysis.identityAnalysis?.unmatchedStatements ?? []).filter((s) => s.actionMatch && s.resourceMatch && s.explain.effect === 'Allow');
    lines.push(...near.map((s) => `  ${failedConditions(s.explain)}`));
    lines.push(`  ${near.length ? 'no other' : 'no'} identity policy statement allows ${check.action} on this resource`);
  }
  return lines.join('\n');
}

/**
 * Decides authorization checks against identity policies (and resource policies), as AWS IAM does.
 */
export class IamSimulator {
  private readonly policies: Array<{ name: string; policy: PolicyDocument }>;

  constructor(policies: PolicyDocument[], private readonly options: SimulatorOptions) {
    this.policies = policies.map((policy, i) => ({ name: `identity-policy-${i + 1}`, policy }));
  }

  /** The decision on the checks of one request: allowed when every check not optional (on a resource that exists) is. */
  async authorize(checks: AuthorizationCheck[]): Promise<Decision> {
    const denials: string[] = [];
    const undone: AuthorizationCheck[] = [];
    for (const check of checks.filter((c) => !c.missing)) {
      const denial = await this.decide(check);
      if (denial !== undefined) {
        if (check.optional) {
          undone.push(check);
        } else {
          denials.push(denial);
        }
      }
    }
    return { allowed: denials.length === 0, denials, undone };
  }

  /** The decision on one API request of the handlers. */
  async authorizeRequest(request: ApiRequest, lookup: Ec2Lookup): Promise<Decision> {
    return this.authorize(await authorizationChecks(request, lookup));
  }

  /** undefined when allowed, else why not. */
  private async decide(check: AuthorizationCheck): Promise<string | undefined> {
    const supported = await supportedKeys(check.action, check.resourceType);
    const unsupported = Object.keys(check.context).filter((key) => !isSupported(key, supported));
    if (unsupported.length > 0) {
      throw new Error(`${check.action} on ${check.resourceType ?? '*'} supports no ${unsupported.join(', ')} (Service Authorization Reference)`);
    }
    const principal: Record<string, ContextValue> = {
      'aws:PrincipalArn': this.options.principalArn,
      'aws:PrincipalAccount': this.options.account,
      'aws:PrincipalType': 'AssumedRole',
      'aws:PrincipalIsAWSService': 'false',
      'aws:ViaAWSService': 'false',
    };
    const result = await runSimulation({
      request: {
        principal: this.options.principalArn,
        action: check.action,
        // The account that owns the resource for cross-account rules: EC2 lets an account use images it was given
        // launch permission to without a resource policy, so every resource counts as the principal's.
        resource: { resource: literalResource(check.resource), accountId: this.options.account },
        contextVariables: { ...check.context, ...principal },
      },
      identityPolicies: this.policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: this.options.resourcePolicies?.[check.resource],
    }, { simulationMode: 'Strict' });
    if (result.resultType === 'error') {
      throw new Error(`iam-simulate refused ${check.action} on ${check.resource}: ${JSON.stringify(result.errors)}`);
    }
    if (result.resultType !== 'single' || (result.result.ignoredContextKeys ?? []).length > 0) {
      throw new Error(`iam-simulate ran ${check.action} on ${check.resource} as ${result.resultType} and ignored ` +
        `${JSON.stringify(result.resultType === 'single' ? result.result.ignoredContextKeys : undefined)}`);
    }
    return result.overallResult === 'Allowed' ? undefined : denialMessage(check, result.result.analysis);
  }
}
