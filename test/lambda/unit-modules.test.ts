import { EC2ServiceException } from '@aws-sdk/client-ec2';
import { fitReason, forCloudFormation, MAX_REASON_BYTES } from '../../lambda/bake-image/errors';
import { bakeProgress } from '../../lambda/bake-image/image-state';
import { NOT_VISIBLE_GRACE_SECONDS, secondsSinceStart, SNAPSHOT_RELEASE_SECONDS, startData } from '../../lambda/bake-image/request-clock';
import { stackName } from '../../lambda/bake-image/tags';
import { BuilderAfterBake } from '../../src/builder-after-bake';
import {
  type BakeProperties, imageInputsChanged, InvalidPropertiesError, decodeProperties,
  IMAGE_NAME_PATTERN,
  IMAGE_INPUTS,
  MAX_IMAGE_NAME_LENGTH,
  MAX_NAME_PREFIX_LENGTH,
  NAME_FINGERPRINT_LENGTH,
  type BakeSpec,
} from '../../src/private/contract';
import { imageName } from '../../src/private/contract';
import { bakeSpec, BUILDER_ID } from '../support/fixtures';
import { thrownBy } from '../support/thrown';

/**
 * The decoder's own tests below feed it property objects written by hand, as CloudFormation delivers them: only the
 * required ones (what an earlier construct may have written), malformed values, and every wire name spelled out,
 * which pins the names the encoder must keep. The other tests build their properties with test/support/fixtures.ts.
 */
const REQUIRED = { InstanceId: BUILDER_ID, NamePrefix: 'web' };

/** A spec for imageName: the fixture's, without a description unless the test gives one. */
function props(overrides: Partial<BakeSpec> = {}): BakeSpec {
  return bakeSpec({ description: undefined, ...overrides });
}

