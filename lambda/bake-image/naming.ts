import { createHash } from 'crypto';
import type { BakeProperties } from './properties';
import { NAME_FINGERPRINT_LENGTH } from '../../src/private/contract';

/**
 * The AMI name for a set of image inputs: `<prefix>-<fingerprint>`.
 *
 * Deterministic, so that a retried Create, or a rollback that asks again for an image that still
 * exists, finds the image it already made instead of making a second one. The fingerprint covers
 * every input that shapes the image; the builder's instance id makes it unique per builder.
 */
export function imageName(props: BakeProperties): string {
  const inputs = JSON.stringify([props.instanceId, props.description ?? '', props.noReboot, props.rebakeTrigger ?? '']);
  const fingerprint = createHash('sha256').update(inputs).digest('hex').slice(0, NAME_FINGERPRINT_LENGTH);
  return `${props.namePrefix}-${fingerprint}`;
}
