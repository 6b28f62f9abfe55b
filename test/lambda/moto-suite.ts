/**
 * What every moto test file shares: one harness per file (moto_server, the proxy and the shipped handler bundle),
 * moto reset, the handler's requests held to the synthesized handler policy (handler-policy.ts) and console silenced
 * before each test, proxy errors and authorizer denials checked after it, custom resource events and properties as
 * the CDK provider framework sends them.
 */
import { handlerPolicyAuthorizer } from './handler-policy';
import { MOTO_STACK_ID } from './moto-http';
import { type BakeImageHandler, MotoHarness } from './moto-server';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';
import { Prop } from '../../src/private/contract';

export { MOTO_STACK_ID, MOTO_STACK_NAME } from './moto-http';

export interface MotoSuite {
  readonly harness: () => MotoHarness;
  readonly handler: () => BakeImageHandler;
  /** The spy on console.warn of the running test (the handler's warnings), silenced. */
  readonly warnings: () => jest.SpyInstance;
}

export interface MotoSuiteOptions {
  /** The stack whose handler policy the requests are held to (the StackId of the file's events): MOTO_STACK_ID by default. */
  readonly stackId?: string;
}

/** Registers the jest hooks of a moto test file and gives access to its harness and handler. */
export function useMotoSuite(options: MotoSuiteOptions = {}): MotoSuite {
  let harness: MotoHarness | undefined;
  let handler: BakeImageHandler | undefined;
  let warnSpy: jest.SpyInstance | undefined;
  beforeAll(async () => {
    harness = await MotoHarness.start();
    handler = harness.loadHandler();
  });
  afterAll(async () => {
    await harness?.stop();
  });
  beforeEach(async () => {
    await required(harness).reset();
    // Every request the handler makes is held to the policy the construct synthesizes (handler-policy.ts).
    required(harness).proxy.setAuthorizer(await handlerPolicyAuthorizer(required(harness), options.stackId ?? MOTO_STACK_ID));
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    warnSpy = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => {
    jest.restoreAllMocks();
    // Problems of the proxy itself, and requests an authorizer (setAuthorizer) denied: a test should see neither.
    const errors = harness?.proxy.takeErrors() ?? [];
    const denials = harness?.proxy.takeDenials() ?? [];
    expect({ errors, denials }).toEqual({ errors: [], denials: [] });
  });
  return { harness: () => required(harness), handler: () => required(handler), warnings: () => required(warnSpy) };
}

function required<T>(value: T | undefined): T {
  if (value === undefined) {
    throw new Error('The moto harness did not start: see the error of beforeAll');
  }
  return value;
}

let requestNumber = 0;

/** A custom resource event of this stack (MOTO_STACK_ID unless told otherwise), numbered so that every request id differs. */
export function customResourceEvent(
  requestType: RequestType,
  logicalId: string,
  resourceProperties: Record<string, unknown>,
  options: { physicalId?: string; oldProps?: Record<string, unknown>; stackId?: string } = {},
): OnEventRequest {
  requestNumber += 1;
  return {
    RequestType: requestType,
    RequestId: `00000000-0000-0000-0000-${String(requestNumber).padStart(12, '0')}`,
    StackId: options.stackId ?? MOTO_STACK_ID,
    LogicalResourceId: logicalId,
    ResourceType: 'Custom::BakedImage',
    ResourceProperties: resourceProperties,
    PhysicalResourceId: options.physicalId,
    OldResourceProperties: options.oldProps,
  };
}

/** The ServiceToken of the tests' custom resources. */
export const SERVICE_TOKEN = 'arn:aws:lambda:us-east-1:123456789012:function:provider';

/**
 * The properties every test image has, as the construct sets them: its builder, a name prefix, removed with the stack
 * (REMOVAL `destroy`), builder stopped after the bake; then `more` (which may override any of them).
 */
export function imageProps<T>(instanceId: string, namePrefix: string, more: Record<string, T> = {}): Record<string, string | T> {
  return {
    ServiceToken: SERVICE_TOKEN,
    [Prop.INSTANCE_ID]: instanceId,
    [Prop.NAME_PREFIX]: namePrefix,
    [Prop.REMOVAL]: 'destroy',
    [Prop.BUILDER_AFTER_BAKE]: 'stop',
    ...more,
  };
}

/** onEvent, then one isComplete that must answer true (moto's images are available at once); the physical id. */
export async function runToCompletion(handler: BakeImageHandler, request: OnEventRequest): Promise<string> {
  const response = await handler.onEvent(request);
  const complete: IsCompleteRequest = { ...request, PhysicalResourceId: response.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: response.Data };
  expect((await handler.isComplete(complete)).IsComplete).toBe(true);
  return complete.PhysicalResourceId;
}