describe('decodeProperties', () => {
  test('applies the defaults when only the required properties are given', () => {
    expect(decodeProperties({ ...REQUIRED })).toEqual({
      instanceId: BUILDER_ID,
      namePrefix: 'web',
      description: undefined,
      noReboot: false,
      rebakeTrigger: undefined,
      removal: 'destroy',
      builderAfterBake: BuilderAfterBake.STOP,
      bakeTimeoutSeconds: undefined,
      sharing: { accounts: [], organizationArns: [], organizationalUnitArns: [] },
      manifest: { baseImageId: undefined, configSets: undefined, initFingerprint: undefined, libraryVersion: undefined },
      deprecateAfterSeconds: undefined,
      deregistrationProtection: false,
      // Absent in the properties of earlier versions: they never made an image IMDSv2-only.
      requireImdsv2: false,
      fastSnapshotRestoreZones: [],
      keepSuperseded: 0,
      copyToRegions: [],
      copyKmsKeyIds: {},
    });
  });

  test('parses every property from the strings CloudFormation delivers', () => {
    expect(decodeProperties({
      ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider',
      InstanceId: BUILDER_ID,
      NamePrefix: 'web',
      Description: 'Web server image',
      NoReboot: 'true',
      RebakeTrigger: 'v2',
      Removal: 'retain',
      BuilderAfterBake: 'keep-running',
      BakeTimeoutSeconds: '5400',
      ShareWithAccounts: ['111122223333', '444455556666', '111122223333'],
      ShareWithOrganizations: ['arn:aws:organizations::123456789012:organization/o-abcdef1234'],
      ShareWithOrganizationalUnits: ['arn:aws:organizations::123456789012:ou/o-abcdef1234/ou-ab12-cdef3456'],
      BaseImageId: 'ami-0aaaaaaaaaaaaaaaa',
      ConfigSets: 'packages app',
      InitFingerprint: '0123456789abcdef',
      LibraryVersion: '1.2.3',
      DeprecateAfterSeconds: '7776000',
      DeregistrationProtection: 'true',
      RequireImdsv2: 'true',
      FastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b', 'us-east-1a'],
      KeepSupersededImages: '3',
    })).toEqual({
      instanceId: BUILDER_ID,
      namePrefix: 'web',
      description: 'Web server image',
      noReboot: true,
      rebakeTrigger: 'v2',
      removal: 'retain',
      builderAfterBake: 'keep-running',
      bakeTimeoutSeconds: 5400,
      sharing: {
        accounts: ['111122223333', '444455556666'],
        organizationArns: ['arn:aws:organizations::123456789012:organization/o-abcdef1234'],
        organizationalUnitArns: ['arn:aws:organizations::123456789012:ou/o-abcdef1234/ou-ab12-cdef3456'],
      },
      manifest: { baseImageId: 'ami-0aaaaaaaaaaaaaaaa', configSets: 'packages app', initFingerprint: '0123456789abcdef', libraryVersion: '1.2.3' },
      deprecateAfterSeconds: 7776000,
      deregistrationProtection: true,
      requireImdsv2: true,
      fastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b'],
      keepSuperseded: 3,
      copyToRegions: [],
      copyKmsKeyIds: {},
    });
  });

  test.each(['-1', '2.5', '51', 'three'])('rejects KeepSupersededImages %s', (value) => {
    expect(() => decodeProperties({ ...REQUIRED, KeepSupersededImages: value })).toThrow(/KeepSupersededImages must be a whole number from 0 to 50/);
  });

  test.each([
    ['ShareWithAccounts', ['12345'], /ShareWithAccounts must list 12-digit account ids, got '12345'/],
    ['ShareWithAccounts', '111122223333', /ShareWithAccounts must be a list of 12-digit account ids/],
    ['ShareWithOrganizations', ['o-abcdef1234'], /ShareWithOrganizations must list organization ARNs/],
    ['ShareWithOrganizationalUnits', ['ou-ab12-cdef3456'], /ShareWithOrganizationalUnits must list organizational unit ARNs/],
  ])('rejects %s %j', (name, value, message) => {
    expect(() => decodeProperties({ ...REQUIRED, [name]: value })).toThrow(message);
  });

  test.each([
    ['true', true],
    ['false', false],
  ])('reads NoReboot %s as the boolean %s', (value, expected) => {
    expect(decodeProperties({ ...REQUIRED, NoReboot: value }).noReboot).toBe(expected);
  });

  test('accepts each builder mode', () => {
    for (const mode of ['stop', 'terminate', 'keep-running']) {
      expect(decodeProperties({ ...REQUIRED, BuilderAfterBake: mode }).builderAfterBake).toBe(mode);
    }
  });

  test('accepts each removal mode', () => {
    for (const mode of ['destroy', 'retain']) {
      expect(decodeProperties({ ...REQUIRED, Removal: mode }).removal).toBe(mode);
    }
  });

  test('treats empty optional strings as absent', () => {
    const parsed = decodeProperties({
      ...REQUIRED,
      Description: '',
      NoReboot: '',
      RebakeTrigger: '',
      Removal: '',
      BuilderAfterBake: '',
      BakeTimeoutSeconds: '',
    });

    expect(parsed).toEqual(decodeProperties({ ...REQUIRED }));
  });

  test.each([
    ['NoReboot', 'yes'],
    ['NoReboot', 'TRUE'],
    ['NoReboot', '1'],
    ['Removal', 'delete'],
    ['Removal', 'DESTROY'],
    ['BuilderAfterBake', 'hibernate'],
    ['BakeTimeoutSeconds', '0'],
    ['BakeTimeoutSeconds', '-60'],
    ['BakeTimeoutSeconds', '90.5'],
    ['BakeTimeoutSeconds', 'an hour'],
  ])('rejects %s %p with an error naming the property and the value', (name, value) => {
    const error = thrownBy(() => decodeProperties({ ...REQUIRED, [name]: value }));

    expect(error).toBeInstanceOf(InvalidPropertiesError);
    expect(error.name).toBe('InvalidPropertiesError');
    expect(error.message).toContain(`Property ${name}`);
    expect(error.message).toContain(`'${value}'`);
  });

  test('lists the allowed values when a mode is not one of them', () => {
    expect(() => decodeProperties({ ...REQUIRED, BuilderAfterBake: 'hibernate' }))
      .toThrow("Property BuilderAfterBake must be one of stop, terminate, keep-running, got 'hibernate'");
  });

  test.each(['InstanceId', 'NamePrefix'])('requires %s', (name) => {
    const missing: Record<string, unknown> = { ...REQUIRED };
    delete missing[name];

    expect(() => decodeProperties(missing)).toThrow(InvalidPropertiesError);
    expect(() => decodeProperties(missing)).toThrow(`Property ${name} is required`);
    expect(() => decodeProperties({ ...REQUIRED, [name]: '' })).toThrow(`Property ${name} is required`);
  });

  test('rejects a property that is not a scalar', () => {
    expect(() => decodeProperties({ ...REQUIRED, Description: { text: 'x' } })).toThrow('Property Description must be a string, got object');
  });
});

