/**
 * Launch speed model: how long the root volume of an instance launched from a baked image takes to reach full
 * performance, and what that costs per launch, with EBS's lazy loading, a Provisioned Rate for Volume
 * Initialization, or fast snapshot restore. Modelled from the EBS documentation's figures, never measured: this
 * machine cannot reach AWS, and moto has no volume initialization. Pure functions; bench/report.ts renders them.
 */

/** Where each documented figure comes from. */
export const LAUNCH_SOURCES = {
  /** Initialize Amazon EBS volumes: the rate range and accuracy, time = snapshot data / rate, the quota, billing. */
  initialization: 'https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html',
  /** Fast snapshot restore: full performance at creation, optimizing 60 min per TiB, billing per AZ-minute (one-hour minimum). */
  fastSnapshotRestore: 'https://docs.aws.amazon.com/ebs/latest/userguide/ebs-fast-snapshot-restore.html',
  /** Fast snapshot restore volume creation credits: bucket size and fill rate as functions of the snapshot size. */
  creationCredits: 'https://docs.aws.amazon.com/ebs/latest/userguide/volume-creation-credits.html',
  /** How AWS Pricing Works, Amazon EBS: USD 0.75 per fast snapshot restore DSU-hour per AZ (us-east-1). */
  pricingWhitepaper: 'https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/amazon-ebs.html',
  /** The CloudFormation property newLaunchTemplate sets (integer MiB/s, 100 to 300). */
  cloudFormation: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-ec2-launchtemplate-ebs.html#cfn-ec2-launchtemplate-ebs-volumeinitializationrate',
  /** Where AWS publishes the provisioned rate's price per Region: not readable from this machine. */
  ebsPricing: 'https://aws.amazon.com/ebs/pricing/',
} as const;

/** Figures the EBS documentation states (sources in {@link LAUNCH_SOURCES}). */
export const EBS_DOCUMENTED = {
  /** The provisioned rate's range, MiB/s (initialization). */
  minRateMiBs: 100,
  maxRateMiBs: 300,
  /** "an average rate that is within 10 percent of the volume initialization rate that you specify for 99 percent of the time" (initialization). */
  rateAccuracy: 0.1,
  /** Cumulative provisioned rate of concurrent volume creations, per Region; a request beyond it fails (initialization). */
  regionRateQuotaMiBs: 5000,
  /** Fast snapshot restore, USD per DSU-hour per Availability Zone, us-east-1 (pricingWhitepaper; the FSR page's $540 example for 720 hours agrees). */
  fsrUsdPerAzHour: 0.75,
  /** Fast snapshot restore is billed per minute with a one-hour minimum (pricingWhitepaper, fastSnapshotRestore). */
  fsrMinimumBilledHours: 1,
  /** Credits: fill rate MIN(10, 1024 / snapshot GiB) per hour, bucket MAX(1, MIN(10, 1024 / snapshot GiB)) (creationCredits). */
  fsrCreditGiBHours: 1024,
  fsrMaxCredits: 10,
  fsrMinCredits: 1,
  /** A new fast snapshot restore is `optimizing` for 60 minutes per TiB before it gives full performance (fastSnapshotRestore). */
  fsrOptimizingMinutesPerTiB: 60,
} as const;

/** What the documents readable here do not give: each an assumption, named and printed under the table. */
export const LAUNCH_ASSUMPTIONS = {
  /**
   * USD per GiB of snapshot data per MiB/s of provisioned rate, us-east-1. EBS bills "rate for Region x snapshot data
   * size x volume initialization rate" (initialization), but the Region's rate is on the EBS pricing page, which could
   * not be read here. 0.000012 is derived from third-party write-ups that quote USD 0.0036 per GB at 300 MiB/s in
   * us-east-1 (0.0036 / 300); one of them quotes USD 0.0024 per GB for every rate from 100 to 200 MiB/s, which would
   * make 100 MiB/s twice this model's price.
   */
  provisionedRateUsdPerGiBPerMiBs: 0.000012,
  /** Snapshot data taken as the whole root volume: the upper bound of time and price (an image's snapshot data is usually less: FullSnapshotSizeInBytes). */
  snapshotDataIsVolumeSize: true,
  /** The launch count the fast snapshot restore price is shared out over, per Availability Zone and day: yours will differ. */
  fsrLaunchesPerAzPerDay: 10,
} as const;

export const MIB_PER_GIB = 1024;

/** Seconds until a volume with this much snapshot data is fully initialized at a provisioned rate. */
export function provisionedRateSeconds(snapshotGiB: number, rateMiBs: number): number {
  checkRate(rateMiBs);
  return (snapshotGiB * MIB_PER_GIB) / rateMiBs;
}

/** The range of {@link provisionedRateSeconds} when EBS delivers within ±10% of the rate (99% of the time, per the docs). */
export function provisionedRateSecondsRange(snapshotGiB: number, rateMiBs: number): { fastest: number; slowest: number } {
  const seconds = provisionedRateSeconds(snapshotGiB, rateMiBs);
  return { fastest: seconds / (1 + EBS_DOCUMENTED.rateAccuracy), slowest: seconds / (1 - EBS_DOCUMENTED.rateAccuracy) };
}

/** USD per launch for a provisioned rate: price x snapshot data GiB x rate MiB/s, billed once when the volume is active. */
export function provisionedRateUsd(
  snapshotGiB: number,
  rateMiBs: number,
  usdPerGiBPerMiBs: number = LAUNCH_ASSUMPTIONS.provisionedRateUsdPerGiBPerMiBs,
): number {
  checkRate(rateMiBs);
  return usdPerGiBPerMiBs * snapshotGiB * rateMiBs;
}

