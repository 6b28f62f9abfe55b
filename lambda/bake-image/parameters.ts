/**
 * The ids of the copies, published in their regions: an SSM parameter of the same name in each copy region (data type
 * aws:ec2:image), so that a stack in that region resolves the current copy at its own deploy time instead of holding a
 * cross-region reference that a rebake would break. The stack's own region has its parameter as a CloudFormation
 * resource; these are the handler's.
 *
 * A parameter carries this stack's id from its creation (PutParameter with Tags), and the handler overwrites or deletes
 * only a parameter with that tag. A Delete deletes a parameter only while it holds the id of the copy being deleted: a
 * newer image's bake has overwritten it otherwise, and it is left to that image.
 */
import { ssmIn } from './clients';
import { describeError, errorCode } from './errors';
import { findImageByName, madeByThisResource, type Owner } from './images';
import { log, warn } from './log';
import { ownedBy, ownerTags, stackName } from './tags';
import { MANAGED_BY_VALUE, Tag } from '../../src/private/contract';

/** The data type that makes SSM check the value is an AMI id, and lets EC2 resolve `resolve:ssm:` to it. */
const IMAGE_DATA_TYPE = 'aws:ec2:image';

/** What a region holds under the parameter's name, as far as the handler may see. */
type Found =
  | { readonly kind: 'absent' }
  | { readonly kind: 'foreign'; readonly why: string }
  | { readonly kind: 'own'; readonly value: string; readonly dataType?: string };

/** Writes each copy's id to the parameter of this name in the copy's region. Repeatable. */
export async function publishCopyIds(
  owner: Owner,
  parameterName: string,
  copies: ReadonlyArray<{ readonly region: string; readonly imageId: string }>,
): Promise<void> {
  for (const copy of copies) {
    await publishCopyId(owner, parameterName, copy.region, copy.imageId);
  }
}

async function publishCopyId(owner: Owner, name: string, region: string, imageId: string): Promise<void> {
  const { client, sdk } = ssmIn(region);
  const description = `The copy in ${region} of the image baked by ${owner.LogicalResourceId} of ${stackName(owner.StackId)} (cdk-baked-image)`;
  // SSM takes Tags only when it creates a parameter, never with Overwrite.
  const put = (how: { Tags: ReturnType<typeof parameterTags> } | { Overwrite: true }) => client.send(new sdk.PutParameterCommand({
    Name: name,
    Value: imageId,
    Type: 'String',
    DataType: IMAGE_DATA_TYPE,
    Description: description,
    ...how,
  }));
  // Twice at most: a parameter deleted between the refused creation and the lookup is created on the second round.
  for (let round = 0; round < 2; round++) {
    try {
      // Create first, tagged with this stack's id.
      await put({ Tags: parameterTags(owner) });
      log('copy id published', { parameterName: name, region, imageId });
      return;
    } catch (error) {
      if (errorCode(error) !== 'ParameterAlreadyExists') {
        throw new Error(`PutParameter of ${name} in ${region} (the id of copy ${imageId}) failed: ${describeError(error)}`);
      }
    }
    const found = await findParameter(owner, name, region);
    switch (found.kind) {
      case 'absent':
        continue;
      case 'foreign':
        throw new Error(
          `The SSM parameter ${name} in ${region} already exists and was not created by this stack (${found.why}): it is left ` +
          `alone, and the id of copy ${imageId} is not published. Delete or rename that parameter, or change imageIdParameterName.`,
        );
      case 'own':
        if (found.value === imageId && found.dataType === IMAGE_DATA_TYPE) {
          log('copy id already published', { parameterName: name, region, imageId });
          return;
        }
        try {
          await put({ Overwrite: true });
        } catch (error) {
          throw new Error(`PutParameter (overwrite) of ${name} in ${region} (the id of copy ${imageId}) failed: ${describeError(error)}`);
        }
        log('copy id published, replacing the previous one', { parameterName: name, region, imageId, previous: found.value });
        return;
    }
  }
  throw new Error(`PutParameter of ${name} in ${region} keeps answering ParameterAlreadyExists for a parameter GetParameter does not find`);
}