describe('imageInputsChanged', () => {
  const base = { ServiceToken: 'token', InstanceId: BUILDER_ID, NamePrefix: 'web', Description: 'd', NoReboot: 'false', RebakeTrigger: 'v1' };

  test('lists exactly the properties that shape the image', () => {
    expect(Object.values(IMAGE_INPUTS).sort()).toEqual(['Description', 'InstanceId', 'NamePrefix', 'NoReboot', 'RebakeTrigger']);
  });

  test('reports no change for identical properties', () => {
    expect(imageInputsChanged(base, { ...base })).toBe(false);
  });

  test.each([
    ['InstanceId', 'i-0aaaaaaaaaaaaaaaa'],
    ['NamePrefix', 'web2'],
    ['Description', 'd2'],
    ['NoReboot', 'true'],
    ['RebakeTrigger', 'v2'],
  ])('reports a change when %s changes', (name, value) => {
    expect(imageInputsChanged(base, { ...base, [name]: value })).toBe(true);
  });

  test.each(['Description', 'RebakeTrigger'])('reports a change when %s is added or removed', (name) => {
    const without: Record<string, unknown> = { ...base };
    delete without[name];

    expect(imageInputsChanged(without, base)).toBe(true);
    expect(imageInputsChanged(base, without)).toBe(true);
  });

  test.each([
    ['Removal', 'destroy', 'retain'],
    ['BuilderAfterBake', 'stop', 'terminate'],
    ['BakeTimeoutSeconds', '3600', '7200'],
    ['ServiceToken', 'token', 'other-token'],
  ])('ignores a change of %s, which does not shape the image', (name, before, after) => {
    expect(imageInputsChanged({ ...base, [name]: before }, { ...base, [name]: after })).toBe(false);
  });

  test('treats an absent property and an empty string as equal', () => {
    const withoutTrigger: Record<string, unknown> = { ...base };
    delete withoutTrigger.RebakeTrigger;

    expect(imageInputsChanged(withoutTrigger, { ...base, RebakeTrigger: '' })).toBe(false);
    expect(imageInputsChanged({ ...base, RebakeTrigger: '' }, withoutTrigger)).toBe(false);
  });

  test('compares against an empty set of old properties as a change', () => {
    expect(imageInputsChanged({}, base)).toBe(true);
  });
});

