/**
 * EC2's image and snapshot calls where moto 5.2.1 differs from EC2 (see the module comment of moto-server.ts):
 * CreateImage's snapshot tags, unique AMI names per region, CopyImage's tags, encryption request and ClientToken,
 * snapshots kept in use by RegisterImage, DeregisterImage's DeleteAssociatedSnapshots, the fast snapshot restores a
 * deleted snapshot loses (moto-fast-snapshot-restores.ts), and the lifecycle fields and eventual consistency of
 * DescribeImages.
 */
import type * as http from 'http';
import { CreateTagsCommand, DeleteSnapshotCommand, DescribeImagesCommand, type Tag } from '@aws-sdk/client-ec2';
import type { Ec2Consistency } from './moto-consistency';
import type { FastSnapshotRestores } from './moto-fast-snapshot-restores';
import {
  appendToItem,
  ec2Error,
  type HttpResult,
  itemField,
  joinXmlItems,
  type MotoBackend,
  numberedValues,
  requestKeyOf,
  withoutGroups,
  xmlItems,
  xmlResult,
} from './moto-http';
import type { ImageLifecycles } from './moto-image-lifecycle';

/** What a CopyImage asked for the copy it made (moto ignores Encrypted and KmsKeyId). */
export interface CopyRequest {
  readonly sourceRegion: string;
  readonly sourceImageId: string;
  /** The `Encrypted` parameter; undefined when the request had none. */
  readonly encrypted?: boolean;
  readonly kmsKeyId?: string;
}

/**
 * Removes the TagSpecification.N groups for one resource type, renumbering the others.
 * Returns the rewritten parameters and the tags of the removed groups.
 */
export function stripTagSpecifications(params: URLSearchParams, resourceType: string): { params: URLSearchParams; stripped: Tag[] } {
  const { params: rest, dropped } = withoutGroups(params, 'TagSpecification', (fields) => fields.get('ResourceType') === resourceType);
  const stripped: Tag[] = [];
  for (const fields of dropped) {
    const tags = new Map<number, Tag>();
    for (const [field, value] of fields) {
      const tagMatch = /^Tag\.(\d+)\.(Key|Value)$/.exec(field);
      if (tagMatch) {
        const tagIndex = Number(tagMatch[1]);
        tags.set(tagIndex, { ...tags.get(tagIndex), [tagMatch[2]]: value });
      }
    }
    stripped.push(...[...tags.entries()].sort((a, b) => a[0] - b[0]).map(([, tag]) => tag));
  }
  return { params: rest, stripped };
}

function imageIdOf(action: string, result: HttpResult): string {
  const imageId = /<imageId>([^<]+)<\/imageId>/.exec(result.body.toString('utf8'))?.[1];
  if (!imageId) {
    throw new Error(`${action} answered without an imageId: ${result.body.toString('utf8')}`);
  }
  return imageId;
}

/** The image calls moto gets wrong, and what the proxy remembers to answer them as EC2 would. */
export class EmulatedImages {
  /** Per region: the CreateImage or CopyImage being handled (they check the name and create one at a time). */
  private readonly imageCreations = new Map<string, Promise<unknown>>();
  /** Copy image id -> what its CopyImage asked (moto ignores Encrypted and KmsKeyId). */
  private readonly copies = new Map<string, CopyRequest>();
  /** `region clientToken` -> the CopyImage it made: EC2 answers a repeated request with the first copy. */
  private readonly copyTokens = new Map<string, { readonly request: string; readonly imageId: string }>();
  /** snapshot id -> ids of images registered from it (moto's RegisterImage forgets them). */
  private readonly snapshotUsers = new Map<string, Set<string>>();

  constructor(
    private readonly moto: MotoBackend,
    private readonly consistency: Ec2Consistency,
    private readonly lifecycle: ImageLifecycles,
    /** Told of every snapshot deleted through the proxy: EBS disables its fast snapshot restores. */
    private readonly fastRestores: FastSnapshotRestores,
  ) {}

  /** What the CopyImage that made this copy asked for; undefined for an image no CopyImage made. */
  copyRequest(imageId: string): CopyRequest | undefined {
    const request = this.copies.get(imageId);
    return request ? { ...request } : undefined;
  }

  /** CreateImage: EC2's duplicate-name check, and the `snapshot` tag specification moto answers HTTP 500 to. */
  createImage(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    return this.oneImageCreationAtATime(region, async () => {
      const duplicate = await this.duplicateName(region, params.get('Name'));
      if (duplicate) {
        return duplicate;
      }
      const { params: forwarded, stripped } = stripTagSpecifications(params, 'snapshot');
      const result = await this.moto.forward(request, Buffer.from(forwarded.toString(), 'utf8'));
      if (result.status !== 200) {
        return result;
      }
      const imageId = imageIdOf('CreateImage', result);
      if (stripped.length > 0) {
        await this.tagSnapshots(region, imageId, stripped);
      }
      this.consistency.imageCreated(region, imageId);
      return result;
    });
  }

