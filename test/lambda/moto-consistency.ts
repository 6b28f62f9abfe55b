/**
 * EC2's eventual consistency for the moto proxy (moto is immediately consistent). See "Eventual consistency in the
 * Amazon EC2 API" (Amazon EC2 Developer Guide): a resource just created may not be visible to the next requests
 * (`InvalidAMIID.NotFound`, `InvalidInstanceID.NotFound` for a resource that exists), and a change may not have
 * reached every later request yet. Counted in requests, not in time, so that tests are deterministic.
 */
import {
  ec2Error,
  filterMatches,
  filterValues,
  type HttpResult,
  itemField,
  joinXmlItems,
  numberedValues,
  withoutFilter,
  xmlItems,
} from './moto-http';

/** How long EC2 takes to show what a request did, in requests that would have seen it. All 0 (moto's behaviour) by default. */
export interface ConsistencyOptions {
  /**
   * A new image (CreateImage, CopyImage) is left out of the first N DescribeImages requests of its region that would
   * include it; asked for by id alone, DescribeImages answers `InvalidAMIID.NotFound`.
   */
  readonly newImageHiddenFor?: number;
  /**
   * The snapshots of an image just deregistered are still in use by it for the first N DeleteSnapshot calls of each
   * (`InvalidSnapshot.InUse`); a DeregisterImage with DeleteAssociatedSnapshots in that window leaves them
   * (`returnCode` `client-error` in its `deleteSnapshotResultSet`).
   */
  readonly deregisteredSnapshotsInUseFor?: number;
  /**
   * A new instance (RunInstances) is left out of the first N DescribeInstances requests of its region that would
   * include it; asked for by id alone, DescribeInstances answers `InvalidInstanceID.NotFound`.
   */
  readonly newInstanceHiddenFor?: number;
  /**
   * An instance launched with a validation script reports `pending` (moto's are `running` at once) to the first N
   * DescribeInstances requests that show it; their `instance-state-name` filter is applied to that reported state.
   */
  readonly newInstancePendingFor?: number;
  /**
   * An image made IMDSv2-only (ModifyImageAttribute `ImdsSupport`) is shown without its new `imdsSupport` by the first
   * N DescribeImages requests that include it.
   */
  readonly changedAttributeStaleFor?: number;
}

/** A resource not yet (or still) visible to the next `remaining` requests of its region that would see it. */
interface Window {
  readonly region: string;
  remaining: number;
}

const PENDING_STATE = '<instanceState><code>0</code><name>pending</name></instanceState>';

function active(windows: Map<string, Window>, region: string): boolean {
  return [...windows.values()].some((window) => window.region === region && window.remaining > 0);
}

function open(windows: Map<string, Window>, id: string, region: string): boolean {
  const window = windows.get(id);
  return window !== undefined && window.region === region && window.remaining > 0;
}

function consume(windows: Map<string, Window>, ids: Iterable<string>): void {
  for (const id of new Set(ids)) {
    const window = windows.get(id);
    if (window && window.remaining > 0) {
      window.remaining--;
    }
  }
}

/** The reported state of an instance `<item>` of a DescribeInstances answer. */
function instanceStateOf(instance: string): string | undefined {
  return /<instanceState>\s*<code>\d+<\/code>\s*<name>([^<]+)<\/name>\s*<\/instanceState>/.exec(instance)?.[1];
}

/** The consistency windows of the resources the proxy saw created or deregistered. */
export class Ec2Consistency {
  private options: Required<ConsistencyOptions> = {
    newImageHiddenFor: 0,
    deregisteredSnapshotsInUseFor: 0,
    newInstanceHiddenFor: 0,
    newInstancePendingFor: 0,
    changedAttributeStaleFor: 0,
  };
  private readonly hiddenImages = new Map<string, Window>();
  private readonly inUseSnapshots = new Map<string, Window & { readonly imageId: string }>();
  private readonly hiddenInstances = new Map<string, Window>();
  private readonly pendingInstances = new Map<string, Window>();
  private readonly staleAttributes = new Map<string, Window>();