describe('imageName', () => {
  test('is the prefix followed by a 16 hex digit fingerprint', () => {
    expect(imageName(props())).toMatch(/^web-[0-9a-f]{16}$/);
    expect(NAME_FINGERPRINT_LENGTH).toBe(16);
  });

  test('is deterministic for equal inputs', () => {
    expect(imageName(props({ description: 'd', rebakeTrigger: 'v1' }))).toBe(imageName(props({ description: 'd', rebakeTrigger: 'v1' })));
  });

  test('keeps the names of existing images stable across releases', () => {
    // Changing the naming scheme would make rollbacks and retried creates miss the images already made.
    expect(imageName(props({ description: 'Web server image' }))).toBe('web-b1d9ebdcc09bd98c');
    expect(imageName(props())).toBe('web-9cc1ca356c7583ff');
  });

  test.each<[string, Partial<BakeProperties>]>([
    ['instanceId', { instanceId: 'i-0aaaaaaaaaaaaaaaa' }],
    ['namePrefix', { namePrefix: 'api' }],
    ['description', { description: 'another description' }],
    ['noReboot', { noReboot: true }],
    ['rebakeTrigger', { rebakeTrigger: 'v2' }],
  ])('changes when %s changes', (_name, change) => {
    expect(imageName(props(change))).not.toBe(imageName(props()));
  });

  test.each<[string, Partial<BakeProperties>]>([
    ['removal', { removal: 'retain' }],
    ['builderAfterBake', { builderAfterBake: BuilderAfterBake.TERMINATE }],
    ['bakeTimeoutSeconds', { bakeTimeoutSeconds: 60 }],
  ])('does not change when %s changes', (_name, change) => {
    expect(imageName(props(change))).toBe(imageName(props()));
  });

  test('does not confuse inputs that would concatenate to the same text', () => {
    expect(imageName(props({ description: 'v1' }))).not.toBe(imageName(props({ rebakeTrigger: 'v1' })));
    expect(imageName(props({ description: 'a', rebakeTrigger: 'b' }))).not.toBe(imageName(props({ description: 'ab' })));
  });

  test('treats an absent and an empty description or trigger alike', () => {
    expect(imageName(props({ description: '', rebakeTrigger: '' }))).toBe(imageName(props()));
  });

  test('fits EC2\'s name rules with the longest allowed prefix', () => {
    const prefix = 'a'.repeat(MAX_NAME_PREFIX_LENGTH);
    const name = imageName(props({ namePrefix: prefix, description: 'any', rebakeTrigger: 'x'.repeat(500) }));

    expect(MAX_NAME_PREFIX_LENGTH).toBe(111);
    expect(name).toHaveLength(MAX_IMAGE_NAME_LENGTH);
    expect(name.length).toBeLessThanOrEqual(128);
    expect(name).toMatch(IMAGE_NAME_PATTERN);
    expect(name.startsWith(`${prefix}-`)).toBe(true);
  });

  test('keeps a prefix made of every allowed character within EC2\'s pattern', () => {
    const name = imageName(props({ namePrefix: "Web (v1) [x86]./-'@_ image" }));

    expect(name).toMatch(IMAGE_NAME_PATTERN);
  });
});

describe('bakeProgress', () => {
  test('is pending while the image is pending', () => {
    expect(bakeProgress({ State: 'pending' })).toEqual({ kind: 'pending' });
  });

  test('is still pending while EC2 reports the short-lived transient state', () => {
    expect(bakeProgress({ State: 'transient' })).toEqual({ kind: 'pending' });
  });

  test('is available once the image is available', () => {
    expect(bakeProgress({ State: 'available' })).toEqual({ kind: 'available' });
  });

  test('fails with the code and message of the state reason', () => {
    expect(bakeProgress({ State: 'failed', StateReason: { Code: 'Client.InternalError', Message: 'volume unreadable' } }))
      .toEqual({ kind: 'failed', state: 'failed', reason: 'Client.InternalError: volume unreadable' });
  });

  test('fails with whichever part of the state reason is present', () => {
    expect(bakeProgress({ State: 'failed', StateReason: { Code: 'Server.InternalError' } }))
      .toEqual({ kind: 'failed', state: 'failed', reason: 'Server.InternalError' });
    expect(bakeProgress({ State: 'failed', StateReason: { Message: 'volume unreadable' } }))
      .toEqual({ kind: 'failed', state: 'failed', reason: 'volume unreadable' });
  });

  test('fails saying no reason was given when EC2 gave none', () => {
    expect(bakeProgress({ State: 'failed' })).toEqual({ kind: 'failed', state: 'failed', reason: 'no reason given' });
  });

  test.each(['error', 'invalid', 'deregistered', 'disabled', 'some-future-state'])('fails for the state %s', (state) => {
    expect(bakeProgress({ State: state })).toMatchObject({ kind: 'failed', state });
  });

  test('fails with an unknown state when EC2 reports none', () => {
    expect(bakeProgress({})).toEqual({ kind: 'failed', state: 'unknown', reason: 'no reason given' });
  });

  test('fails as not found when there is no image', () => {
    expect(bakeProgress(undefined)).toMatchObject({ kind: 'failed', state: 'not found' });
  });
});

