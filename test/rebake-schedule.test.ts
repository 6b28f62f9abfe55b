/**
 * RebakeSchedule: the UTC buckets it derives `rebakeTrigger` from, and what they do to a deploy: the same template
 * within a bucket, a new builder (and so a new image) in the next one.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { App, Errors, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BakedImage, RebakeSchedule } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';
import { thrownBy } from './support/thrown';

removeTemporaryAssembliesAfterAll();

const utc = (iso: string) => new Date(iso);

describe('RebakeSchedule.weekly', () => {
  test.each([
    ['2026-11-25T12:00:00Z', '2026-W48'],
    ['2026-01-01T00:00:00Z', '2026-W01'],
    ['2026-12-31T23:59:59.999Z', '2026-W53'],
  ])('names the ISO 8601 week of %s: %s', (at, week) => {
    expect(RebakeSchedule.weekly(utc(at))).toBe(week);
  });

  test('counts the last days of December in week 1 of the next year when that week\'s Thursday is in January', () => {
    expect(RebakeSchedule.weekly(utc('2025-12-28T23:59:59.999Z'))).toBe('2025-W52'); // Sunday
    expect(RebakeSchedule.weekly(utc('2025-12-29T00:00:00Z'))).toBe('2026-W01'); // Monday
    expect(RebakeSchedule.weekly(utc('2024-12-30T00:00:00Z'))).toBe('2025-W01');
  });

  test('counts the first days of January in the last week of the year before when that week\'s Thursday is in December', () => {
    expect(RebakeSchedule.weekly(utc('2027-01-01T00:00:00Z'))).toBe('2026-W53'); // Friday
    expect(RebakeSchedule.weekly(utc('2027-01-03T23:59:59.999Z'))).toBe('2026-W53'); // Sunday
    expect(RebakeSchedule.weekly(utc('2027-01-04T00:00:00Z'))).toBe('2027-W01'); // Monday
    expect(RebakeSchedule.weekly(utc('2023-01-01T00:00:00Z'))).toBe('2022-W52');
  });

  test('has a week 53 only in years whose January 1st is a Thursday, or a Wednesday in a leap year', () => {
    expect(RebakeSchedule.weekly(utc('2020-12-31T00:00:00Z'))).toBe('2020-W53'); // leap year from a Wednesday
    expect(RebakeSchedule.weekly(utc('2015-12-31T00:00:00Z'))).toBe('2015-W53'); // from a Thursday
    expect(RebakeSchedule.weekly(utc('2025-12-28T00:00:00Z'))).toBe('2025-W52'); // from a Wednesday, not a leap year
    expect(RebakeSchedule.weekly(utc('2024-12-29T00:00:00Z'))).toBe('2024-W52'); // leap year from a Monday
  });

  test('starts a new week on Monday 00:00 UTC, not on Sunday', () => {
    expect(RebakeSchedule.weekly(utc('2026-11-22T00:00:00Z'))).toBe('2026-W47'); // Sunday
    expect(RebakeSchedule.weekly(utc('2026-11-22T23:59:59.999Z'))).toBe('2026-W47');
    expect(RebakeSchedule.weekly(utc('2026-11-23T00:00:00Z'))).toBe('2026-W48'); // the following Monday
  });

  test('takes the week of the instant in UTC, whatever the offset it is written with', () => {
    // Monday 00:30 in Berlin and Sunday 18:30 in New York are both Sunday 23:30 UTC.
    expect(RebakeSchedule.weekly(utc('2026-11-23T00:30:00+01:00'))).toBe('2026-W47');
    expect(RebakeSchedule.weekly(utc('2026-11-22T18:30:00-05:00'))).toBe('2026-W47');
    expect(RebakeSchedule.weekly(utc('2026-11-22T23:30:00Z'))).toBe('2026-W47');
  });

  test('gives the same buckets for the same instant whatever the time zone of the machine that synthesizes', () => {
    // Instants close to midnight UTC, where UTC+14 is a day ahead and UTC-11 a day behind: the Monday of the week
    // whose Thursday is 2026-01-01, the end of the ISO week-year 2026, of January 2027 (both Sundays), and the Monday
    // after. Jest gives a test file a copy of process.env, so the time zones are switched in a Node process of their own.
    const script = `
      const { RebakeSchedule } = require('./src/rebake-schedule');
      const instants = ['2025-12-29T00:30:00Z', '2027-01-03T23:30:00Z', '2027-01-31T23:30:00Z', '2027-02-01T00:30:00Z'].map((at) => new Date(at));
      const zones = {};
      for (const zone of ['UTC', 'Pacific/Kiritimati', 'Pacific/Pago_Pago']) {
        process.env.TZ = zone;
        zones[zone] = {
          buckets: instants.map((at) => [RebakeSchedule.weekly(at), RebakeSchedule.daily(at), RebakeSchedule.monthly(at)]),
          localDates: instants.map((at) => at.getDate()),
        };
      }
      console.log(JSON.stringify(zones));`;
    const child = spawnSync(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script], {
      cwd: path.join(__dirname, '..'),
      env: { ...process.env, TS_NODE_PROJECT: 'tsconfig.dev.json' },
      encoding: 'utf8',
    });
    expect(child.stderr).toBe('');
    const zones = JSON.parse(child.stdout);

    const utcBuckets = [
      ['2026-W01', '2025-12-29', '2025-12'],
      ['2026-W53', '2027-01-03', '2027-01'],
      ['2027-W04', '2027-01-31', '2027-01'],
      ['2027-W05', '2027-02-01', '2027-02'],
    ];
    expect(zones.UTC.buckets).toEqual(utcBuckets);
    expect(zones['Pacific/Kiritimati'].buckets).toEqual(utcBuckets);
    expect(zones['Pacific/Pago_Pago'].buckets).toEqual(utcBuckets);
    // The zones did apply: the local dates differ from the UTC ones.
    expect(zones.UTC.localDates).toEqual([29, 3, 31, 1]);
    expect(zones['Pacific/Kiritimati'].localDates).toEqual([29, 4, 1, 1]);
    expect(zones['Pacific/Pago_Pago'].localDates).toEqual([28, 3, 31, 31]);
  });

  test('pads the year to four digits and does not read the years 0 to 99 as 19xx', () => {
    const at = new Date(0);
    at.setUTCFullYear(5, 0, 1); // a Saturday (Date.UTC(5, 0, 1) would be 1905-01-01)
    expect(RebakeSchedule.weekly(at)).toBe('0004-W53');
    expect(RebakeSchedule.daily(at)).toBe('0005-01-01');
    expect(RebakeSchedule.monthly(at)).toBe('0005-01');
  });

  test('writes the years before 0 and after 9999 as ISO 8601 expanded years, as Date.toISOString does, to the ends of the Date range', () => {
    const [first, last] = [new Date(-8.64e15), new Date(8.64e15)]; // a Tuesday and a Saturday
    expect([RebakeSchedule.daily(first), RebakeSchedule.daily(last)]).toEqual([first, last].map((at) => at.toISOString().slice(0, -14)));
    expect([RebakeSchedule.weekly(first), RebakeSchedule.weekly(last)]).toEqual(['-271821-W16', '+275760-W37']);
  });
});

describe('RebakeSchedule.daily and monthly', () => {
  test('name the UTC date and month of the instant', () => {
    expect(RebakeSchedule.daily(utc('2026-11-29T08:00:00Z'))).toBe('2026-11-29');
    expect(RebakeSchedule.monthly(utc('2026-11-29T08:00:00Z'))).toBe('2026-11');
  });

  test('take the date and month in UTC, whatever the offset the instant is written with', () => {
    // 2026-12-01 01:00 in Berlin is still November 30 in UTC.
    expect(RebakeSchedule.daily(utc('2026-12-01T01:00:00+02:00'))).toBe('2026-11-30');
    expect(RebakeSchedule.monthly(utc('2026-12-01T01:00:00+02:00'))).toBe('2026-11');
    expect(RebakeSchedule.daily(utc('2026-11-30T23:00:00-02:00'))).toBe('2026-12-01');
    expect(RebakeSchedule.monthly(utc('2026-11-30T23:00:00-02:00'))).toBe('2026-12');
  });

  test('change at midnight UTC and on the first of the month', () => {
    expect(RebakeSchedule.daily(utc('2026-02-28T23:59:59.999Z'))).toBe('2026-02-28');
    expect(RebakeSchedule.daily(utc('2026-03-01T00:00:00Z'))).toBe('2026-03-01');
    expect(RebakeSchedule.monthly(utc('2026-02-28T23:59:59.999Z'))).toBe('2026-02');
    expect(RebakeSchedule.monthly(utc('2026-03-01T00:00:00Z'))).toBe('2026-03');
  });
});

describe('without an instant', () => {
  test('every schedule takes the bucket of now', () => {
    const before = new Date();
    const buckets = { weekly: RebakeSchedule.weekly(), daily: RebakeSchedule.daily(), monthly: RebakeSchedule.monthly() };
    const after = new Date();
    // Checked against both ends, so that a test that runs across midnight UTC does not fail.
    expect([RebakeSchedule.weekly(before), RebakeSchedule.weekly(after)]).toContain(buckets.weekly);
    expect([RebakeSchedule.daily(before), RebakeSchedule.daily(after)]).toContain(buckets.daily);
    expect([RebakeSchedule.monthly(before), RebakeSchedule.monthly(after)]).toContain(buckets.monthly);
    expect([before.toISOString().slice(0, 10), after.toISOString().slice(0, 10)]).toContain(buckets.daily);
  });
});

describe('an invalid date', () => {
  test.each([
    ['weekly', () => RebakeSchedule.weekly(new Date('not a date'))],
    ['daily', () => RebakeSchedule.daily(new Date(NaN))],
    ['monthly', () => RebakeSchedule.monthly(new Date('2026-13-01T00:00:00Z'))],
  ])('throws an aws-cdk validation error from %s that names the method, the value and the fix', (method, call) => {
    const error = thrownBy(call);
    expect(Errors.isValidationError(error)).toBe(true);
    expect(error.name).toBe('RebakeScheduleInvalidDate');
    expect(error.message).toBe(`RebakeSchedule.${method}(at) needs a valid date, got Invalid Date: `
      + 'pass a Date such as new Date(\'2026-11-25T00:00:00Z\'), or nothing for now');
  });

  test('throws for a value that is not a Date, which a JavaScript caller can pass', () => {
    const error = thrownBy(() => RebakeSchedule.weekly('2026-11-25' as unknown as Date));
    expect(error.name).toBe('RebakeScheduleInvalidDate');
    expect(error.message).toMatch(/^RebakeSchedule\.weekly\(at\) needs a valid date, got 2026-11-25: pass a Date/);
  });
});

describe('a BakedImage with rebakeTrigger: RebakeSchedule.weekly(at)', () => {
  /** The template of an app with one weekly rebaked image, synthesized at `at`. */
  function synthesizeAt(at: Date): Template {
    const app = new App();
    const stack = new Stack(app, 'TestStack', { env: { account: '123456789012', region: 'us-east-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    new BakedImage(stack, 'Image', {
      vpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('dnf -y upgrade --releasever=latest')),
      rebakeTrigger: RebakeSchedule.weekly(at),
    });
    return Template.fromStack(stack);
  }

  function builderLogicalId(template: Template): string {
    const builders = Object.keys(template.findResources('AWS::EC2::Instance'));
    expect(builders).toHaveLength(1);
    return builders[0];
  }

  function bakeProperties(template: Template): Record<string, unknown> {
    const bakes = Object.values(template.findResources('Custom::BakedImage'));
    expect(bakes).toHaveLength(1);
    return bakes[0].Properties;
  }

  test('synthesizes the same template at two instants of the same week: a deploy changes nothing', () => {
    const monday = synthesizeAt(utc('2026-11-23T00:00:00Z'));
    const sunday = synthesizeAt(utc('2026-11-29T23:59:59.999Z'));

    expect(sunday.toJSON()).toEqual(monday.toJSON());
    // The week did reach the template: were the trigger dropped, every template would be the same.
    expect(bakeProperties(monday).RebakeTrigger).toBe('2026-W48');
  });

  test('replaces the builder in the next week: a new logical id, which the bake custom resource follows', () => {
    const sunday = synthesizeAt(utc('2026-11-29T23:59:59.999Z'));
    const monday = synthesizeAt(utc('2026-11-30T00:00:00Z'));

    const oldBuilder = builderLogicalId(sunday);
    const newBuilder = builderLogicalId(monday);
    expect(newBuilder).not.toBe(oldBuilder);
    expect(bakeProperties(sunday).InstanceId).toEqual({ Ref: oldBuilder });
    expect(bakeProperties(monday).InstanceId).toEqual({ Ref: newBuilder });
    expect(bakeProperties(monday).RebakeTrigger).toBe('2026-W49');
  });
});