/** How many volumes a Region can initialize at once at this rate before requests fail (the 5,000 MiB/s quota). */
export function concurrentInitializations(rateMiBs: number): number {
  checkRate(rateMiBs);
  return Math.floor(EBS_DOCUMENTED.regionRateQuotaMiBs / rateMiBs);
}

/** Fast snapshot restore's volume creation credits of one snapshot in one Availability Zone. */
export interface FsrCredits {
  /** The most volumes created at once with full performance: MAX(1, MIN(10, 1024 / snapshot GiB)). */
  readonly bucket: number;
  /** Credits added per hour, so the sustained launches per hour: MIN(10, 1024 / snapshot GiB). */
  readonly refillPerHour: number;
}

export function fsrCredits(snapshotGiB: number): FsrCredits {
  if (!(snapshotGiB > 0)) {
    throw new Error(`snapshot size must be positive, got ${snapshotGiB} GiB`);
  }
  const ratio = EBS_DOCUMENTED.fsrCreditGiBHours / snapshotGiB;
  return {
    bucket: Math.max(EBS_DOCUMENTED.fsrMinCredits, Math.min(EBS_DOCUMENTED.fsrMaxCredits, ratio)),
    refillPerHour: Math.min(EBS_DOCUMENTED.fsrMaxCredits, ratio),
  };
}

/** Fast snapshot restore's price: per AZ-hour, whatever the launches; per launch only for a given launch count. */
export interface FsrCost {
  readonly usdPerAzHour: number;
  /** 30 days (720 hours), as the docs' example. */
  readonly usdPerAzMonth: number;
  /** Per launch when every credit is used (refillPerHour launches each hour): the lowest price per launch. */
  readonly usdPerLaunchAtCreditLimit: number;
  /** Per launch at the stated launch count. */
  readonly launchesPerAzPerDay: number;
  readonly usdPerLaunchAtLaunchCount: number;
}

export function fsrCost(snapshotGiB: number, launchesPerAzPerDay: number = LAUNCH_ASSUMPTIONS.fsrLaunchesPerAzPerDay): FsrCost {
  if (!(launchesPerAzPerDay > 0)) {
    throw new Error(`launches per AZ and day must be positive, got ${launchesPerAzPerDay}`);
  }
  const usdPerAzHour = EBS_DOCUMENTED.fsrUsdPerAzHour;
  return {
    usdPerAzHour,
    usdPerAzMonth: usdPerAzHour * 720,
    usdPerLaunchAtCreditLimit: usdPerAzHour / fsrCredits(snapshotGiB).refillPerHour,
    launchesPerAzPerDay,
    usdPerLaunchAtLaunchCount: (usdPerAzHour * 24) / launchesPerAzPerDay,
  };
}

/** Minutes a newly enabled fast snapshot restore is `optimizing` (partial benefit) before it is `enabled`. */
export function fsrOptimizingMinutes(snapshotGiB: number): number {
  return (snapshotGiB / MIB_PER_GIB) * EBS_DOCUMENTED.fsrOptimizingMinutesPerTiB;
}

/** One root volume size, side by side. */
export interface LaunchRow {
  readonly volumeGiB: number;
  /** The provisioned rates, in the model's order. */
  readonly provisioned: Array<{ rateMiBs: number; seconds: number; fastest: number; slowest: number; usd: number }>;
  readonly fsr: { credits: FsrCredits; cost: FsrCost; optimizingMinutes: number };
}

export interface LaunchModel {
  readonly rows: LaunchRow[];
  readonly ratesMiBs: number[];
  /** Concurrent initializations per Region at each rate (the quota). */
  readonly concurrency: Array<{ rateMiBs: number; volumes: number }>;
  readonly assumptions: typeof LAUNCH_ASSUMPTIONS;
}

export const MODEL_VOLUME_SIZES_GIB = [8, 30, 100] as const;
export const MODEL_RATES_MIBS = [100, 200, 300] as const;

export function launchModel(
  volumeSizesGiB: readonly number[] = MODEL_VOLUME_SIZES_GIB,
  ratesMiBs: readonly number[] = MODEL_RATES_MIBS,
): LaunchModel {
  return {
    rows: volumeSizesGiB.map((volumeGiB) => ({
      volumeGiB,
      provisioned: ratesMiBs.map((rateMiBs) => ({
        rateMiBs,
        seconds: provisionedRateSeconds(volumeGiB, rateMiBs),
        ...provisionedRateSecondsRange(volumeGiB, rateMiBs),
        usd: provisionedRateUsd(volumeGiB, rateMiBs),
      })),
      fsr: { credits: fsrCredits(volumeGiB), cost: fsrCost(volumeGiB), optimizingMinutes: fsrOptimizingMinutes(volumeGiB) },
    })),
    ratesMiBs: [...ratesMiBs],
    concurrency: ratesMiBs.map((rateMiBs) => ({ rateMiBs, volumes: concurrentInitializations(rateMiBs) })),
    assumptions: LAUNCH_ASSUMPTIONS,
  };
}

/** "1 min 22 s", "27 s", "17 min 4 s": whole seconds. */
export function duration(seconds: number): string {
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  const rest = whole % 60;
  return minutes === 0 ? `${rest} s` : `${minutes} min ${rest} s`;
}

function checkRate(rateMiBs: number): void {
  if (!Number.isInteger(rateMiBs) || rateMiBs < EBS_DOCUMENTED.minRateMiBs || rateMiBs > EBS_DOCUMENTED.maxRateMiBs) {
    throw new Error(`a provisioned rate is a whole number of MiB/s from ${EBS_DOCUMENTED.minRateMiBs} to ${EBS_DOCUMENTED.maxRateMiBs}, got ${rateMiBs}`);
  }
}