describe('stackName', () => {
  test('takes the stack name from a stack ARN', () => {
    expect(stackName('arn:aws:cloudformation:us-east-1:123456789012:stack/MyStack/11111111-2222-3333-4444-555555555555')).toBe('MyStack');
  });

  test('keeps hyphens in the stack name', () => {
    expect(stackName('arn:aws-cn:cloudformation:cn-north-1:123456789012:stack/my-app-prod/abcd')).toBe('my-app-prod');
  });

  test('returns a value that is not an ARN unchanged', () => {
    expect(stackName('MyStack')).toBe('MyStack');
  });
});

/** Bytes of the text inside a JSON string, as CloudFormation's response carries it. */
function escapedBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), 'utf8') - 2;
}

describe('fitReason', () => {
  const CUT = '\n[...]\n';

  /** The kept start and end of a cut text. */
  function parts(cut: string): { head: string; tail: string } {
    const at = cut.indexOf(CUT);
    expect(at).toBeGreaterThan(0);
    expect(cut.indexOf(CUT, at + 1)).toBe(-1);
    return { head: cut.slice(0, at), tail: cut.slice(at + CUT.length) };
  }

  test('leaves a text within the budget unchanged, up to the last byte', () => {
    expect(fitReason('Image ami-0123 is failed', 1500)).toBe('Image ami-0123 is failed');
    expect(fitReason('x'.repeat(1500), 1500)).toBe('x'.repeat(1500));
    expect(fitReason('', 1500)).toBe('');
  });

  test('cuts a longer text to the budget, keeping two thirds from its start and the rest from its end, marked where cut', () => {
    const text = `START ${'a'.repeat(3000)} middle ${'z'.repeat(3000)} END`;

    const cut = fitReason(text, 1500);

    expect(escapedBytes(cut)).toBeLessThanOrEqual(1500);
    // Nothing wasted: the budget less the marker (9 escaped bytes) is used up.
    expect(escapedBytes(cut)).toBe(1500);
    const { head, tail } = parts(cut);
    expect(text.startsWith(head)).toBe(true);
    expect(text.endsWith(tail)).toBe(true);
    expect(head.startsWith('START ')).toBe(true);
    expect(tail.endsWith(' END')).toBe(true);
    expect(head).toHaveLength(Math.floor(((1500 - 9) * 2) / 3));
    expect(tail).toHaveLength(1500 - 9 - head.length);
    expect(cut).not.toContain('middle');
  });

  test('cuts one byte over the budget', () => {
    const cut = fitReason('x'.repeat(1501), 1500);
    expect(cut).not.toBe('x'.repeat(1501));
    expect(escapedBytes(cut)).toBeLessThanOrEqual(1500);
    expect(cut).toContain(CUT);
  });

  test('counts control characters, quotes and newlines as their JSON escapes', () => {
    // 1,000 characters, but 6,000 bytes once escaped (\u0001): cut, where 1,000 plain characters are not.
    expect(fitReason('x'.repeat(1000), 1500)).toBe('x'.repeat(1000));
    const control = fitReason('\u0001'.repeat(1000), 1500);
    expect(escapedBytes(control)).toBeLessThanOrEqual(1500);
    expect(escapedBytes(control)).toBeGreaterThan(1500 - 6);
    expect(Array.from(control.replace(CUT, '')).every((char) => char === '\u0001')).toBe(true);
    // A newline escapes to 2 bytes, a quote to 2: 750 of either fill the budget exactly, 751 do not.
    expect(fitReason('\n'.repeat(750), 1500)).toBe('\n'.repeat(750));
    expect(fitReason('"'.repeat(750), 1500)).toBe('"'.repeat(750));
    expect(escapedBytes(fitReason('\n'.repeat(751), 1500))).toBeLessThanOrEqual(1500);
    expect(fitReason('"'.repeat(751), 1500)).toContain(CUT);
  });

  test('counts multi-byte characters by their UTF-8 bytes and never splits one', () => {
    const text = '€'.repeat(400) + '😀'.repeat(400);

    const cut = fitReason(text, 1500);

    expect(escapedBytes(cut)).toBeLessThanOrEqual(1500);
    const { head, tail } = parts(cut);
    expect(head).toBe('€'.repeat(head.length));
    expect(Array.from(tail).every((char) => char === '😀')).toBe(true);
    // No lone surrogate: the text survives a round trip through UTF-8.
    expect(Buffer.from(cut, 'utf8').toString('utf8')).toBe(cut);
  });
});