/**
 * Deletes, in each of these regions, the parameter of this name while it holds the id of this image's copy there (the
 * copy is found by the image's name). A parameter that holds another id (a newer image's copy), that carries another
 * stack's tags, or that is gone is left alone. Repeatable. Runs before the copies are deleted: it finds them by name.
 */
export async function withdrawCopyIds(owner: Owner, parameterName: string, imageName: string, regions: string[]): Promise<void> {
  for (const region of regions) {
    const copy = await findImageByName(region, imageName);
    if (!copy?.ImageId || !madeByThisResource(copy, owner)) {
      log('no copy of this image: its parameter is left alone', { parameterName, region, imageName });
      continue;
    }
    await withdrawCopyId(owner, parameterName, region, copy.ImageId);
  }
}

async function withdrawCopyId(owner: Owner, name: string, region: string, imageId: string): Promise<void> {
  const found = await findParameter(owner, name, region);
  if (found.kind === 'absent') {
    log('copy id parameter already gone', { parameterName: name, region, imageId });
    return;
  }
  if (found.kind === 'foreign') {
    warn('copy id parameter not created by this stack: left alone', { parameterName: name, region, why: found.why });
    return;
  }
  if (found.value !== imageId) {
    log('copy id parameter holds another copy (a newer image\'s): left alone', { parameterName: name, region, imageId, holds: found.value });
    return;
  }
  const { client, sdk } = ssmIn(region);
  try {
    await client.send(new sdk.DeleteParameterCommand({ Name: name }));
    log('copy id parameter deleted', { parameterName: name, region, imageId });
  } catch (error) {
    if (errorCode(error) === 'ParameterNotFound') {
      log('copy id parameter already gone', { parameterName: name, region, imageId });
      return;
    }
    throw new Error(`DeleteParameter of ${name} in ${region} (the id of copy ${imageId}) failed: ${describeError(error)}`);
  }
}

/**
 * The parameter of this name in the region: absent, another's, or this stack's with its value. The handler may read only
 * parameters tagged with its stack's id: AccessDenied means the parameter is not this stack's (or not there).
 */
async function findParameter(owner: Owner, name: string, region: string): Promise<Found> {
  const { client, sdk } = ssmIn(region);
  let value: string;
  let dataType: string | undefined;
  try {
    const response = await client.send(new sdk.GetParameterCommand({ Name: name }));
    value = response.Parameter?.Value ?? '';
    dataType = response.Parameter?.DataType;
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ParameterNotFound') {
      return { kind: 'absent' };
    }
    if (code === 'AccessDeniedException') {
      return { kind: 'foreign', why: `this stack may not read it: it lacks the tag ${Tag.STACK_ID} = ${owner.StackId}` };
    }
    throw new Error(`GetParameter of ${name} in ${region} failed: ${describeError(error)}`);
  }
  let tags: Record<string, string>;
  try {
    const response = await client.send(new sdk.ListTagsForResourceCommand({ ResourceType: 'Parameter', ResourceId: name }));
    tags = Object.fromEntries((response.TagList ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
  } catch (error) {
    const code = errorCode(error);
    if (code === 'InvalidResourceId' || code === 'ParameterNotFound') {
      return { kind: 'absent' };
    }
    if (code === 'AccessDeniedException') {
      return { kind: 'foreign', why: `this stack may not read its tags: it lacks the tag ${Tag.STACK_ID} = ${owner.StackId}` };
    }
    throw new Error(`ListTagsForResource of parameter ${name} in ${region} failed: ${describeError(error)}`);
  }
  if (!ownedBy(new Map(Object.entries(tags)), owner, false)) {
    return { kind: 'foreign', why: `it lacks the tags ${Tag.MANAGED_BY} = ${MANAGED_BY_VALUE} and ${Tag.STACK_ID} = ${owner.StackId}` };
  }
  return { kind: 'own', value, dataType };
}

/**
 * This stack's tags. Any image of the stack may overwrite the parameter (a renamed construct's new image replaces the
 * old one's, as CloudFormation creates the new resource before it deletes the old); the logical id records the creator.
 */
function parameterTags(owner: Owner): Array<{ Key: string; Value: string }> {
  return ownerTags(owner).map((tag) => ({ Key: tag.Key!, Value: tag.Value! }));
}
