/**
 * Image deprecation, deregistration protection and the IMDSv2-only attribute for the moto proxy: moto 5.2.1 has
 * none of them (its ModifyImageAttribute ignores `ImdsSupport`). The proxy keeps them per image (image ids are
 * random, so ids of different regions never collide), answers EC2's calls, shows them in DescribeImages and
 * DescribeImageAttribute, and refuses to deregister a protected image (see the module comment of moto-server.ts).
 */
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import type { Ec2Consistency } from './moto-consistency';
import { ec2Error, type HttpResult, type MotoBackend, xmlResult } from './moto-http';

/** The calls this module answers. */
export const IMAGE_LIFECYCLE_ACTIONS: readonly string[] = [
  'EnableImageDeprecation',
  'DisableImageDeprecation',
  'EnableImageDeregistrationProtection',
  'DisableImageDeregistrationProtection',
];

/**
 * The deprecation and deregistration protection the proxy keeps for an image (moto 5.2.1 has neither).
 * `protection` is how it was enabled (`enabled`: without cooldown); `deregistrationProtection` is what DescribeImages
 * shows: `disabled`, `enabled-without-cooldown`, `enabled-with-cooldown` or `disabled-until-<time>` (in the
 * 24-hour cooldown after protection with cooldown was disabled).
 */
export interface ImageLifecycle {
  readonly deprecateAt?: string;
  readonly protection?: 'enabled' | 'enabled-with-cooldown';
  readonly deregistrationProtection: string;
  /** `v2.0` once ModifyImageAttribute made the image IMDSv2-only; EC2 has no call that takes it back. */
  readonly imdsSupport?: string;
}

/** The only `ImdsSupport` value EC2 accepts (ModifyImageAttribute). */
const IMDS_V2_ONLY = 'v2.0';

/**
 * The `ImdsSupport` value a ModifyImageAttribute sets (`ImdsSupport.Value`, or `Attribute=imdsSupport` with `Value`);
 * undefined when it modifies another attribute (moto answers those).
 */
export function imdsSupportChange(params: URLSearchParams): string | undefined {
  if (params.has('ImdsSupport.Value')) {
    return params.get('ImdsSupport.Value') ?? '';
  }
  return params.get('Attribute') === 'imdsSupport' ? params.get('Value') ?? '' : undefined;
}

/** EC2 keeps an image protected with cooldown undeletable for this long after its protection is disabled. */
export const DEREGISTRATION_PROTECTION_COOLDOWN_MS = 24 * 3600 * 1000;

