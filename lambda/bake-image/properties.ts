/**
 * The custom resource's properties, decoded by the contract's own decoder (src/private/contract): the one
 * definition of what the construct writes and the handlers read.
 */
import { decodeCopyParameterName, decodeCopyRegions, decodeProperties, decodeSharing, sharesWithAnyone, type Sharing } from '../../src/private/contract';

export { imageInputsChanged, InvalidPropertiesError } from '../../src/private/contract';
export type { BakeProperties, Manifest, Sharing, Validation } from '../../src/private/contract';

export const parseProperties = decodeProperties;
export const parseSharing = decodeSharing;
export const parseCopyRegions = decodeCopyRegions;
export const parseCopyParameterName = decodeCopyParameterName;

/** True when a sharing lists nobody. */
export function sharesWithNobody(sharing: Sharing): boolean {
  return !sharesWithAnyone(sharing);
}
