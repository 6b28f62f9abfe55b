/** What an image's state means for a bake in progress. */
export type BakeProgress =
  | { readonly kind: 'pending' }
  | { readonly kind: 'available' }
  | { readonly kind: 'failed'; readonly state: string; readonly reason: string };

/** The image's fields that decide progress (a subset of EC2's Image). */
export interface ImageStatus {
  readonly State?: string;
  readonly StateReason?: { readonly Code?: string; readonly Message?: string };
}

/**
 * Maps an EC2 image state to the progress of a bake.
 *
 * `pending` (and the short-lived `transient`) is still baking; `available` is done; `failed`, `error`,
 * `invalid`, `deregistered`, `disabled` and anything EC2 adds later end the bake with the state's reason.
 */
export function bakeProgress(image: ImageStatus | undefined): BakeProgress {
  if (!image) {
    return { kind: 'failed', state: 'not found', reason: 'the image no longer exists (deregistered outside this stack?)' };
  }
  switch (image.State) {
    case 'pending':
    case 'transient':
      return { kind: 'pending' };
    case 'available':
      return { kind: 'available' };
    default: {
      const reason = [image.StateReason?.Code, image.StateReason?.Message].filter(Boolean).join(': ') || 'no reason given';
      return { kind: 'failed', state: image.State ?? 'unknown', reason };
    }
  }
}
