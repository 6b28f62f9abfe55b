/**
 * What every moto test file of the option features shares: one harness per file (moto_server, the proxy and
 * the shipped handler bundle), moto reset, the handler's requests held to the synthesized handler policy
 * (handler-policy.ts) and console silenced before each test, proxy errors and authorizer denials checked after it,
 * and custom resource events as the CDK provider framework sends them.
 */
import { handlerPolicyAuthorizer } from './handler-policy';
import { MOTO_STACK_ID } from './moto-http';
import { type BakeImageHandler, MotoHarness } from './moto-server';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';


export { MOTO_STACK_ID, MOTO_STACK_NAME } from './moto-http';

export interface MotoSuite {
  readonly harness: () => MotoHarness;
  readonly handler: () => BakeImageHandler;
}

/** Registers the jest hooks of a moto test file and gives access to its harness and handler. */
export function useMotoSuite(): MotoSuite {
  let harness: MotoHarness | undefined;
  let handler: BakeImageHandler | undefined;
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
    required(harness).proxy.setAuthorizer(await handlerPolicyAuthorizer(required(harness)));
    jest.spyOn(console, 'log').mockImplementation(() => undefined);
    jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  });
  afterEach(() => {
    jest.restoreAllMocks();
    // Problems of the proxy itself, and requests an authorizer (setAuthorizer) denied: a test should see neither.
    const errors = harness?.proxy.takeErrors() ?? [];
    const denials = harness?.proxy.takeDenials() ?? [];
    expect({ errors, denials }).toEqual({ errors: [], denials: [] });
  });
  return { harness: () => required(harness), handler: () => required(handler) };
}

function required<T>(value: T | undefined): T {
  if (value === undefined) {
    throw new Error('The moto harness did not start: see the error of beforeAll');
  }
  return value;
}

let requestNumber = 0;

/** A custom resource event of this stack, numbered so that every request id differs. */
export function customResourceEvent(
  requestType: RequestType,
  logicalId: string,
  resourceProperties: Record<string, unknown>,
  options: { physicalId?: string; oldProps?: Record<string, unknown> } = {},
): OnEventRequest {
  requestNumber += 1;
  return {
    RequestType: requestType,
    RequestId: `00000000-0000-0000-0000-${String(requestNumber).padStart(12, '0')}`,
    StackId: MOTO_STACK_ID,
    LogicalResourceId: logicalId,
    ResourceType: 'Custom::BakedImage',
    ResourceProperties: resourceProperties,
    PhysicalResourceId: options.physicalId,
    OldResourceProperties: options.oldProps,
  };
}

/** onEvent, then one isComplete that must answer true (moto's images are available at once); the physical id. */
export async function runToCompletion(handler: BakeImageHandler, request: OnEventRequest): Promise<string> {
  const response = await handler.onEvent(request);
  const complete: IsCompleteRequest = { ...request, PhysicalResourceId: response.PhysicalResourceId ?? request.PhysicalResourceId ?? '', Data: response.Data };
  expect((await handler.isComplete(complete)).IsComplete).toBe(true);
  return complete.PhysicalResourceId;
}
