/**
 * The tags a baked image and its snapshots carry: which resource made them (stack and logical id, which
 * deletion and retention look for), and the manifest of what was baked.
 */
import type { Tag as Ec2Tag } from '@aws-sdk/client-ec2';
import type { OnEventRequest } from './types';
import type { BakeProperties } from '../../src/private/contract';
import { MANAGED_BY_VALUE, MAX_TAG_VALUE_LENGTH, Tag } from '../../src/private/contract';

/** Which custom resource a request is for: its stack and logical id. */
export type Owner = Pick<OnEventRequest, 'StackId' | 'LogicalResourceId'>;

/**
 * The tags that say which custom resource made an image, snapshot, test instance or parameter: deletion and
 * retention look for them, and IAM lets the handlers act only on what carries this stack's id.
 */
export function ownerTags(owner: Owner): Ec2Tag[] {
  return [
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_ID, Value: owner.StackId },
    { Key: Tag.LOGICAL_ID, Value: owner.LogicalResourceId },
  ];
}

/** True when the tags are this stack's ownership tags; with `sameResource`, of this very custom resource too. */
export function ownedBy(tags: ReadonlyMap<string | undefined, string | undefined>, owner: Owner, sameResource: boolean): boolean {
  return tags.get(Tag.MANAGED_BY) === MANAGED_BY_VALUE
    && tags.get(Tag.STACK_ID) === owner.StackId
    && (!sameResource || tags.get(Tag.LOGICAL_ID) === owner.LogicalResourceId);
}

/** The tags of a new image and of its snapshots. */
export function imageTags(event: OnEventRequest, name: string, props: BakeProperties): Ec2Tag[] {
  const manifest: Array<[string, string | undefined]> = [
    [Tag.BASE_IMAGE, props.manifest.baseImageId],
    [Tag.CONFIG_SETS, props.manifest.configSets],
    [Tag.INIT_FINGERPRINT, props.manifest.initFingerprint],
    [Tag.VERSION, props.manifest.libraryVersion],
    [Tag.BAKED_AT, new Date().toISOString()],
  ];
  return [
    { Key: 'Name', Value: name },
    ...ownerTags(event),
    { Key: Tag.STACK_NAME, Value: stackName(event.StackId) },
    { Key: Tag.IMAGE_NAME, Value: name },
    ...manifest.flatMap(([Key, value]) => (value ? [{ Key, Value: tagValue(value) }] : [])),
  ];
}

/** EC2 takes tag values of at most 256 characters: a longer value is cut, and says so. */
export function tagValue(value: string): string {
  return value.length <= MAX_TAG_VALUE_LENGTH ? value : `${value.slice(0, MAX_TAG_VALUE_LENGTH - 3)}...`;
}

/** arn:aws:cloudformation:region:account:stack/NAME/uuid -> NAME */
export function stackName(stackId: string): string {
  return stackId.split('/')[1] ?? stackId;
}