describe('forCloudFormation', () => {
  let logSpy: jest.SpyInstance;

  beforeEach(() => {
    logSpy = jest.spyOn(console, 'log').mockImplementation(() => undefined);
  });

  afterEach(() => jest.restoreAllMocks());

  const logged = () => logSpy.mock.calls.map((args) => JSON.parse(String(args[0])));

  test('keeps a short message as it is, in a plain error without a stack', () => {
    const error = new EC2ServiceException({ name: 'UnauthorizedOperation', $fault: 'client', $metadata: { attempts: 1 }, message: 'Could not stop builder i-1: UnauthorizedOperation: no' });

    const answer = forCloudFormation(error);

    expect(answer).not.toBe(error);
    expect(answer).toBeInstanceOf(Error);
    expect(answer.constructor).toBe(Error);
    expect(answer.name).toBe('Error');
    expect(answer.message).toBe('Could not stop builder i-1: UnauthorizedOperation: no');
    expect(answer.stack).toBe('');
    expect(answer).not.toHaveProperty('$metadata');
  });

  test('logs the whole error, its stack included, before answering', () => {
    const error = new Error(`first line\n${'x'.repeat(5000)}`);

    const answer = forCloudFormation(error);

    expect(logSpy).toHaveBeenCalledTimes(1);
    expect(logged()).toEqual([{ level: 'error', message: 'request failed', error: error.message, stack: error.stack }]);
    expect(error.stack).toMatch(/\n\s+at /);
    // The answer is cut; the log keeps every byte.
    expect(escapedBytes(answer.message)).toBeLessThanOrEqual(MAX_REASON_BYTES);
    expect(answer.message).toBe(fitReason(error.message, MAX_REASON_BYTES));
    expect(answer.message.startsWith('first line\n')).toBe(true);
    expect(answer.stack).toBe('');
  });

  test('answers a thrown value that is not an error with its text', () => {
    const answer = forCloudFormation('plain text');

    expect(answer.message).toBe('plain text');
    expect(answer.stack).toBe('');
    expect(logged()).toEqual([{ level: 'error', message: 'request failed', error: 'plain text' }]);
  });

  test('leaves 1,500 bytes to the reason, so the framework\'s response stays within CloudFormation\'s 4,096', () => {
    expect(MAX_REASON_BYTES).toBe(1500);
  });
});

describe('request clock', () => {
  test('startData records the time as ISO 8601 under RequestStartedAt', () => {
    expect(startData(new Date('2026-05-01T12:34:56.789Z'))).toEqual({ RequestStartedAt: '2026-05-01T12:34:56.789Z' });
    const before = Date.now();
    const now = Date.parse(startData().RequestStartedAt);
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });

  test('secondsSinceStart counts from the recorded time', () => {
    const elapsed = secondsSinceStart({ Data: { RequestStartedAt: new Date(Date.now() - 90_000).toISOString() } });
    expect(elapsed).toBeGreaterThanOrEqual(90);
    expect(elapsed).toBeLessThan(95);
    expect(secondsSinceStart({ Data: startData() })).toBeLessThan(5);
  });

  test('secondsSinceStart is undefined for a request without a readable record', () => {
    expect(secondsSinceStart({})).toBeUndefined();
    expect(secondsSinceStart({ Data: {} })).toBeUndefined();
    expect(secondsSinceStart({ Data: { RequestStartedAt: 'yesterday-ish' } })).toBeUndefined();
  });

  test('gives a new image five minutes to become visible and a deregistered image\'s snapshots ten minutes to be released', () => {
    expect(NOT_VISIBLE_GRACE_SECONDS).toBe(300);
    expect(SNAPSHOT_RELEASE_SECONDS).toBe(600);
  });
});
