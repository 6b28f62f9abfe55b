/**
 * Poll cost model: reads the provider's settings from a synthesized template (the waiter state machine's
 * Retry policy, the handler functions' memory and architecture) and prices a bake of a given length.
 */
import type { Template } from './synth';

/** us-east-1 list prices used by the model. */
export const PRICES = {
  /** The date these prices were taken down (the benchmark machine has no internet to re-check them). */
  asOf: '2026-11-22',
  /** Lambda, arm64, first pricing tier, per GB-second. */
  lambdaArm64PerGbSecond: 0.0000133334,
  /** Lambda, x86_64, first pricing tier, per GB-second (the provider framework's own functions run on x86_64). */
  lambdaX86PerGbSecond: 0.0000166667,
  /** Lambda requests, per request ($0.20 per 1M). */
  lambdaPerRequest: 0.20 / 1_000_000,
  /** Step Functions standard workflows, per state transition ($0.025 per 1,000). */
  sfnPerTransition: 0.025 / 1000,
  sources: 'https://aws.amazon.com/lambda/pricing/ and https://aws.amazon.com/step-functions/pricing/ (us-east-1, no free tier applied)',
} as const;

/**
 * Billed durations the model assumes (they cannot be measured without AWS). The user isComplete makes one
 * DescribeImages call; the framework's wrapper function waits for it through a synchronous Lambda Invoke,
 * so it is billed for that wait plus its own work.
 */
export const ASSUMED_BILLED_MS = {
  userIsCompletePoll: 100,
  userOnEventCreate: 300,
  userOnEventDelete: 500,
  /** Added to the user function's time for the framework function that invokes it and waits. */
  frameworkOverhead: 50,
} as const;

/** The provider framework's default query interval (custom_resources.Provider). */
export const FRAMEWORK_DEFAULT_INTERVAL_SECONDS = 5;

export interface FunctionSettings {
  readonly logicalId: string;
  readonly handler: string;
  readonly memoryMb: number;
  readonly architecture: string;
  /** True when MemorySize or Architectures is absent from the template and Lambda's default applies. */
  readonly defaulted: boolean;
}

export interface ProviderSettings {
  readonly stateMachineLogicalId: string;
  readonly startAt: string;
  readonly states: Record<string, { readonly Type: string; readonly End?: boolean; readonly Next?: string }>;
  readonly intervalSeconds: number;
  readonly maxAttempts: number;
  readonly backoffRate: number;
  /** The function the waiter task invokes: the framework's isComplete wrapper. */
  readonly frameworkIsComplete: FunctionSettings;
  readonly userIsComplete: FunctionSettings;
  readonly frameworkOnEvent: FunctionSettings;
  readonly userOnEvent: FunctionSettings;
}

type Resource = Template['Resources'][string];

/** Logical id from `{ "Fn::GetAtt": [id, "Arn"] }` or `{ "Ref": id }`. */
function referencedId(value: unknown): string | undefined {
  if (typeof value === 'object' && value !== null) {
    const getAtt = (value as { 'Fn::GetAtt'?: unknown })['Fn::GetAtt'];
    if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') {
      return getAtt[0];
    }
    const ref = (value as { Ref?: unknown }).Ref;
    if (typeof ref === 'string') {
      return ref;
    }
  }
  return undefined;
}