/** An EC2 time as its XML shows times: `2026-05-10T13:17:00.000Z`, to the second. */
function ec2Time(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

interface LifecycleState {
  imdsSupport?: string;
  deprecateAt?: string;
  protection?: 'enabled' | 'enabled-with-cooldown';
  cooldownUntil?: number;
}

/** The deprecation and deregistration protection of every image, as EC2 would keep them. */
export class ImageLifecycles {
  private readonly states = new Map<string, LifecycleState>();

  constructor(private readonly moto: MotoBackend, private readonly consistency: Ec2Consistency) {}

  /** The deprecation time and deregistration protection of an image. */
  of(imageId: string): ImageLifecycle {
    const state = this.states.get(imageId);
    return {
      ...(state?.deprecateAt !== undefined ? { deprecateAt: state.deprecateAt } : {}),
      ...(state?.protection !== undefined ? { protection: state.protection } : {}),
      deregistrationProtection: this.protectionShown(imageId),
      ...(state?.imdsSupport !== undefined ? { imdsSupport: state.imdsSupport } : {}),
    };
  }

  /** ModifyImageAttribute with `ImdsSupport` ({@link imdsSupportChange}): only `v2.0`, on an image that exists. */
  async modifyImdsSupport(region: string, params: URLSearchParams): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    const value = imdsSupportChange(params);
    if (value !== IMDS_V2_ONLY) {
      return ec2Error(400, 'InvalidParameterValue', `Value (${value}) for parameter imdsSupport is invalid. Supported value: ${IMDS_V2_ONLY}`);
    }
    if (!await this.exists(region, imageId)) {
      return ec2Error(400, 'InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    }
    const state = this.states.get(imageId) ?? {};
    // Setting it again is accepted: the attribute is the same.
    state.imdsSupport = value;
    this.states.set(imageId, state);
    this.consistency.imageAttributeChanged(region, imageId);
    return xmlResult('<?xml version="1.0" encoding="UTF-8"?><ModifyImageAttributeResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      + `<requestId>ModifyImageAttribute-${imageId}</requestId><return>true</return></ModifyImageAttributeResponse>`);
  }

  /** DescribeImageAttribute `imdsSupport`: moto's answers none. */
  async describeImdsSupport(region: string, params: URLSearchParams): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    if (!await this.exists(region, imageId)) {
      return ec2Error(400, 'InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    }
    const value = this.states.get(imageId)?.imdsSupport;
    return xmlResult('<?xml version="1.0" encoding="UTF-8"?><DescribeImageAttributeResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
      + `<requestId>DescribeImageAttribute-${imageId}</requestId><imageId>${imageId}</imageId>`
      + `${value !== undefined ? `<imdsSupport><value>${value}</value></imdsSupport>` : '<imdsSupport/>'}</DescribeImageAttributeResponse>`);
  }

  /** EC2's image deprecation and deregistration protection calls ({@link IMAGE_LIFECYCLE_ACTIONS}). */
  async call(region: string, action: string, params: URLSearchParams): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    if (!await this.exists(region, imageId)) {
      return ec2Error(400, 'InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    }
    const state = this.states.get(imageId) ?? {};
    let answer = 'true';
    switch (action) {
      case 'EnableImageDeprecation':
        state.deprecateAt = params.get('DeprecateAt') ?? undefined;
        break;
      case 'DisableImageDeprecation':
        delete state.deprecateAt;
        break;
      case 'EnableImageDeregistrationProtection':
        state.protection = params.get('WithCooldown') === 'true' ? 'enabled-with-cooldown' : 'enabled';
        delete state.cooldownUntil;
        break;
      default:
        if (state.protection === 'enabled-with-cooldown') {
          // The image stays protected for 24 hours after its protection with cooldown is disabled.
          state.cooldownUntil = this.moto.now() + DEREGISTRATION_PROTECTION_COOLDOWN_MS;
        }
        delete state.protection;
    }
    this.states.set(imageId, state);
    if (action.endsWith('DeregistrationProtection')) {
      // EC2 answers the new protection state (`enabled-without-cooldown`, `disabled`, ...), not `true`.
      answer = this.protectionShown(imageId);
    }
    return xmlResult(`<?xml version="1.0" encoding="UTF-8"?><${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`
      + `<requestId>${action}-${imageId}</requestId><return>${answer}</return></${action}Response>`);
  }

  /**
   * What EC2 adds to the image's `<item>` in DescribeImages: its `deprecationTime` (if any), `deregistrationProtection`
   * and `imdsSupport` (if set, and once EC2 shows the change: moto-consistency.ts).
   */
  describeImageFields(region: string, imageId: string): string {
    const imdsSupport = this.states.get(imageId)?.imdsSupport;
    const imds = imdsSupport !== undefined && !this.consistency.showsStaleAttributes(region, imageId)
      ? `<imdsSupport>${imdsSupport}</imdsSupport>`
      : '';
    const deprecateAt = this.states.get(imageId)?.deprecateAt;
    // EC2 rounds the deprecation time to the minute.
    const deprecation = deprecateAt !== undefined && !Number.isNaN(Date.parse(deprecateAt))
      ? `<deprecationTime>${ec2Time(Math.round(Date.parse(deprecateAt) / 60_000) * 60_000)}</deprecationTime>`
      : '';
    return `${deprecation}<deregistrationProtection>${this.protectionShown(imageId)}</deregistrationProtection>${imds}`;
  }

  /** EC2's refusal to deregister a protected image, and one in the cooldown after its protection was disabled; undefined when it may go. */
  refusesDeregistration(imageId: string): HttpResult | undefined {
    const state = this.states.get(imageId);
    if (state?.protection || (state?.cooldownUntil !== undefined && state.cooldownUntil > this.moto.now())) {
      return ec2Error(400, 'InvalidParameterValue', `Image ${imageId} has deregistration protection (${this.protectionShown(imageId)})`);
    }
    return undefined;
  }

  clear(): void {
    this.states.clear();
  }

  private async exists(region: string, imageId: string): Promise<boolean> {
    const found = await this.moto.motoIn(region).send(new DescribeImagesCommand({ ImageIds: [imageId] })).catch(() => undefined);
    return (found?.Images?.length ?? 0) > 0;
  }

  /** What DescribeImages shows as the image's `deregistrationProtection`. */
  private protectionShown(imageId: string): string {
    const state = this.states.get(imageId);
    if (state?.protection === 'enabled') {
      return 'enabled-without-cooldown';
    }
    if (state?.protection === 'enabled-with-cooldown') {
      return 'enabled-with-cooldown';
    }
    if (state?.cooldownUntil !== undefined && state.cooldownUntil > this.moto.now()) {
      return `disabled-until-${ec2Time(state.cooldownUntil)}`;
    }
    return 'disabled';
  }
}