  /**
   * CopyImage, in the destination region (the one the request is signed for): EC2's duplicate-name check, its
   * ClientToken idempotency, and the `image` and `snapshot` tag specifications moto ignores.
   */
  copyImage(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    return this.oneImageCreationAtATime(region, () => this.copy(region, request, params));
  }

  async registerImage(request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const referenced = numberedValues(params, 'BlockDeviceMapping', '.Ebs.SnapshotId');
    const result = await this.moto.forward(request, body);
    const imageId = /<imageId>([^<]+)<\/imageId>/.exec(result.body.toString('utf8'))?.[1];
    if (result.status === 200 && imageId) {
      for (const snapshotId of referenced) {
        this.snapshotUsers.set(snapshotId, new Set([...this.snapshotUsers.get(snapshotId) ?? [], imageId]));
      }
    }
    return result;
  }

  /** DescribeImages: new images hidden while EC2 is not consistent yet, and the lifecycle fields moto lacks. */
  async describeImages(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const result = this.consistency.describeImages(region, params, await this.moto.forward(request, body));
    if (result.status !== 200) {
      return result;
    }
    const parts = xmlItems(result.body.toString('utf8'), 'imagesSet');
    if (!parts || parts.items.length === 0) {
      return result;
    }
    const items = parts.items.map((item) => appendToItem(item, this.lifecycle.describeImageFields(region, itemField(item, 'imageId') ?? '')));
    return { ...result, body: Buffer.from(joinXmlItems({ ...parts, items }, 'imagesSet'), 'utf8') };
  }

  /**
   * DeleteSnapshot: `InvalidSnapshot.InUse` while EC2 still sees a deregistered image, or a registered one, using it;
   * a deleted snapshot's fast snapshot restores are disabled.
   */
  async deleteSnapshot(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const snapshotId = params.get('SnapshotId') ?? '';
    const user = this.consistency.snapshotStillInUse(region, snapshotId) ?? await this.registeredUserOf(region, snapshotId);
    if (user) {
      return ec2Error(400, 'InvalidSnapshot.InUse', `The snapshot ${snapshotId} is currently in use by ${user}`);
    }
    const result = await this.moto.forward(request, body);
    if (result.status === 200) {
      this.fastRestores.snapshotDeleted(region, snapshotId);
    }
    return result;
  }

  /** DeregisterImage: refused while the image is protected; DeleteAssociatedSnapshots carried out as EC2 does. */
  async deregisterImage(region: string, request: http.IncomingMessage, params: URLSearchParams, body: Buffer): Promise<HttpResult> {
    const imageId = params.get('ImageId') ?? '';
    const refusal = this.lifecycle.refusesDeregistration(imageId);
    if (refusal) {
      return refusal;
    }
    const deleteSnapshots = params.get('DeleteAssociatedSnapshots') === 'true';
    const snapshotIds = deleteSnapshots || this.consistency.tracksDeregisteredSnapshots
      ? await this.snapshotsOf(region, imageId).catch(() => [])
      : [];
    const result = await this.moto.forward(request, body);
    if (result.status !== 200) {
      return result;
    }
    this.consistency.imageDeregistered(region, imageId, snapshotIds);
    if (!deleteSnapshots) {
      return result;
    }
    // EC2 deletes the snapshots it can and says for each what happened (DeregisterImage's deleteSnapshotResultSet).
    const outcomes: string[] = [];
    for (const snapshotId of snapshotIds) {
      let returnCode: string;
      if (await this.registeredUserOf(region, snapshotId, imageId)) {
        returnCode = 'skipped'; // associated with another AMI
      } else if (this.consistency.snapshotInWindow(region, snapshotId)) {
        returnCode = 'client-error'; // InvalidSnapshot.InUse: EC2 still sees the image using it
      } else {
        await this.moto.motoIn(region).send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
        this.fastRestores.snapshotDeleted(region, snapshotId);
        returnCode = 'success';
      }
      outcomes.push(`<item><snapshotId>${snapshotId}</snapshotId><returnCode>${returnCode}</returnCode></item>`);
    }
    const xml = result.body.toString('utf8').replace(
      /<\/DeregisterImageResponse>\s*$/,
      `<deleteSnapshotResultSet>${outcomes.join('')}</deleteSnapshotResultSet></DeregisterImageResponse>`,
    );
    return { ...result, body: Buffer.from(xml, 'utf8') };
  }

