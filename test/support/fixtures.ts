/**
 * Fixtures of the bake-image handlers' unit tests (test/lambda/unit-*.test.ts): the custom resource's properties
 * and the provider framework's events, built from a typed {@link BakeSpec} through the contract's own encoder
 * (`encodeProperties`, what the construct writes), and the setup every handler test file shares.
 *
 * A test says only what it changes: `createEvent({ noReboot: true })`, `deleteEvent({ removal: RemovalMode.RETAIN })`.
 * Properties are never written by hand here: a test that feeds the decoder properties the construct would never
 * write (malformed values, or names an earlier construct left out) says so, and uses {@link withRawProperties} or
 * {@link withoutProperties} on top of encoded ones.
 *
 * Importing this module has no side effects: the aws-sdk-client-mock mocks stay in the test files, which hand
 * them to {@link setUpHandlerTests}.
 */
import { EC2ServiceException } from '@aws-sdk/client-ec2';
import type { IsCompleteRequest, OnEventRequest, RequestType } from '../../lambda/bake-image/types';
import { BuilderAfterBake } from '../../src/builder-after-bake';
import {
  Attr,
  type BakeSpec,
  decodeProperties,
  DEFAULT_BAKE_TIMEOUT_SECONDS,
  encodeProperties,
  imageName,
  MANAGED_BY_VALUE,
  RemovalMode,
  Tag,
} from '../../src/private/contract';

/** The builder instance of the default spec. */
export const BUILDER_ID = 'i-0123456789abcdef0';
/** The image the events' physical id names by default. */
export const IMAGE_ID = 'ami-0123456789abcdef0';
/** The stack of the events, unless a test names another. */
export const STACK_ID = 'arn:aws:cloudformation:us-east-1:123456789012:stack/MyStack/11111111-2222-3333-4444-555555555555';
/** The custom resource's logical id in the events, unless a test names another. */
export const LOGICAL_ID = 'Image';
/** The provider's function, which CloudFormation adds to the properties. */
export const SERVICE_TOKEN = 'arn:aws:lambda:us-east-1:123456789012:function:provider';
/** The region the handler runs in (AWS_REGION, set by setUpHandlerTests). */
export const HOME_REGION = 'us-east-1';

/**
 * A spec as the construct would hand it to the encoder: the builder {@link BUILDER_ID}, name prefix `web`, a
 * description, removal destroy, the builder stopped after the bake, the construct's default bakeTimeout, shared with
 * nobody, no copies, no validation, no deprecation, protection or IMDSv2-only attribute, an empty manifest; `overrides` replace fields whole
 * (`{ bakeTimeoutSeconds: undefined }` for a spec without one).
 */
export function bakeSpec(overrides: Partial<BakeSpec> = {}): BakeSpec {
  return {
    instanceId: BUILDER_ID,
    namePrefix: 'web',
    description: 'Web server image',
    noReboot: false,
    removal: RemovalMode.DESTROY,
    builderAfterBake: BuilderAfterBake.STOP,
    bakeTimeoutSeconds: DEFAULT_BAKE_TIMEOUT_SECONDS,
    sharing: { accounts: [], organizationArns: [], organizationalUnitArns: [] },
    deregistrationProtection: false,
    // Off, as in the properties of the constructs before it: the tests of IMDSv2-only images set it.
    requireImdsv2: false,
    fastSnapshotRestoreZones: [],
    keepSuperseded: 0,
    copyToRegions: [],
    copyKmsKeyIds: {},
    manifest: {},
    ...overrides,
  };
}

/** The ResourceProperties CloudFormation delivers for a spec: the encoder's output, plus the ServiceToken. */
export function resourceProperties(overrides: Partial<BakeSpec> = {}): Record<string, unknown> {
  return { ServiceToken: SERVICE_TOKEN, ...encodeProperties(bakeSpec(overrides)) };
}

/** The AMI name the handler derives from the properties of a spec (decoded as the handler decodes them). */
export function imageNameFor(overrides: Partial<BakeSpec> = {}): string {
  return imageName(decodeProperties(resourceProperties(overrides)));
}

/** Where an event comes from, and what else the framework sends with it. */
export interface EventOptions {
  /** Default `request-<type>-0001`, `request-create-0001` for a Create. */
  readonly requestId?: string;
  /** Default {@link STACK_ID}. */
  readonly stackId?: string;
  /** Default {@link LOGICAL_ID}. */
  readonly logicalId?: string;
  /** The pre-signed response URL; none by default. */
  readonly responseUrl?: string;
}

function baseEvent(requestType: RequestType, overrides: Partial<BakeSpec>, options: EventOptions): OnEventRequest {
  return {
    RequestType: requestType,
    RequestId: options.requestId ?? `request-${requestType.toLowerCase()}-0001`,
    StackId: options.stackId ?? STACK_ID,
    LogicalResourceId: options.logicalId ?? LOGICAL_ID,
    ResourceType: 'Custom::BakedImage',
    ResourceProperties: resourceProperties(overrides),
    ...(options.responseUrl !== undefined ? { ResponseURL: options.responseUrl } : {}),
  };
}

/** An onEvent Create for a spec. */
export function createEvent(overrides: Partial<BakeSpec> = {}, options: EventOptions = {}): OnEventRequest {
  return baseEvent('Create', overrides, options);
}

