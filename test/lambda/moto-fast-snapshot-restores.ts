/**
 * EBS fast snapshot restore (FSR) for the moto proxy: moto 5.2.1 has none of it. The proxy keeps a state per
 * (snapshot, Availability Zone), answers EnableFastSnapshotRestores, DisableFastSnapshotRestores and
 * DescribeFastSnapshotRestores as EC2 does, and disables FSR of a snapshot that is deleted through the proxy (see the
 * module comment of moto-server.ts).
 *
 * From the Amazon EBS User Guide ("Check the fast snapshot restore state", "Configure fast snapshot restore") and the
 * EC2 API Reference pages of the three calls: the states `enabling`, `optimizing` (60 minutes per TiB), `enabled`,
 * `disabling`, `disabled`; the filters `snapshot-id`, `availability-zone`, `availability-zone-id`, `owner-id`, `state`;
 * `ownerId` is the account that enabled FSR (not the snapshot's owner: for a shared snapshot they differ); the
 * `stateTransitionReason` is `Client.UserInitiated` on the way to `enabling` or `disabling` and
 * `Client.UserInitiated - Lifecycle state transition` on the way to `optimizing`, `enabled` or `disabled`; "when you
 * delete a snapshot that you own, fast snapshot restore is automatically disabled for that snapshot". Per-pair failures
 * are in the answer's `unsuccessful` set, never an HTTP error. The XML element names are those @aws-sdk/client-ec2's
 * schemas read (`successful`, `unsuccessful`, `fastSnapshotRestoreStateErrorSet`, `error`/`code`/`message`,
 * `fastSnapshotRestoreSet`, `nextToken`, `item`).
 *
 * Time is counted in requests so that tests are deterministic: each DescribeFastSnapshotRestores that shows a pair
 * moves it one step after showing it (`enabling` -> `optimizing` -> `enabled`; `disabling` -> `disabled`); a
 * `disabled` pair is shown once more and then forgotten.
 *
 * Not confirmed by AWS's documentation (assumptions, also listed in the module comment of moto-server.ts):
 * - Enable on a pair already `enabling`, `optimizing` or `enabled`, and Disable on a pair already `disabling`, are
 *   listed as successful with the pair's current state (nothing changes). Enable on a `disabling` pair starts again
 *   (`enabling`).
 * - Disable on a pair that is not enabled (never enabled, or already `disabled`) is unsuccessful with `IncorrectState`.
 * - A snapshot this account cannot see answers `InvalidSnapshot.NotFound` for each Availability Zone asked; a zone that
 *   is not one of the region's answers `InvalidParameterValue` (`Invalid availability zone: [name]`, the message
 *   CreateVolume gives).
 * - A deleted snapshot's pairs go straight to `disabled` (with the lifecycle reason). A 2020 report (rebuy-de/aws-nuke
 *   issue 453) saw DeleteSnapshot refused with `InvalidSnapshot.InUse` while FSR was enabled; the user guide now says
 *   deletion disables it, which is what is emulated here.
 * - The error codes of malformed requests (`MissingParameter`, `InvalidParameterCombination`, an unknown filter or
 *   NextToken: `InvalidParameterValue`).
 */
import { DescribeAvailabilityZonesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import {
  ec2Error,
  escapeXml,
  filterMatches,
  filterValues,
  type HttpResult,
  MOTO_ACCOUNT_ID,
  type MotoBackend,
  numberedValues,
  xmlResult,
} from './moto-http';

/** The calls this module answers. */
export const FAST_SNAPSHOT_RESTORE_ACTIONS: readonly string[] = [
  'EnableFastSnapshotRestores',
  'DisableFastSnapshotRestores',
  'DescribeFastSnapshotRestores',
];

/** EC2's FastSnapshotRestoreStateCode. */
export type FastSnapshotRestoreState = 'enabling' | 'optimizing' | 'enabled' | 'disabling' | 'disabled';

/** What DescribeFastSnapshotRestores filters on (the API Reference's list). */
const FILTERS = ['snapshot-id', 'availability-zone', 'availability-zone-id', 'owner-id', 'state'];

/** DescribeFastSnapshotRestores' MaxResults range (API Reference). */
const MAX_RESULTS = 200;

const USER_INITIATED = 'Client.UserInitiated';
const LIFECYCLE_TRANSITION = 'Client.UserInitiated - Lifecycle state transition';

const NEXT_STEP: Partial<Record<FastSnapshotRestoreState, FastSnapshotRestoreState>> = {
  enabling: 'optimizing',
  optimizing: 'enabled',
  disabling: 'disabled',
};

interface Zone {
  readonly name: string;
  readonly id: string;
}

/** FSR of one snapshot in one Availability Zone. */
interface Restore {
  readonly region: string;
  readonly snapshotId: string;
  readonly zone: Zone;
  state: FastSnapshotRestoreState;
  /** When the pair entered each state it went through (the proxy's clock, epoch milliseconds). */
  times: Partial<Record<FastSnapshotRestoreState, number>>;
}

/** A zone as the request named it: by name (`AvailabilityZone.N`) or by id (`AvailabilityZoneId.N`). */
interface RequestedZone {
  readonly asked: string;
  readonly byId: boolean;
  /** The region's zone it names; undefined when it names none. */
  readonly zone?: Zone;
}

/** A pair's outcome in an Enable or Disable answer. */
type Outcome = { readonly ok: Restore } | { readonly failed: { readonly zone: RequestedZone; readonly code: string; readonly message: string } };

const REASON_OF: Record<FastSnapshotRestoreState, string> = {
  enabling: USER_INITIATED,
  disabling: USER_INITIATED,
  optimizing: LIFECYCLE_TRANSITION,
  enabled: LIFECYCLE_TRANSITION,
  disabled: LIFECYCLE_TRANSITION,
};

const TIME_ELEMENTS: ReadonlyArray<[FastSnapshotRestoreState, string]> = [
  ['enabling', 'enablingTime'],
  ['optimizing', 'optimizingTime'],
  ['enabled', 'enabledTime'],
  ['disabling', 'disablingTime'],
  ['disabled', 'disabledTime'],
];

function key(snapshotId: string, zoneName: string): string {
  return `${snapshotId} ${zoneName}`;
}

function element(tag: string, value: string): string {
  return `<${tag}>${escapeXml(value)}</${tag}>`;
}

function xmlSet(tag: string, items: string[]): string {
  return items.length === 0 ? `<${tag}/>` : `<${tag}>${items.join('')}</${tag}>`;
}

function answer(action: string, body: string): HttpResult {
  return xmlResult(`<?xml version="1.0" encoding="UTF-8"?><${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`
    + `<requestId>${action}-${Date.now().toString(16)}</requestId>${body}</${action}Response>`);
}

/** The fast snapshot restores of every snapshot, as EC2 would keep them for the account. */
export class FastSnapshotRestores {
  /** `snapshotId zoneName` -> its FSR, in the order the pairs were first enabled (zone names are unique across regions). */
  private readonly restores = new Map<string, Restore>();
  /** region -> its Availability Zones, as moto lists them. */
  private readonly zones = new Map<string, Promise<Zone[]>>();

  constructor(private readonly moto: MotoBackend) {}

  /** The FSR state of a snapshot per Availability Zone name (`{}` when it has none), for tests. */
  of(snapshotId: string): Record<string, string> {
    return Object.fromEntries([...this.restores.values()]
      .filter((restore) => restore.snapshotId === snapshotId)
      .map((restore) => [restore.zone.name, restore.state]));
  }

  /** EnableFastSnapshotRestores, DisableFastSnapshotRestores and DescribeFastSnapshotRestores ({@link FAST_SNAPSHOT_RESTORE_ACTIONS}). */
  async call(region: string, action: string, params: URLSearchParams): Promise<HttpResult> {
    if (params.get('DryRun') === 'true') {
      return ec2Error(412, 'DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
    }
    return action === 'DescribeFastSnapshotRestores' ? this.describe(region, params) : this.change(region, action, params);
  }

  /**
   * A snapshot was deleted (DeleteSnapshot, or DeregisterImage's DeleteAssociatedSnapshots): EBS disables its FSR
   * ("When you delete a snapshot that you own, fast snapshot restore is automatically disabled for that snapshot in
   * your account"). Its pairs become `disabled`, shown once more by DescribeFastSnapshotRestores.
   */
  snapshotDeleted(region: string, snapshotId: string): void {
    const now = this.moto.now();
    for (const restore of this.restores.values()) {
      if (restore.region === region && restore.snapshotId === snapshotId && restore.state !== 'disabled') {
        restore.times.disabling ??= now;
        this.move(restore, 'disabled', now);
      }
    }
  }

  /** Forgets every pair (moto was reset). */
  clear(): void {
    this.restores.clear();
    this.zones.clear();
  }

  private async change(region: string, action: string, params: URLSearchParams): Promise<HttpResult> {
    const snapshotIds = [...new Set(numberedValues(params, 'SourceSnapshotId'))];
    const names = [...new Set(numberedValues(params, 'AvailabilityZone'))];
    const ids = [...new Set(numberedValues(params, 'AvailabilityZoneId'))];
    if (snapshotIds.length === 0) {
      return ec2Error(400, 'MissingParameter', 'The request must contain the parameter SourceSnapshotId');
    }
    if (names.length > 0 && ids.length > 0) {
      return ec2Error(400, 'InvalidParameterCombination', 'Either AvailabilityZone or AvailabilityZoneId can be specified, but not both');
    }
    if (names.length === 0 && ids.length === 0) {
      return ec2Error(400, 'MissingParameter', 'The request must contain the parameter AvailabilityZone or AvailabilityZoneId');
    }
    const regionZones = await this.zonesOf(region);
    const requested: RequestedZone[] = names.length > 0
      ? names.map((name) => ({ asked: name, byId: false, zone: regionZones.find((zone) => zone.name === name) }))
      : ids.map((id) => ({ asked: id, byId: true, zone: regionZones.find((zone) => zone.id === id) }));
    const existing = await this.existingSnapshots(region, snapshotIds);
    const enable = action === 'EnableFastSnapshotRestores';
    const now = this.moto.now();

    const successful: string[] = [];
    const unsuccessful: string[] = [];
    for (const snapshotId of snapshotIds) {
      const errors: string[] = [];
      for (const asked of requested) {
        const outcome = !existing.has(snapshotId)
          ? { failed: { zone: asked, code: 'InvalidSnapshot.NotFound', message: `The snapshot '${snapshotId}' does not exist.` } }
          : !asked.zone
            ? { failed: { zone: asked, code: 'InvalidParameterValue', message: `Invalid availability zone${asked.byId ? ' id' : ''}: [${asked.asked}]` } }
            : enable ? this.enable(region, snapshotId, asked.zone, now) : this.disable(snapshotId, asked, now);
        if ('ok' in outcome) {
          successful.push(this.itemXml(outcome.ok));
        } else {
          const { zone, code, message } = outcome.failed;
          errors.push(`<item>${element(zone.byId ? 'availabilityZoneId' : 'availabilityZone', zone.asked)}`
            + `<error>${element('code', code)}${element('message', message)}</error></item>`);
        }
      }
      if (errors.length > 0) {
        unsuccessful.push(`<item>${element('snapshotId', snapshotId)}${xmlSet('fastSnapshotRestoreStateErrorSet', errors)}</item>`);
      }
    }
    return answer(action, `${xmlSet('successful', successful)}${xmlSet('unsuccessful', unsuccessful)}`);
  }

  private enable(region: string, snapshotId: string, zone: Zone, now: number): Outcome {
    const current = this.restores.get(key(snapshotId, zone.name));
    if (current && ['enabling', 'optimizing', 'enabled'].includes(current.state)) {
      // Assumption: enabling again changes nothing and is listed as successful with the pair's current state.
      return { ok: current };
    }
    // Absent, `disabled` (shown once more) or `disabling` (assumption): a new enable starts from `enabling`.
    const restore: Restore = { region, snapshotId, zone, state: 'enabling', times: { enabling: now } };
    this.restores.delete(key(snapshotId, zone.name));
    this.restores.set(key(snapshotId, zone.name), restore);
    return { ok: restore };
  }

  private disable(snapshotId: string, asked: RequestedZone, now: number): Outcome {
    const current = this.restores.get(key(snapshotId, asked.zone?.name ?? ''));
    if (!current || current.state === 'disabled') {
      // Assumption: the API Reference does not say what disabling a pair that is not enabled answers.
      return {
        failed: {
          zone: asked,
          code: 'IncorrectState',
          message: `Fast snapshot restores are not enabled for snapshot ${snapshotId} in Availability Zone ${asked.asked}.`,
        },
      };
    }
    if (current.state !== 'disabling') {
      this.move(current, 'disabling', now);
    }
    // Assumption: disabling a pair already `disabling` changes nothing and is listed as successful.
    return { ok: current };
  }

  private async describe(region: string, params: URLSearchParams): Promise<HttpResult> {
    const unknown = [...params].find(([name, value]) => /^Filter\.\d+\.Name$/.test(name) && !FILTERS.includes(value));
    if (unknown) {
      return ec2Error(400, 'InvalidParameterValue', `The filter '${unknown[1]}' is invalid`);
    }
    const maxResults = params.has('MaxResults') ? Number(params.get('MaxResults')) : undefined;
    if (maxResults !== undefined && !(Number.isInteger(maxResults) && maxResults >= 0 && maxResults <= MAX_RESULTS)) {
      return ec2Error(400, 'InvalidParameterValue', `Value (${params.get('MaxResults')}) for parameter maxResults is invalid. Expecting a value between 0 and ${MAX_RESULTS}.`);
    }
    const matching = [...this.restores.entries()].filter(([, restore]) => restore.region === region && this.matches(restore, params));
    // The NextToken names the first pair of the next page: shown pairs may be forgotten, offsets would shift.
    const token = params.get('NextToken');
    const start = token ? matching.findIndex(([pairKey]) => Buffer.from(pairKey, 'utf8').toString('base64') === token) : 0;
    if (start < 0) {
      return ec2Error(400, 'InvalidParameterValue', `Invalid value '${token}' for NextToken`);
    }
    const pageSize = maxResults === undefined || maxResults === 0 ? matching.length : maxResults;
    const page = matching.slice(start, start + pageSize);
    const next = matching[start + pageSize];

    const items = page.map(([, restore]) => this.itemXml(restore));
    const now = this.moto.now();
    for (const [pairKey, restore] of page) {
      const step = NEXT_STEP[restore.state];
      if (step) {
        this.move(restore, step, now);
      } else if (restore.state === 'disabled') {
        this.restores.delete(pairKey);
      }
    }
    const nextToken = next ? element('nextToken', Buffer.from(next[0], 'utf8').toString('base64')) : '';
    return answer('DescribeFastSnapshotRestores', `${xmlSet('fastSnapshotRestoreSet', items)}${nextToken}`);
  }

  private matches(restore: Restore, params: URLSearchParams): boolean {
    const values: Record<string, string> = {
      'snapshot-id': restore.snapshotId,
      'availability-zone': restore.zone.name,
      'availability-zone-id': restore.zone.id,
      'owner-id': MOTO_ACCOUNT_ID,
      'state': restore.state,
    };
    return FILTERS.every((name) => {
      const patterns = filterValues(params, name);
      return patterns.length === 0 || filterMatches(patterns, values[name]);
    });
  }

  private move(restore: Restore, state: FastSnapshotRestoreState, now: number): void {
    restore.state = state;
    restore.times[state] = now;
  }

  /** A pair as EC2's success items show it (Enable, Disable and Describe share the shape). */
  private itemXml(restore: Restore): string {
    const times = TIME_ELEMENTS
      .filter(([state]) => restore.times[state] !== undefined)
      .map(([state, tag]) => element(tag, new Date(restore.times[state]!).toISOString()))
      .join('');
    return `<item>${element('snapshotId', restore.snapshotId)}${element('availabilityZone', restore.zone.name)}`
      + `${element('availabilityZoneId', restore.zone.id)}${element('state', restore.state)}`
      + `${element('stateTransitionReason', REASON_OF[restore.state])}${element('ownerId', MOTO_ACCOUNT_ID)}${times}</item>`;
  }

  /** The region's Availability Zones, as moto lists them (asked once per region). */
  private zonesOf(region: string): Promise<Zone[]> {
    let zones = this.zones.get(region);
    if (!zones) {
      zones = this.moto.motoIn(region).send(new DescribeAvailabilityZonesCommand({}))
        .then((response) => (response.AvailabilityZones ?? []).map((zone) => ({ name: zone.ZoneName ?? '', id: zone.ZoneId ?? '' })));
      zones.catch(() => this.zones.delete(region));
      this.zones.set(region, zones);
    }
    return zones;
  }

  /** Which of these snapshots moto has in the region (any owner: FSR can be enabled on a snapshot shared with the account). */
  private async existingSnapshots(region: string, snapshotIds: string[]): Promise<Set<string>> {
    const response = await this.moto.motoIn(region).send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'snapshot-id', Values: snapshotIds }] }));
    return new Set((response.Snapshots ?? []).flatMap((snapshot) => (snapshot.SnapshotId ? [snapshot.SnapshotId] : [])));
  }
}
