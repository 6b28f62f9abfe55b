import { validationError } from './private/errors';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Days before the first of each month in a common year. */
const DAYS_BEFORE_MONTH = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/**
 * Values for `rebakeTrigger` that change once per UTC time bucket: an ISO 8601 week, a day or a month.
 * With one as `rebakeTrigger`, the first deploy in a new bucket replaces the builder and bakes a new image
 * (picking up OS updates, if the `init` config applies them); every other deploy in the same bucket
 * synthesizes the same template and changes nothing. Run the pipeline on a schedule to make it automatic.
 *
 * The bucket is computed when the app is synthesized (`cdk synth`, and so `cdk deploy`), from the clock of
 * the machine that synthesizes it, in UTC, never from its time zone. Switching from one schedule to another
 * changes the trigger, and so bakes once. Tests pass a fixed `at`, so that their templates and snapshots
 * do not change with the calendar.
 *
 * @example
 * import { RebakeSchedule } from 'cdk-baked-image';
 *
 * declare const vpc: ec2.IVpc;
 * new BakedImage(this, 'WebImage', {
 *   vpc,
 *   machineImage: ec2.MachineImage.latestAmazonLinux2023(),
 *   init: ec2.CloudFormationInit.fromElements(
 *     ec2.InitCommand.shellCommand('dnf -y upgrade --releasever=latest'),
 *   ),
 *   rebakeTrigger: RebakeSchedule.weekly(),
 * });
 */
export class RebakeSchedule {
  /**
   * The ISO 8601 week of `at` in UTC, such as `2026-W48`: a new image every week, with the first deploy
   * from Monday 00:00 UTC on.
   *
   * The year is the ISO week-year, the year of the week's Thursday, which differs from the calendar year
   * around New Year: Monday 2025-12-29 is in `2026-W01`, Friday 2027-01-01 in `2026-W53`.
   *
   * @param at the instant to take the week of. Default: now, when the app is synthesized.
   */
  public static weekly(at?: Date): string {
    const instant = validInstant('weekly', at);
    const midnight = Math.floor(instant.getTime() / DAY_MS) * DAY_MS;
    const mondayBased = (instant.getUTCDay() + 6) % 7;
    const thursday = midnight + (3 - mondayBased) * DAY_MS;
    const thursdayDate = new Date(thursday);
    const week = Math.floor(dayOfUtcYear(thursdayDate) / 7) + 1;
    return `${formatYear(thursdayDate.getUTCFullYear())}-W${twoDigits(week)}`;
  }

  /**
   * The UTC date of `at`, such as `2026-11-29`: a new image every day, with the first deploy from
   * 00:00 UTC on.
   *
   * @param at the instant to take the date of. Default: now, when the app is synthesized.
   */
  public static daily(at?: Date): string {
    const instant = validInstant('daily', at);
    return `${formatYear(instant.getUTCFullYear())}-${twoDigits(instant.getUTCMonth() + 1)}-${twoDigits(instant.getUTCDate())}`;
  }

  /**
   * The UTC month of `at`, such as `2026-11`: a new image every month, with the first deploy from the
   * 1st, 00:00 UTC on.
   *
   * @param at the instant to take the month of. Default: now, when the app is synthesized.
   */
  public static monthly(at?: Date): string {
    const instant = validInstant('monthly', at);
    return `${formatYear(instant.getUTCFullYear())}-${twoDigits(instant.getUTCMonth() + 1)}`;
  }

  private constructor() {}
}

function validInstant(method: string, at: Date | undefined): Date {
  const instant = at ?? new Date();
  if (!(instant instanceof Date) || Number.isNaN(instant.getTime())) {
    throw validationError('RebakeScheduleInvalidDate',
      `RebakeSchedule.${method}(at) needs a valid date, got ${String(at)}: pass a Date such as new Date('2026-11-25T00:00:00Z'), or nothing for now`);
  }
  return instant;
}

/**
 * The day of the year of `date` in UTC, from 0 (January 1st). Counted from the month and the day, not from a
 * `Date` of January 1st, which the earliest representable year does not have.
 */
function dayOfUtcYear(date: Date): number {
  const year = date.getUTCFullYear();
  const month = date.getUTCMonth();
  const leapDay = month > 1 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 1 : 0;
  return DAYS_BEFORE_MONTH[month] + leapDay + date.getUTCDate() - 1;
}

/** Four digits, or a sign and six digits beyond them, as ISO 8601 (and `Date.toISOString`) writes years. */
function formatYear(year: number): string {
  if (year >= 0 && year <= 9999) {
    return String(year).padStart(4, '0');
  }
  return `${year < 0 ? '-' : '+'}${String(Math.abs(year)).padStart(6, '0')}`;
}

function twoDigits(value: number): string {
  return String(value).padStart(2, '0');
}