/** An onEvent Update of the resource `physicalId` from the spec `oldOverrides` to the spec `newOverrides`. */
export function updateEvent(
  newOverrides: Partial<BakeSpec> = {},
  oldOverrides: Partial<BakeSpec> = {},
  physicalId: string = IMAGE_ID,
  options: EventOptions = {},
): OnEventRequest {
  return { ...baseEvent('Update', newOverrides, options), PhysicalResourceId: physicalId, OldResourceProperties: resourceProperties(oldOverrides) };
}

/** An onEvent Delete of the resource `physicalId`, whose properties are those of a spec. */
export function deleteEvent(overrides: Partial<BakeSpec> = {}, physicalId: string = IMAGE_ID, options: EventOptions = {}): OnEventRequest {
  return { ...baseEvent('Delete', overrides, options), PhysicalResourceId: physicalId };
}

/** An onEvent request of the given type for a spec; an Update's old spec is the same one. */
export function eventOfType(requestType: RequestType, overrides: Partial<BakeSpec> = {}, options: EventOptions = {}): OnEventRequest {
  switch (requestType) {
    case 'Create':
      return createEvent(overrides, options);
    case 'Update':
      return updateEvent(overrides, overrides, IMAGE_ID, options);
    case 'Delete':
      return deleteEvent(overrides, IMAGE_ID, options);
  }
}

/** An ISO 8601 time this many seconds ago. */
export function secondsAgo(seconds: number): string {
  return new Date(Date.now() - seconds * 1000).toISOString();
}

/** onEvent's Data as the framework hands it to isComplete: the request started this many seconds ago. */
export function requestStarted(startedSecondsAgo = 0): Record<string, string> {
  return { [Attr.REQUEST_STARTED_AT]: secondsAgo(startedSecondsAgo) };
}

/**
 * The isComplete request the provider framework sends after `event`: with the physical id onEvent returned, and
 * onEvent's Data (by default: the request started just now; `null` for a request started by an earlier handler
 * version, which recorded no start).
 */
export function isCompleteEvent(
  event: OnEventRequest,
  physicalId: string = event.PhysicalResourceId ?? IMAGE_ID,
  data: Record<string, string> | null = requestStarted(0),
): IsCompleteRequest {
  return { ...event, PhysicalResourceId: physicalId, ...(data ? { Data: data } : {}) };
}

/**
 * The event with properties the construct would never write laid over its encoded ones. Only for tests whose
 * purpose is to feed the decoder malformed properties: the names and values stay written by hand there.
 */
export function withRawProperties<T extends OnEventRequest>(event: T, raw: Record<string, unknown>): T {
  return { ...event, ResourceProperties: { ...event.ResourceProperties, ...raw } };
}

/** Encoded properties without the named ones: what an earlier construct, which did not write them, delivers. */
export function withoutProperties(props: Record<string, unknown>, ...names: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(props).filter(([name]) => !names.includes(name)));
}

/** The tags that make an image the resource's own: the management tag, its stack id and its logical id. */
export function ownershipTags(stackId: string = STACK_ID, logicalId: string = LOGICAL_ID): Array<{ Key: string; Value: string }> {
  return [
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_ID, Value: stackId },
    { Key: Tag.LOGICAL_ID, Value: logicalId },
  ];
}

/** An EC2 service error as the SDK throws it, with its code as its name. */
export function serviceError(name: string, message = `${name} (simulated)`): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: 'client', $metadata: {}, message });
}

/** The console of the current test, as setUpHandlerTests mocks it. */
export interface HandlerConsole {
  /** console.log, where the handlers write their JSON log lines. */
  readonly log: jest.SpyInstance;
  /** console.warn. */
  readonly warn: jest.SpyInstance;
  /** The lines the handlers logged with level error. */
  errorLogs(): Array<Record<string, unknown>>;
}

/**
 * The setup every handler test file shares; call it once at the top level, before the file's own hooks. Before each
 * test: resets the aws-sdk-client-mock `mocks`, sets AWS_REGION to {@link HOME_REGION} as the Lambda runtime does
 * (the snapshots a Delete leaves in use are named with their region), and silences console.log and console.warn.
 * After each: restores every spy and AWS_REGION. Returns the current test's console spies.
 */
export function setUpHandlerTests(...mocks: Array<{ reset(): unknown }>): HandlerConsole {
  const savedRegion = process.env.AWS_REGION;
  let log: jest.SpyInstance | undefined;
  let warn: jest.SpyInstance | undefined;

  beforeEach(() => {
    for (const mock of mocks) {
      mock.reset();
    }
    process.env.AWS_REGION = HOME_REGION;
    log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.restoreAllMocks();
    if (savedRegion === undefined) {
      delete process.env.AWS_REGION;
    } else {
      process.env.AWS_REGION = savedRegion;
    }
  });

  const spy = (which: jest.SpyInstance | undefined) => {
    if (!which) {
      throw new Error('setUpHandlerTests: the console is mocked only while a test runs');
    }
    return which;
  };
  return {
    get log() {
      return spy(log);
    },
    get warn() {
      return spy(warn);
    },
    errorLogs() {
      return spy(log).mock.calls.map((args) => JSON.parse(String(args[0]))).filter((line) => line.level === 'error');
    },
  };
}