/** Parses a DefinitionString (a string or an Fn::Join); references become `@ref:<logicalId>` strings. */
function parseDefinition(definition: unknown): { StartAt: string; States: Record<string, Record<string, unknown>> } {
  let text: string;
  if (typeof definition === 'string') {
    text = definition;
  } else {
    const join = (definition as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    if (!join) {
      throw new Error(`Unexpected DefinitionString: ${JSON.stringify(definition).slice(0, 200)}`);
    }
    text = join[1].map((part) => (typeof part === 'string' ? part : `@ref:${referencedId(part) ?? 'unknown'}`)).join(join[0]);
  }
  return JSON.parse(text);
}

function functionSettings(resources: Record<string, Resource>, logicalId: string | undefined, what: string): FunctionSettings {
  const resource = logicalId ? resources[logicalId] : undefined;
  if (!logicalId || resource?.Type !== 'AWS::Lambda::Function') {
    throw new Error(`Could not find the ${what} function in the template (got ${logicalId})`);
  }
  const props = resource.Properties ?? {};
  const memory = props.MemorySize as number | undefined;
  const architectures = props.Architectures as string[] | undefined;
  return {
    logicalId,
    handler: String(props.Handler),
    memoryMb: memory ?? 128,
    architecture: architectures?.[0] ?? 'x86_64',
    defaulted: memory === undefined || architectures === undefined,
  };
}

function envReference(resource: Resource, variable: string): string | undefined {
  const variables = (resource.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};
  return referencedId(variables[variable]);
}

/** Reads the provider framework's settings from a template with exactly one provider. */
export function readProviderSettings(template: Template): ProviderSettings {
  const resources = template.Resources;
  const machines = Object.entries(resources).filter(([, resource]) => resource.Type === 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) {
    throw new Error(`Expected one waiter state machine (one provider per stack), found ${machines.length}`);
  }
  const [stateMachineLogicalId, machine] = machines[0];
  const definition = parseDefinition(machine.Properties?.DefinitionString);
  const waiter = definition.States[definition.StartAt];
  const retry = (waiter.Retry as Array<{ IntervalSeconds: number; MaxAttempts: number; BackoffRate: number }> | undefined)?.[0];
  if (waiter.Type !== 'Task' || !retry) {
    throw new Error(`The waiter's start state ${definition.StartAt} is not a Task with a Retry`);
  }
  const frameworkIsCompleteId = /^@ref:(.+)$/.exec(String(waiter.Resource))?.[1];
  const frameworkIsComplete = functionSettings(resources, frameworkIsCompleteId, 'framework isComplete');
  const userIsComplete = functionSettings(resources, envReference(resources[frameworkIsComplete.logicalId], 'USER_IS_COMPLETE_FUNCTION_ARN'), 'user isComplete');
  const frameworkOnEventId = Object.entries(resources)
    .find(([, resource]) => resource.Type === 'AWS::Lambda::Function' && envReference(resource, 'WAITER_STATE_MACHINE_ARN') === stateMachineLogicalId)?.[0];
  const frameworkOnEvent = functionSettings(resources, frameworkOnEventId, 'framework onEvent');
  const userOnEvent = functionSettings(resources, envReference(resources[frameworkOnEvent.logicalId], 'USER_ON_EVENT_FUNCTION_ARN'), 'user onEvent');
  return {
    stateMachineLogicalId,
    startAt: definition.StartAt,
    states: definition.States as ProviderSettings['states'],
    intervalSeconds: retry.IntervalSeconds,
    maxAttempts: retry.MaxAttempts,
    backoffRate: retry.BackoffRate,
    frameworkIsComplete,
    userIsComplete,
    frameworkOnEvent,
    userOnEvent,
  };
}

function perGbSecond(fn: FunctionSettings): number {
  return fn.architecture === 'arm64' ? PRICES.lambdaArm64PerGbSecond : PRICES.lambdaX86PerGbSecond;
}

/** Dollars for `invocations` invocations of a function billed `billedMs` each (compute + requests). */
function lambdaCost(fn: FunctionSettings, invocations: number, billedMs: number): number {
  return invocations * ((fn.memoryMb / 1024) * (billedMs / 1000) * perGbSecond(fn) + PRICES.lambdaPerRequest);
}

export interface WaiterCost {
  readonly intervalSeconds: number;
  /** isComplete attempts: the first right after onEvent, then one per interval until one sees `available`. */
  readonly polls: number;
  /** True when the polls fit in the Retry policy's MaxAttempts (otherwise the framework times out first). */
  readonly fitsMaxAttempts: boolean;
  readonly userIsCompleteInvocations: number;
  /** Framework wrapper + user function: two Lambda invocations per poll. */
  readonly lambdaInvocations: number;
  /** Conservative count: entering the Task from the start, one per retry, and the End. */
  readonly transitions: number;
  /** Counting only the Task entry and the retries (the start and the End not billed). */
  readonly transitionsLowerBound: number;
  readonly lambdaUsd: number;
  readonly sfnUsd: number;
  readonly totalUsd: number;
}

/**
 * The waiter execution of one operation whose isComplete first answers true after `seconds` (0: the first
 * poll completes, as for a Delete). The Retry's BackoffRate must be 1 (fixed interval).
 */
export function waiterCost(
  settings: ProviderSettings,
  seconds: number,
  intervalSeconds = settings.intervalSeconds,
  maxAttempts = settings.maxAttempts,
): WaiterCost {
  if (settings.backoffRate !== 1) {
    throw new Error(`The model assumes a fixed interval (BackoffRate 1), got ${settings.backoffRate}`);
  }
  const polls = Math.ceil(seconds / intervalSeconds) + 1;
  const retries = polls - 1;
  const transitions = 1 + retries + 1;
  const lambdaUsd = lambdaCost(settings.userIsComplete, polls, ASSUMED_BILLED_MS.userIsCompletePoll)
    + lambdaCost(settings.frameworkIsComplete, polls, ASSUMED_BILLED_MS.userIsCompletePoll + ASSUMED_BILLED_MS.frameworkOverhead);
  const sfnUsd = transitions * PRICES.sfnPerTransition;
  return {
    intervalSeconds,
    polls,
    fitsMaxAttempts: retries <= maxAttempts,
    userIsCompleteInvocations: polls,
    lambdaInvocations: 2 * polls,
    transitions,
    transitionsLowerBound: 1 + retries,
    lambdaUsd,
    sfnUsd,
    totalUsd: lambdaUsd + sfnUsd,
  };
}

/** One onEvent: the framework's function invokes the user's and waits for it. */
export function onEventCost(settings: ProviderSettings, userBilledMs: number): number {
  return lambdaCost(settings.userOnEvent, 1, userBilledMs)
    + lambdaCost(settings.frameworkOnEvent, 1, userBilledMs + ASSUMED_BILLED_MS.frameworkOverhead);
}

export interface BakeCost {
  readonly bakeMinutes: number;
  readonly waiter: WaiterCost;
  /** The Create: onEvent + the waiter until the image is available. */
  readonly createUsd: number;
  /** Create + Delete (onEvent + a waiter execution whose first poll completes). */
  readonly cycleUsd: number;
}

export function bakeCost(
  settings: ProviderSettings,
  bakeMinutes: number,
  intervalSeconds = settings.intervalSeconds,
  maxAttempts = settings.maxAttempts,
): BakeCost {
  const waiter = waiterCost(settings, bakeMinutes * 60, intervalSeconds, maxAttempts);
  const createUsd = onEventCost(settings, ASSUMED_BILLED_MS.userOnEventCreate) + waiter.totalUsd;
  const deleteUsd = onEventCost(settings, ASSUMED_BILLED_MS.userOnEventDelete) + waiterCost(settings, 0, intervalSeconds, maxAttempts).totalUsd;
  return { bakeMinutes, waiter, createUsd, cycleUsd: createUsd + deleteUsd };
}

/**
 * Mean delay between "image available" and the poll that sees it: the image turns available at a time
 * uncorrelated with the poll grid, so the wait for the next poll is uniform over one period.
 * `model` uses the period = IntervalSeconds; `withAttemptTime` adds the time of one attempt, because
 * Step Functions waits IntervalSeconds after an attempt has failed, not between attempt starts.
 */
export function meanDetectionDelay(intervalSeconds: number): { model: number; withAttemptTime: number } {
  const attemptSeconds = (ASSUMED_BILLED_MS.userIsCompletePoll + ASSUMED_BILLED_MS.frameworkOverhead) / 1000;
  return { model: intervalSeconds / 2, withAttemptTime: (intervalSeconds + attemptSeconds) / 2 };
}

/** The seed blog's figure (AWS DevOps blog, AMIManager), quoted from /work/shared/seeds/001_*.txt. */
export const SEED_FIGURE = {
  usdPerCycle: 0.000988,
  quote: 'At Lambda\u2019s current pricing of $0.00001667 per GB-second, each stack\u2019s launch and terminate cycle '
    + 'incurs custom AMI creation costs of just $0.000988.',
  context: 'the function stayed within 128 MB; create operations took 4.5 s and delete operations 25 s',
  /** What the seed's own inputs give: 128 MB x (4.5 + 25) s x $0.00001667. */
  recomputedUsd: 0.125 * (4.5 + 25) * 0.00001667,
} as const;
