import { Size, SizeRoundingBehavior } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { validationError } from './private/errors';

/** The range EBS accepts for a Provisioned Rate for Volume Initialization, in MiB/s. */
const MIN_RATE_MIBS = 100;
const MAX_RATE_MIBS = 300;

/**
 * Properties of `BakedImage.newLaunchTemplate()`: any `ec2.LaunchTemplateProps`, and how the root volume of each
 * instance is initialized from the image's snapshot.
 */
export interface BakedImageLaunchTemplateProps extends ec2.LaunchTemplateProps {
  /**
   * How EBS initializes the root volume of each instance launched from the template.
   *
   * A volume made from a snapshot loads its blocks from Amazon S3: until every block is written, reads of
   * blocks not yet loaded wait for S3, and EBS's own (lazy) initialization rate "fluctuates", with no figure
   * given. `VolumeInitialization.provisionedRate()` makes EBS load the whole snapshot at a fixed rate instead
   * (100 to 300 MiB/s): an 8 GiB snapshot takes about 82 s at 100 MiB/s, 27 s at 300 MiB/s. EBS bills it once
   * per volume, per GiB of snapshot data and per MiB/s of rate; the Region's price is on the EBS pricing page.
   * This library's launch model assumes USD 0.000012 per GiB per MiB/s in us-east-1 (USD 0.0012 per GiB at
   * 100 MiB/s, USD 0.0096 for an 8 GiB snapshot), derived from third-party reports of USD 0.0036 per GiB at
   * 300 MiB/s: not a figure read from AWS (see Launch speed in the README).
   *
   * Why it is off by default: unlike lazy loading, a provisioned rate can fail a launch. Concurrent
   * initializations in a Region share a quota of 5,000 MiB/s (50 volumes at 100 MiB/s), and EBS fails a
   * request it cannot serve at the rate (quota or capacity), which would hit an Auto Scaling group exactly
   * when it scales out the most. It also costs per launch, and its mapping has no `Encrypted` setting (the
   * snapshot's encryption carries over), which Control Tower's CT.EC2.PR.14 check fails. Turn it on for
   * groups that scale out fewer instances at once and read much of their volume early (see Launch speed in
   * the README for the modelled times and prices). An image with fast snapshot restore needs no rate: EBS
   * initializes a volume with a rate at that rate instead of by fast snapshot restore (a warning says so).
   *
   * Only for the image's own root volume: a provisioned rate with `machineImage` another image is an error.
   *
   * @see https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html
   * @default - `VolumeInitialization.lazy()`: EBS's own initialization, no charge, no launch failure
   */
  readonly rootVolumeInitialization?: VolumeInitialization;
}

/**
 * How EBS initializes a volume made from a snapshot: at a provisioned rate, or lazily (EBS's default).
 *
 * @see https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html
 */
export class VolumeInitialization {
  /**
   * Load the whole snapshot onto the volume at this rate after creation (EBS Provisioned Rate for Volume
   * Initialization), so that the volume reaches full performance after (snapshot data size / rate).
   *
   * Billed once per volume, per GiB of snapshot data and per MiB/s of rate; the time and the price grow with
   * the snapshot's data, not the volume's size.
   *
   * @param rate a whole number of MiB per second, from 100 to 300 (`Size.mebibytes(100)`); not a token
   */
  public static provisionedRate(rate: Size): VolumeInitialization {
    if (rate.isUnresolved()) {
      throw validationError('BakedImageVolumeInitializationRate',
        'VolumeInitialization.provisionedRate() needs a literal rate: got a token. Give a Size of 100 to 300 MiB (per second), '
        + 'e.g. Size.mebibytes(100), or use VolumeInitialization.lazy().');
    }
    // Unrounded: a fraction of a MiB/s stays a fraction, and fails the whole-number check.
    const mibs = rate.toMebibytes({ rounding: SizeRoundingBehavior.NONE });
    if (!Number.isInteger(mibs) || mibs < MIN_RATE_MIBS || mibs > MAX_RATE_MIBS) {
      throw validationError('BakedImageVolumeInitializationRate',
        `VolumeInitialization.provisionedRate() takes a whole number of MiB/s from ${MIN_RATE_MIBS} to ${MAX_RATE_MIBS} `
        + `(EBS Provisioned Rate for Volume Initialization): got ${mibs} MiB/s. Use e.g. Size.mebibytes(${MIN_RATE_MIBS}) (the cheapest), `
        + 'or VolumeInitialization.lazy() for EBS\'s own initialization.');
    }
    return new VolumeInitialization(Size.mebibytes(mibs));
  }

  /**
   * EBS's own initialization: blocks are loaded from Amazon S3 as they are first read, and in the background at
   * a rate that fluctuates. No charge, no predictable time to full performance. The choice for an image with
   * fast snapshot restore, whose volumes are fully initialized at creation while its credits last. The default.
   */
  public static lazy(): VolumeInitialization {
    return new VolumeInitialization(undefined);
  }

  /**
   * The provisioned rate, per second (`rate.toMebibytes()` MiB/s); undefined for lazy initialization.
   */
  public readonly rate?: Size;

  private constructor(rate: Size | undefined) {
    this.rate = rate;
  }
}