  /**
   * Replaces the settings (what is left out is 0). New resources get the new windows; the windows already open are
   * cut to the new settings (never lengthened), so `set({})` makes everything visible and free at once.
   */
  set(options: ConsistencyOptions): void {
    this.options = {
      newImageHiddenFor: options.newImageHiddenFor ?? 0,
      deregisteredSnapshotsInUseFor: options.deregisteredSnapshotsInUseFor ?? 0,
      newInstanceHiddenFor: options.newInstanceHiddenFor ?? 0,
      newInstancePendingFor: options.newInstancePendingFor ?? 0,
      changedAttributeStaleFor: options.changedAttributeStaleFor ?? 0,
    };
    const cut = (windows: Map<string, Window>, limit: number) => {
      for (const window of windows.values()) {
        window.remaining = Math.min(window.remaining, limit);
      }
    };
    cut(this.hiddenImages, this.options.newImageHiddenFor);
    cut(this.inUseSnapshots, this.options.deregisteredSnapshotsInUseFor);
    cut(this.hiddenInstances, this.options.newInstanceHiddenFor);
    cut(this.pendingInstances, this.options.newInstancePendingFor);
    cut(this.staleAttributes, this.options.changedAttributeStaleFor);
  }

  get settings(): Required<ConsistencyOptions> {
    return { ...this.options };
  }

  /** Forgets the windows of the resources seen so far (the settings stay). */
  clear(): void {
    this.hiddenImages.clear();
    this.inUseSnapshots.clear();
    this.hiddenInstances.clear();
    this.pendingInstances.clear();
    this.staleAttributes.clear();
  }

  imageCreated(region: string, imageId: string): void {
    if (this.options.newImageHiddenFor > 0) {
      this.hiddenImages.set(imageId, { region, remaining: this.options.newImageHiddenFor });
    }
  }

  imageAttributeChanged(region: string, imageId: string): void {
    if (this.options.changedAttributeStaleFor > 0) {
      this.staleAttributes.set(imageId, { region, remaining: this.options.changedAttributeStaleFor });
    }
  }

  /** Whether this DescribeImages shows the image's attributes as they were before their last change (one of N used up). */
  showsStaleAttributes(region: string, imageId: string): boolean {
    if (!open(this.staleAttributes, imageId, region)) {
      return false;
    }
    consume(this.staleAttributes, [imageId]);
    return true;
  }

  imageDeregistered(region: string, imageId: string, snapshotIds: string[]): void {
    if (this.options.deregisteredSnapshotsInUseFor > 0) {
      for (const snapshotId of snapshotIds) {
        this.inUseSnapshots.set(snapshotId, { region, imageId, remaining: this.options.deregisteredSnapshotsInUseFor });
      }
    }
  }

  /** True when deregistered-snapshot windows are on: the proxy then needs an image's snapshots before deregistering it. */
  get tracksDeregisteredSnapshots(): boolean {
    return this.options.deregisteredSnapshotsInUseFor > 0;
  }

  instancesLaunched(region: string, instanceIds: string[], validation: boolean): void {
    for (const instanceId of instanceIds) {
      if (this.options.newInstanceHiddenFor > 0) {
        this.hiddenInstances.set(instanceId, { region, remaining: this.options.newInstanceHiddenFor });
      }
      if (validation && this.options.newInstancePendingFor > 0) {
        this.pendingInstances.set(instanceId, { region, remaining: this.options.newInstancePendingFor });
      }
    }
  }

  /**
   * DeleteSnapshot of a snapshot whose image was just deregistered: the image EC2 still sees using it (and one of the
   * snapshot's N calls used up), or undefined when the snapshot is free.
   */
  snapshotStillInUse(region: string, snapshotId: string): string | undefined {
    const window = this.inUseSnapshots.get(snapshotId);
    if (!window || window.region !== region || window.remaining <= 0) {
      return undefined;
    }
    window.remaining--;
    return window.imageId;
  }

