import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import type { BakedImageProviderProps } from '../provider-settings';

/** The provider's log retention unless BakedImageProvider.configure sets another: CT.CLOUDWATCH.PR.2 asks for a year. */
export const DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_YEAR;

/** What BakedImageProvider.configure refuses. */
export function settingsProblems(settings: BakedImageProviderProps): string[] {
  const problems: string[] = [];
  if (!settings.vpc && settings.vpcSubnets) {
    problems.push('vpcSubnets needs vpc');
  }
  if (!settings.vpc && settings.securityGroups) {
    problems.push('securityGroups needs vpc');
  }
  if (settings.securityGroups && settings.securityGroups.length === 0) {
    problems.push('securityGroups must list at least one group; leave it out for a new one');
  }
  return problems;
}

/** The settings with their defaults filled in: leaving a setting out is the same as asking for its default. */
export function effectiveSettings(settings: BakedImageProviderProps): BakedImageProviderProps {
  return {
    ...settings,
    logRetention: settings.logRetention ?? DEFAULT_LOG_RETENTION,
    waiterLogLevel: settings.waiterLogLevel ?? sfn.LogLevel.OFF,
    waiterTracing: settings.waiterTracing ?? true,
  };
}

/**
 * Whether two settings are the same: the same constructs and keys (by identity), the same values, subnet selections
 * and lists element by element.
 */
export function sameSettings(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, index) => sameSettings(item, b[index]));
  }
  const plain = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
  if (plain(a) && plain(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((key) => a[key] !== undefined || b[key] !== undefined));
    return [...keys].every((key) => sameSettings(a[key], b[key]));
  }
  return false;
}