  /** Forgets the copies, client tokens and registered snapshots (moto was reset). */
  clear(): void {
    this.copies.clear();
    this.copyTokens.clear();
    this.snapshotUsers.clear();
  }

  /**
   * Runs `create` after the CreateImage and CopyImage requests of the region that came before, so that the
   * duplicate-name check and the creation are atomic, like in EC2 (AMI names are unique per region).
   */
  private oneImageCreationAtATime(region: string, create: () => Promise<HttpResult>): Promise<HttpResult> {
    const run = (this.imageCreations.get(region) ?? Promise.resolve()).then(create);
    this.imageCreations.set(region, run.catch(() => undefined));
    return run;
  }

  private async copy(region: string, request: http.IncomingMessage, params: URLSearchParams): Promise<HttpResult> {
    const clientToken = params.get('ClientToken');
    const tokenKey = `${region} ${clientToken}`;
    const requestKey = requestKeyOf(params);
    const earlier = clientToken ? this.copyTokens.get(tokenKey) : undefined;
    if (earlier) {
      return earlier.request === requestKey
        ? xmlResult('<?xml version="1.0" encoding="UTF-8"?><CopyImageResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
          + `<requestId>copy-image-${earlier.imageId}</requestId><imageId>${earlier.imageId}</imageId></CopyImageResponse>`)
        : ec2Error(400, 'IdempotentParameterMismatch',
          `Client token ${clientToken} was already used for a CopyImage request with different parameters.`);
    }
    const duplicate = await this.duplicateName(region, params.get('Name'));
    if (duplicate) {
      return duplicate;
    }
    const { params: withoutImageTags, stripped: imageTags } = stripTagSpecifications(params, 'image');
    const { params: forwarded, stripped: snapshotTags } = stripTagSpecifications(withoutImageTags, 'snapshot');
    const result = await this.moto.forward(request, Buffer.from(forwarded.toString(), 'utf8'));
    if (result.status !== 200) {
      return result;
    }
    const imageId = imageIdOf('CopyImage', result);
    const encrypted = params.get('Encrypted');
    this.copies.set(imageId, {
      sourceRegion: params.get('SourceRegion') ?? '',
      sourceImageId: params.get('SourceImageId') ?? '',
      ...(encrypted !== null ? { encrypted: encrypted === 'true' } : {}),
      ...(params.get('KmsKeyId') ? { kmsKeyId: params.get('KmsKeyId') ?? undefined } : {}),
    });
    if (clientToken) {
      this.copyTokens.set(tokenKey, { request: requestKey, imageId });
    }
    if (imageTags.length > 0) {
      await this.moto.motoIn(region).send(new CreateTagsCommand({ Resources: [imageId], Tags: imageTags }));
    }
    if (snapshotTags.length > 0) {
      await this.tagSnapshots(region, imageId, snapshotTags);
    }
    this.consistency.imageCreated(region, imageId);
    return result;
  }

  /** EC2's answer when an image of the region already has this name; undefined when none has. */
  private async duplicateName(region: string, name: string | null): Promise<HttpResult | undefined> {
    if (!name) {
      return undefined;
    }
    const existing = await this.moto.motoIn(region).send(new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'name', Values: [name] }] }));
    const duplicate = existing.Images?.find((image) => image.Name === name);
    return duplicate
      ? ec2Error(400, 'InvalidAMIName.Duplicate', `AMI name ${name} is already in use by AMI ${duplicate.ImageId}`)
      : undefined;
  }

  private async tagSnapshots(region: string, imageId: string, tags: Tag[]): Promise<void> {
    const snapshotIds = await this.snapshotsOf(region, imageId);
    if (snapshotIds.length === 0) {
      throw new Error(`image ${imageId} has no snapshot to tag`);
    }
    await this.moto.motoIn(region).send(new CreateTagsCommand({ Resources: snapshotIds, Tags: tags }));
  }

  /** An image registered from this snapshot (RegisterImage) that is still registered, other than `except`. */
  private async registeredUserOf(region: string, snapshotId: string, except?: string): Promise<string | undefined> {
    const users = [...this.snapshotUsers.get(snapshotId) ?? []].filter((imageId) => imageId !== except);
    if (users.length === 0) {
      return undefined;
    }
    const registered = await this.moto.motoIn(region).send(new DescribeImagesCommand({ Filters: [{ Name: 'image-id', Values: users }] }));
    return registered.Images?.find((image) => image.State !== 'deregistered')?.ImageId;
  }

  private async snapshotsOf(region: string, imageId: string): Promise<string[]> {
    const response = await this.moto.motoIn(region).send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    const image = response.Images?.find((candidate) => candidate.ImageId === imageId);
    return (image?.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : []));
  }
}