  /** The snapshot's image was just deregistered and EC2 does not see it free yet (nothing used up). */
  snapshotInWindow(region: string, snapshotId: string): boolean {
    return open(this.inUseSnapshots, snapshotId, region);
  }

  /** A DescribeImages answer as EC2 gives it while new images are not visible yet. */
  describeImages(region: string, params: URLSearchParams, result: HttpResult): HttpResult {
    if (result.status !== 200 || !active(this.hiddenImages, region)) {
      return result;
    }
    const parts = xmlItems(result.body.toString('utf8'), 'imagesSet');
    if (!parts) {
      return result;
    }
    const hidden: string[] = [];
    const items = parts.items.filter((item) => {
      const imageId = itemField(item, 'imageId') ?? '';
      if (open(this.hiddenImages, imageId, region)) {
        hidden.push(imageId);
        return false;
      }
      return true;
    });
    if (hidden.length === 0) {
      return result;
    }
    consume(this.hiddenImages, hidden);
    const asked = numberedValues(params, 'ImageId');
    if (asked.length === 1 && hidden.includes(asked[0])) {
      return ec2Error(400, 'InvalidAMIID.NotFound', `The image id '[${asked[0]}]' does not exist`);
    }
    return { ...result, body: Buffer.from(joinXmlItems({ ...parts, items }, 'imagesSet'), 'utf8') };
  }

  /**
   * What to forward of a DescribeInstances: while an instance may report `pending` (moto's never do), its
   * `instance-state-name` filter is taken out, to be applied to the reported states ({@link describeInstances}).
   */
  describeInstancesRequest(region: string, params: URLSearchParams): { params: URLSearchParams; stateFilter?: string[] } {
    const states = filterValues(params, 'instance-state-name');
    if (states.length === 0 || !active(this.pendingInstances, region)) {
      return { params };
    }
    return { params: withoutFilter(params, 'instance-state-name'), stateFilter: states };
  }

  /** A DescribeInstances answer as EC2 gives it while new instances are not visible, or not running, yet. */
  describeInstances(region: string, params: URLSearchParams, stateFilter: string[] | undefined, result: HttpResult): HttpResult {
    if (result.status !== 200 || (!stateFilter && !active(this.hiddenInstances, region) && !active(this.pendingInstances, region))) {
      return result;
    }
    const parts = xmlItems(result.body.toString('utf8'), 'reservationSet');
    if (!parts) {
      return result;
    }
    const hidden: string[] = [];
    const pending: string[] = [];
    const reservations = parts.items.flatMap((reservation) => {
      const instances = xmlItems(reservation, 'instancesSet');
      if (!instances) {
        return [reservation];
      }
      const kept = instances.items.flatMap((instance) => {
        const instanceId = itemField(instance, 'instanceId') ?? '';
        if (open(this.hiddenInstances, instanceId, region)) {
          hidden.push(instanceId);
          return [];
        }
        let state = instanceStateOf(instance);
        let shown = instance;
        if (open(this.pendingInstances, instanceId, region)) {
          if (state === 'running' || state === 'pending') {
            pending.push(instanceId);
            state = 'pending';
            shown = instance.replace(/<instanceState>[\s\S]*?<\/instanceState>/, PENDING_STATE);
          } else {
            // Stopped or terminated in the meantime: EC2 shows that, and it never goes back to pending.
            this.pendingInstances.delete(instanceId);
          }
        }
        return stateFilter && !filterMatches(stateFilter, state ?? '') ? [] : [shown];
      });
      return kept.length === 0 ? [] : [joinXmlItems({ ...instances, items: kept }, 'instancesSet')];
    });
    consume(this.hiddenInstances, hidden);
    consume(this.pendingInstances, pending);
    const asked = numberedValues(params, 'InstanceId');
    if (asked.length === 1 && hidden.includes(asked[0])) {
      return ec2Error(400, 'InvalidInstanceID.NotFound', `The instance ID '${asked[0]}' does not exist`);
    }
    return { ...result, body: Buffer.from(joinXmlItems({ ...parts, items: reservations }, 'reservationSet'), 'utf8') };
  }
}
