"use strict";
var __defProp = Object.defineProperty;
var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __hasOwnProp = Object.prototype.hasOwnProperty;
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};
var __copyProps = (to, from, except, desc) => {
  if (from && typeof from === "object" || typeof from === "function") {
    for (let key of __getOwnPropNames(from))
      if (!__hasOwnProp.call(to, key) && key !== except)
        __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
  }
  return to;
};
var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);

// lambda/bake-image/index.ts
var index_exports = {};
__export(index_exports, {
  isComplete: () => isComplete,
  onEvent: () => onEvent,
  stackName: () => stackName2,
  tagValue: () => tagValue
});
module.exports = __toCommonJS(index_exports);
var import_client_ec25 = require("@aws-sdk/client-ec2");

// lambda/bake-image/clients.ts
var import_client_ec2 = require("@aws-sdk/client-ec2");
var MAX_ATTEMPTS = 6;
function homeRegion() {
  return process.env.AWS_REGION ?? "";
}
var ec2 = new import_client_ec2.EC2Client({ maxAttempts: MAX_ATTEMPTS });
var regional = /* @__PURE__ */ new Map();
function ec2In(region) {
  if (region === homeRegion()) {
    return ec2;
  }
  let client = regional.get(region);
  if (!client) {
    client = new import_client_ec2.EC2Client({ region, maxAttempts: MAX_ATTEMPTS });
    regional.set(region, client);
  }
  return client;
}
var ssmSdk;
var ssmClients = /* @__PURE__ */ new Map();
function ssmIn(region) {
  if (!ssmSdk) {
    ssmSdk = require("@aws-sdk/client-ssm");
  }
  let client = ssmClients.get(region);
  if (!client) {
    client = new ssmSdk.SSMClient({ region, maxAttempts: MAX_ATTEMPTS });
    ssmClients.set(region, client);
  }
  return { client, sdk: ssmSdk };
}

// lambda/bake-image/copies.ts
var import_client_ec23 = require("@aws-sdk/client-ec2");

// lambda/bake-image/log.ts
function log(message, fields = {}) {
  console.log(JSON.stringify({ level: "info", message, ...fields }));
}
function warn(message, fields = {}) {
  console.warn(JSON.stringify({ level: "warn", message, ...fields }));
}

// lambda/bake-image/errors.ts
function errorCode(error) {
  if (typeof error === "object" && error !== null) {
    const { name, Code } = error;
    if (typeof Code === "string") {
      return Code;
    }
    if (typeof name === "string") {
      return name;
    }
  }
  return void 0;
}
function isImageGone(error) {
  const code = errorCode(error);
  return code === "InvalidAMIID.NotFound" || code === "InvalidAMIID.Unavailable";
}
function describeError(error) {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const attempts = error?.$metadata?.attempts;
  const retried = typeof attempts === "number" && attempts > 1 ? ` (after ${attempts} attempts)` : "";
  return (code && code !== "Error" ? `${code}: ${message}` : message) + retried;
}
function withContext(error, context) {
  if (typeof error === "object" && error !== null && typeof error.message === "string") {
    error.message = `${context} failed: ${describeError(error)}`;
  }
  return error;
}
var MAX_REASON_BYTES = 1500;
var CUT = "\n[...]\n";
function forCloudFormation(error) {
  const message = error instanceof Error ? error.message : String(error);
  log("request failed", { level: "error", error: message, stack: error instanceof Error ? error.stack : void 0 });
  const answer = new Error(fitReason(message, MAX_REASON_BYTES));
  answer.stack = "";
  return answer;
}
function fitReason(text, maxBytes) {
  if (escapedBytes(text) <= maxBytes) {
    return text;
  }
  const chars = Array.from(text);
  const budget = maxBytes - escapedBytes(CUT);
  const take = (from, limit) => {
    const kept = [];
    let used = 0;
    for (const char of from) {
      const size = escapedBytes(char);
      if (used + size > limit) {
        break;
      }
      kept.push(char);
      used += size;
    }
    return kept;
  };
  const head = take(chars, Math.floor(budget * 2 / 3));
  const tail = take([...chars].reverse(), budget - escapedBytes(head.join(""))).reverse();
  return `${head.join("")}${CUT}${tail.join("")}`;
}
function escapedBytes(text) {
  return Buffer.byteLength(JSON.stringify(text), "utf8") - 2;
}

// lambda/bake-image/image-state.ts
function bakeProgress(image) {
  if (!image) {
    return { kind: "failed", state: "not found", reason: "the image no longer exists (deregistered outside this stack?)" };
  }
  switch (image.State) {
    case "pending":
    case "transient":
      return { kind: "pending" };
    case "available":
      return { kind: "available" };
    default: {
      const reason = [image.StateReason?.Code, image.StateReason?.Message].filter(Boolean).join(": ") || "no reason given";
      return { kind: "failed", state: image.State ?? "unknown", reason };
    }
  }
}

// lambda/bake-image/images.ts
var import_client_ec22 = require("@aws-sdk/client-ec2");

// lambda/bake-image/sharing.ts
function keyOf(permission) {
  if (permission.UserId) {
    return `account:${permission.UserId}`;
  }
  if (permission.OrganizationArn) {
    return `organization:${permission.OrganizationArn}`;
  }
  if (permission.OrganizationalUnitArn) {
    return `ou:${permission.OrganizationalUnitArn}`;
  }
  return `group:${permission.Group ?? ""}`;
}
function desiredPermissions(sharing) {
  return [
    ...sharing.accounts.map((UserId) => ({ UserId })),
    ...sharing.organizationArns.map((OrganizationArn) => ({ OrganizationArn })),
    ...sharing.organizationalUnitArns.map((OrganizationalUnitArn) => ({ OrganizationalUnitArn }))
  ];
}
function launchPermissionChange(current, sharing) {
  const desired = desiredPermissions(sharing);
  const have = new Set(current.map(keyOf));
  const want = new Set(desired.map(keyOf));
  return {
    add: desired.filter((permission) => !have.has(keyOf(permission))),
    remove: current.filter((permission) => !want.has(keyOf(permission)))
  };
}

// src/private/contract.ts
var Prop = {
  /** The builder instance the image is created from. */
  INSTANCE_ID: "InstanceId",
  /** Prefix of the AMI name; the handler appends a fingerprint of the image inputs. */
  NAME_PREFIX: "NamePrefix",
  /** AMI description. */
  DESCRIPTION: "Description",
  /** 'true' to skip the reboot before the snapshot (no file-system consistency guarantee). */
  NO_REBOOT: "NoReboot",
  /** Free-form value; a change bakes a new image from a fresh builder. */
  REBAKE_TRIGGER: "RebakeTrigger",
  /** What happens to the image and its snapshots on Delete: one of RemovalMode. */
  REMOVAL: "Removal",
  /** What happens to the builder once the image is available: one of BuilderMode. */
  BUILDER_AFTER_BAKE: "BuilderAfterBake",
  /** Seconds an image may stay pending before the bake is failed. */
  BAKE_TIMEOUT_SECONDS: "BakeTimeoutSeconds",
  /** Account ids the image is shared with (launch permissions); a list. */
  SHARE_ACCOUNTS: "ShareWithAccounts",
  /** Organization ARNs the image is shared with; a list. */
  SHARE_ORGANIZATIONS: "ShareWithOrganizations",
  /** Organizational unit ARNs the image is shared with; a list. */
  SHARE_ORGANIZATIONAL_UNITS: "ShareWithOrganizationalUnits",
  /** Seconds after its creation at which the image is deprecated; absent: never. */
  DEPRECATE_AFTER_SECONDS: "DeprecateAfterSeconds",
  /** 'true' to protect the image from deregistration (the Delete lifts it first). */
  DEREGISTRATION_PROTECTION: "DeregistrationProtection",
  /** How many superseded images of this resource to keep after a replacement; '0' or absent: none. */
  KEEP_SUPERSEDED: "KeepSupersededImages",
  /** Regions the image is copied to once available; a list. */
  COPY_TO_REGIONS: "CopyToRegions",
  /** KMS key ARNs that encrypt the copies, by region; an object. Regions not listed use their default EBS key. */
  COPY_KMS_KEYS: "CopyKmsKeyIds",
  /**
   * The SSM parameter each copy's id is written to, in the copy's region (data type aws:ec2:image); absent: none.
   * The stack's own region has its parameter as a CloudFormation resource.
   */
  COPY_IMAGE_ID_PARAMETER_NAME: "CopyImageIdParameterName",
  /** Validation: the user data of the test instance (a bash script); absent: no validation. */
  VALIDATION_USER_DATA: "ValidationUserData",
  /** Validation: seconds the test may run, from the test instance's launch. */
  VALIDATION_TIMEOUT_SECONDS: "ValidationTimeoutSeconds",
  /** Validation: the test instance's type. */
  VALIDATION_INSTANCE_TYPE: "ValidationInstanceType",
  /** Validation: the subnet the test instance runs in (the builder's). */
  VALIDATION_SUBNET_ID: "ValidationSubnetId",
  /** Validation: the security groups of the test instance (the builder's); a list. */
  VALIDATION_SECURITY_GROUP_IDS: "ValidationSecurityGroupIds",
  /** Manifest: the base image the builder started from. */
  BASE_IMAGE_ID: "BaseImageId",
  /** Manifest: the config sets the builder ran, space-separated. */
  CONFIG_SETS: "ConfigSets",
  /** Manifest: a fingerprint of the builder's cfn-init metadata. */
  INIT_FINGERPRINT: "InitFingerprint",
  /** Manifest: the version of cdk-baked-image that defined the bake. */
  LIBRARY_VERSION: "LibraryVersion"
};
var IMAGE_SHAPING_PROPS = [
  Prop.INSTANCE_ID,
  Prop.NAME_PREFIX,
  Prop.DESCRIPTION,
  Prop.NO_REBOOT,
  Prop.REBAKE_TRIGGER
];
var MAX_KEEP_SUPERSEDED = 50;
var ACCOUNT_ID_PATTERN = /^\d{12}$/;
var ORGANIZATION_ARN_PATTERN = /^arn:aws[a-z-]*:organizations::\d{12}:organization\/o-[a-z0-9]{10,32}$/;
var ORGANIZATIONAL_UNIT_ARN_PATTERN = /^arn:aws[a-z-]*:organizations::\d{12}:ou\/o-[a-z0-9]{10,32}\/ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}$/;
var RemovalMode = {
  DESTROY: "destroy",
  RETAIN: "retain"
};
var BuilderMode = {
  STOP: "stop",
  TERMINATE: "terminate",
  KEEP_RUNNING: "keep-running"
};
var Attr = {
  IMAGE_ID: "ImageId",
  IMAGE_NAME: "ImageName",
  /**
   * When onEvent started this request's work (ISO 8601). The provider framework hands onEvent's Data to every
   * isComplete of the request: bakeTimeout and the other deadlines count from it, not from the image's creation.
   */
  REQUEST_STARTED_AT: "RequestStartedAt",
  /** Delete: snapshots EC2 still reported in use after their image was deregistered, `region/snap-...` space-separated. */
  SNAPSHOTS_IN_USE: "SnapshotsInUse"
};
function copyImageIdAttribute(region) {
  return `${Attr.IMAGE_ID}.${region}`;
}
var REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
var KMS_KEY_ARN_PATTERN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/;
var Tag = {
  MANAGED_BY: "cdk-baked-image:managed-by",
  STACK_NAME: "cdk-baked-image:stack-name",
  STACK_ID: "cdk-baked-image:stack-id",
  LOGICAL_ID: "cdk-baked-image:logical-id",
  /** The AMI name, also on the snapshots: a Delete retried after the image is gone still finds them. */
  IMAGE_NAME: "cdk-baked-image:image-name",
  /** Manifest tags: what the image is made of. */
  BASE_IMAGE: "cdk-baked-image:base-image",
  CONFIG_SETS: "cdk-baked-image:config-sets",
  INIT_FINGERPRINT: "cdk-baked-image:init-fingerprint",
  VERSION: "cdk-baked-image:version",
  BAKED_AT: "cdk-baked-image:baked-at",
  /**
   * On an image: the regions it was ever copied to, space-separated. A Delete looks for copies there as well
   * as in the regions its properties list, which may have changed since.
   */
  COPY_REGIONS: "cdk-baked-image:copy-regions",
  /** On a copy: `<region>/<image id>` of the image it was copied from. */
  COPIED_FROM: "cdk-baked-image:copied-from",
  /** On an image: the fingerprint of the validation it passed. */
  VALIDATED: "cdk-baked-image:validated",
  /** On a test instance: the image it validates. */
  VALIDATES: "cdk-baked-image:validates",
  /** On a test instance: the CloudFormation request it was launched for. */
  VALIDATION_REQUEST: "cdk-baked-image:validation-request"
};
var VALIDATION_REPORT_PREFIX = "cdk-baked-image-validation";
var PARAMETER_NAME_PATTERN = /^(?!\/?(aws|ssm))[a-zA-Z0-9_.\-/]{1,1011}$/i;
var MAX_TAG_VALUE_LENGTH = 256;
var MANAGED_BY_VALUE = "cdk-baked-image";
var NAME_FINGERPRINT_LENGTH = 16;
var MAX_IMAGE_NAME_LENGTH = 128;
var MAX_NAME_PREFIX_LENGTH = MAX_IMAGE_NAME_LENGTH - NAME_FINGERPRINT_LENGTH - 1;

// lambda/bake-image/images.ts
function inRegion(region) {
  return region === homeRegion() ? "" : ` in ${region}`;
}
function regionField(region) {
  return region === homeRegion() ? {} : { region };
}
async function describeImage(region, imageId) {
  try {
    const response = await ec2In(region).send(new import_client_ec22.DescribeImagesCommand({ ImageIds: [imageId] }));
    return response.Images?.find((image) => image.ImageId === imageId);
  } catch (error) {
    if (isImageGone(error)) {
      return void 0;
    }
    throw withContext(error, `DescribeImages for image ${imageId}${inRegion(region)}`);
  }
}
async function findImageByName(region, name) {
  try {
    const response = await ec2In(region).send(new import_client_ec22.DescribeImagesCommand({
      Owners: ["self"],
      Filters: [{ Name: "name", Values: [name] }]
    }));
    return response.Images?.find((image) => image.Name === name && image.State !== "deregistered");
  } catch (error) {
    throw withContext(error, `DescribeImages for the image named ${name}${inRegion(region)}`);
  }
}
function madeByThisResource(image, owner) {
  const tags = new Map((image.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
  return tags.get(Tag.MANAGED_BY) === MANAGED_BY_VALUE && tags.get(Tag.STACK_ID) === owner.StackId && tags.get(Tag.LOGICAL_ID) === owner.LogicalResourceId;
}
async function deleteImage(region, owner, imageId, name, protectedByProps, described) {
  const image = described ? described.image : imageId ? await describeImage(region, imageId) : void 0;
  if (image && !madeByThisResource(image, owner)) {
    warn("image does not carry this resource's tags: left alone", { imageId, ...regionField(region) });
    return [];
  }
  const snapshotIds = /* @__PURE__ */ new Set();
  for (const mapping of image?.BlockDeviceMappings ?? []) {
    if (mapping.Ebs?.SnapshotId) {
      snapshotIds.add(mapping.Ebs.SnapshotId);
    }
  }
  const label = imageId ?? name;
  for (const snapshotId of await findSnapshotsByImageName(region, owner, image?.Name ?? name, label)) {
    snapshotIds.add(snapshotId);
  }
  if (imageId) {
    if (protectedByProps || image?.DeregistrationProtection?.startsWith("enabled")) {
      await liftDeregistrationProtection(region, imageId, image?.DeregistrationProtection);
    }
    await deregister(region, imageId);
  } else {
    log("image already gone", { imageId: label, ...regionField(region) });
  }
  return deleteSnapshots(region, [...snapshotIds], label);
}
async function deleteSnapshots(region, snapshotIds, imageId) {
  const inUse = [];
  for (const snapshotId of snapshotIds) {
    if (await deleteSnapshot(region, snapshotId, imageId) === "in-use") {
      inUse.push(`${region}/${snapshotId}`);
    }
  }
  return inUse;
}
async function findSnapshotsByImageName(region, owner, name, imageId) {
  try {
    const response = await ec2In(region).send(new import_client_ec22.DescribeSnapshotsCommand({
      OwnerIds: ["self"],
      Filters: [
        { Name: `tag:${Tag.IMAGE_NAME}`, Values: [name] },
        { Name: `tag:${Tag.STACK_ID}`, Values: [owner.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [owner.LogicalResourceId] }
      ]
    }));
    return (response.Snapshots ?? []).flatMap((snapshot) => snapshot.SnapshotId ? [snapshot.SnapshotId] : []);
  } catch (error) {
    throw withContext(error, `DescribeSnapshots for the snapshots of image ${imageId} (${name})${inRegion(region)}`);
  }
}
async function liftDeregistrationProtection(region, imageId, state) {
  try {
    await ec2In(region).send(new import_client_ec22.DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    log("deregistration protection lifted for the delete", { imageId, state, ...regionField(region) });
  } catch (error) {
    if (isImageGone(error)) {
      return;
    }
    throw new Error(`Could not lift the deregistration protection of image ${imageId}${inRegion(region)}: ${describeError(error)}`);
  }
  if (state === "enabled-with-cooldown") {
    throw new Error(
      `Image ${imageId}${inRegion(region)} has deregistration protection with a cooldown (${state}): it was lifted now, and EC2 lets the image be deregistered only after the 24-hour cooldown. Retry the delete after that; in an update's cleanup, CloudFormation gives up on it and the image stays: deregister it (and delete its snapshots) yourself then.`
    );
  }
}
async function deregister(region, imageId) {
  try {
    await ec2In(region).send(new import_client_ec22.DeregisterImageCommand({ ImageId: imageId, DeleteAssociatedSnapshots: true }));
    log("image deregistered", { imageId, ...regionField(region) });
  } catch (error) {
    if (isImageGone(error)) {
      log("image already gone", { imageId, code: errorCode(error), ...regionField(region) });
      return;
    }
    throw new Error(`Could not deregister image ${imageId}${inRegion(region)}: ${describeError(error)}`);
  }
}
async function deleteSnapshot(region, snapshotId, imageId) {
  try {
    await ec2In(region).send(new import_client_ec22.DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    log("snapshot deleted", { snapshotId, imageId, ...regionField(region) });
    return "deleted";
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidSnapshot.NotFound") {
      log("snapshot already gone", { snapshotId, imageId, ...regionField(region) });
      return "gone";
    }
    if (code === "InvalidSnapshot.InUse") {
      log("snapshot still in use: the delete retries it", { snapshotId, imageId, ...regionField(region) });
      return "in-use";
    }
    throw new Error(`Could not delete snapshot ${snapshotId} of image ${imageId}${inRegion(region)}: ${describeError(error)}`);
  }
}
async function shareImage(region, imageId, sharing) {
  const client = ec2In(region);
  let current;
  try {
    const response = await client.send(new import_client_ec22.DescribeImageAttributeCommand({ ImageId: imageId, Attribute: "launchPermission" }));
    current = response.LaunchPermissions ?? [];
  } catch (error) {
    throw withContext(error, `DescribeImageAttribute (launchPermission) for image ${imageId}${inRegion(region)}`);
  }
  const change = launchPermissionChange(current, sharing);
  if (change.add.length === 0 && change.remove.length === 0) {
    log("launch permissions already as asked", { imageId, ...regionField(region) });
    return;
  }
  try {
    await client.send(new import_client_ec22.ModifyImageAttributeCommand({
      ImageId: imageId,
      LaunchPermission: {
        ...change.add.length > 0 ? { Add: change.add } : {},
        ...change.remove.length > 0 ? { Remove: change.remove } : {}
      }
    }));
  } catch (error) {
    throw new Error(`Could not share image ${imageId}${inRegion(region)} (launch permissions): ${describeError(error)}`);
  }
  log("launch permissions updated", { imageId, added: change.add, removed: change.remove, ...regionField(region) });
}
async function setLifecycle(region, imageId, creationDate, props, before) {
  const client = ec2In(region);
  const where = `image ${imageId}${inRegion(region)}`;
  if (props.deprecateAfterSeconds !== void 0) {
    const created = Date.parse(creationDate ?? "") || Date.now();
    const deprecateAt = new Date(Math.max(created + props.deprecateAfterSeconds * 1e3, Date.now() + 6e4));
    await lifecycleCall(
      `EnableImageDeprecation for ${where}`,
      () => client.send(new import_client_ec22.EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: deprecateAt }))
    );
    log("image deprecation set", { imageId, deprecateAt: deprecateAt.toISOString(), ...regionField(region) });
  } else if (before?.deprecateAfterSeconds !== void 0) {
    await lifecycleCall(
      `DisableImageDeprecation for ${where}`,
      () => client.send(new import_client_ec22.DisableImageDeprecationCommand({ ImageId: imageId }))
    );
    log("image deprecation removed", { imageId, ...regionField(region) });
  }
  if (props.deregistrationProtection) {
    await lifecycleCall(
      `EnableImageDeregistrationProtection for ${where}`,
      () => client.send(new import_client_ec22.EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: false }))
    );
    log("deregistration protection enabled", { imageId, ...regionField(region) });
  } else if (before?.deregistrationProtection) {
    await lifecycleCall(
      `DisableImageDeregistrationProtection for ${where}`,
      () => client.send(new import_client_ec22.DisableImageDeregistrationProtectionCommand({ ImageId: imageId }))
    );
    log("deregistration protection removed", { imageId, ...regionField(region) });
  }
}
async function lifecycleCall(what, call) {
  try {
    await call();
  } catch (error) {
    throw new Error(`${what} failed: ${describeError(error)}`);
  }
}

// lambda/bake-image/copies.ts
async function pollCopies(owner, source, props) {
  await recordCopyRegions(source, otherRegions(props.copyToRegions));
  const results = await Promise.all(otherRegions(props.copyToRegions).map((region) => pollCopy(owner, source, region, props)));
  return {
    pending: results.filter((result) => !result.image).map((result) => result.region),
    available: results.flatMap((result) => result.image ? [{ region: result.region, image: result.image }] : [])
  };
}
async function pollCopy(owner, source, region, props) {
  const name = source.Name ?? "";
  const copy = await findImageByName(region, name);
  if (!copy) {
    await startCopy(source, region, props);
    return { region };
  }
  if (!madeByThisResource(copy, owner)) {
    throw new Error(
      `An image named ${name} already exists in ${region} (${copy.ImageId}) without the tags of this resource: it was not copied by this stack and is left alone. Deregister or rename it, or change imageName.`
    );
  }
  const progress = bakeProgress(copy);
  switch (progress.kind) {
    case "pending":
      return { region };
    case "available":
      return { region, image: copy };
    case "failed":
      throw new Error(
        `Copy ${copy.ImageId} of image ${source.ImageId} in ${region} is ${progress.state} (${progress.reason}). The copies and the image are deleted with this resource.`
      );
  }
}
async function startCopy(source, region, props) {
  const name = source.Name ?? "";
  const tags = copyTags(source);
  const kmsKeyId = props.copyKmsKeyIds[region];
  try {
    const response = await ec2In(region).send(new import_client_ec23.CopyImageCommand({
      SourceImageId: source.ImageId,
      SourceRegion: homeRegion(),
      Name: name,
      Description: source.Description,
      // The source's snapshots are encrypted, so the copy's are: with the key given for the region, or the
      // region's default EBS key.
      Encrypted: true,
      ...kmsKeyId ? { KmsKeyId: kmsKeyId } : {},
      // EC2 makes one copy per token and region, however often a lost answer is retried.
      ClientToken: `${source.ImageId}-copy`,
      TagSpecifications: [
        { ResourceType: "image", Tags: tags },
        { ResourceType: "snapshot", Tags: tags }
      ]
    }));
    log("image copy started", { imageId: source.ImageId, region, copyImageId: response.ImageId, kmsKeyId });
  } catch (error) {
    if (errorCode(error) === "InvalidAMIName.Duplicate") {
      log("image copy already started", { imageId: source.ImageId, region, imageName: name });
      return;
    }
    throw new Error(`CopyImage of image ${source.ImageId} (${name}) to ${region} failed: ${describeError(error)}`);
  }
}
function recordedCopyRegions(image) {
  const value = image?.Tags?.find((tag) => tag.Key === Tag.COPY_REGIONS)?.Value ?? "";
  return value.split(" ").filter((region) => region !== "");
}
async function recordCopyRegions(source, regions) {
  const recorded = recordedCopyRegions(source);
  const all = [.../* @__PURE__ */ new Set([...recorded, ...regions])].sort();
  if (all.length === recorded.length) {
    return;
  }
  const value = all.join(" ").length <= MAX_TAG_VALUE_LENGTH ? all.join(" ") : [...regions].sort().join(" ").slice(0, MAX_TAG_VALUE_LENGTH);
  try {
    await ec2.send(new import_client_ec23.CreateTagsCommand({ Resources: [source.ImageId ?? ""], Tags: [{ Key: Tag.COPY_REGIONS, Value: value }] }));
  } catch (error) {
    throw withContext(error, `CreateTags (${Tag.COPY_REGIONS}) for image ${source.ImageId}`);
  }
  source.Tags = [...(source.Tags ?? []).filter((tag) => tag.Key !== Tag.COPY_REGIONS), { Key: Tag.COPY_REGIONS, Value: value }];
}
function copyTags(source) {
  const own = /* @__PURE__ */ new Set([Tag.COPIED_FROM, Tag.COPY_REGIONS]);
  return [
    ...(source.Tags ?? []).filter((tag) => tag.Key && !tag.Key.startsWith("aws:") && !own.has(tag.Key)),
    { Key: Tag.COPIED_FROM, Value: `${homeRegion()}/${source.ImageId}` }
  ];
}
async function deleteCopies(owner, name, regions, protectedByProps) {
  const inUse = [];
  for (const region of otherRegions(regions)) {
    const copy = await findImageByName(region, name);
    inUse.push(...await deleteImage(region, owner, copy?.ImageId, name, protectedByProps));
  }
  return inUse;
}
function otherRegions(regions) {
  return regions.filter((region) => region !== homeRegion());
}

// lambda/bake-image/naming.ts
var import_crypto = require("crypto");
function imageName(props) {
  const inputs = JSON.stringify([props.instanceId, props.description ?? "", props.noReboot, props.rebakeTrigger ?? ""]);
  const fingerprint = (0, import_crypto.createHash)("sha256").update(inputs).digest("hex").slice(0, NAME_FINGERPRINT_LENGTH);
  return `${props.namePrefix}-${fingerprint}`;
}

// lambda/bake-image/parameters.ts
var IMAGE_DATA_TYPE = "aws:ec2:image";
async function publishCopyIds(owner, parameterName, copies) {
  for (const copy of copies) {
    await publishCopyId(owner, parameterName, copy.region, copy.imageId);
  }
}
async function publishCopyId(owner, name, region, imageId) {
  const { client, sdk } = ssmIn(region);
  const description = `The copy in ${region} of the image baked by ${owner.LogicalResourceId} of ${stackName(owner.StackId)} (cdk-baked-image)`;
  const put = (how) => client.send(new sdk.PutParameterCommand({
    Name: name,
    Value: imageId,
    Type: "String",
    DataType: IMAGE_DATA_TYPE,
    Description: description,
    ...how
  }));
  for (let round = 0; round < 2; round++) {
    try {
      await put({ Tags: parameterTags(owner) });
      log("copy id published", { parameterName: name, region, imageId });
      return;
    } catch (error) {
      if (errorCode(error) !== "ParameterAlreadyExists") {
        throw new Error(`PutParameter of ${name} in ${region} (the id of copy ${imageId}) failed: ${describeError(error)}`);
      }
    }
    const found = await findParameter(owner, name, region);
    switch (found.kind) {
      case "absent":
        continue;
      case "foreign":
        throw new Error(
          `The SSM parameter ${name} in ${region} already exists and was not created by this stack (${found.why}): it is left alone, and the id of copy ${imageId} is not published. Delete or rename that parameter, or change imageIdParameterName.`
        );
      case "own":
        if (found.value === imageId && found.dataType === IMAGE_DATA_TYPE) {
          log("copy id already published", { parameterName: name, region, imageId });
          return;
        }
        try {
          await put({ Overwrite: true });
        } catch (error) {
          throw new Error(`PutParameter (overwrite) of ${name} in ${region} (the id of copy ${imageId}) failed: ${describeError(error)}`);
        }
        log("copy id published, replacing the previous one", { parameterName: name, region, imageId, previous: found.value });
        return;
    }
  }
  throw new Error(`PutParameter of ${name} in ${region} keeps answering ParameterAlreadyExists for a parameter GetParameter does not find`);
}
async function withdrawCopyIds(owner, parameterName, imageName2, regions) {
  for (const region of regions) {
    const copy = await findImageByName(region, imageName2);
    if (!copy?.ImageId || !madeByThisResource(copy, owner)) {
      log("no copy of this image: its parameter is left alone", { parameterName, region, imageName: imageName2 });
      continue;
    }
    await withdrawCopyId(owner, parameterName, region, copy.ImageId);
  }
}
async function withdrawCopyId(owner, name, region, imageId) {
  const found = await findParameter(owner, name, region);
  if (found.kind === "absent") {
    log("copy id parameter already gone", { parameterName: name, region, imageId });
    return;
  }
  if (found.kind === "foreign") {
    warn("copy id parameter not created by this stack: left alone", { parameterName: name, region, why: found.why });
    return;
  }
  if (found.value !== imageId) {
    log("copy id parameter holds another copy (a newer image's): left alone", { parameterName: name, region, imageId, holds: found.value });
    return;
  }
  const { client, sdk } = ssmIn(region);
  try {
    await client.send(new sdk.DeleteParameterCommand({ Name: name }));
    log("copy id parameter deleted", { parameterName: name, region, imageId });
  } catch (error) {
    if (errorCode(error) === "ParameterNotFound") {
      log("copy id parameter already gone", { parameterName: name, region, imageId });
      return;
    }
    throw new Error(`DeleteParameter of ${name} in ${region} (the id of copy ${imageId}) failed: ${describeError(error)}`);
  }
}
async function findParameter(owner, name, region) {
  const { client, sdk } = ssmIn(region);
  let value;
  let dataType;
  try {
    const response = await client.send(new sdk.GetParameterCommand({ Name: name }));
    value = response.Parameter?.Value ?? "";
    dataType = response.Parameter?.DataType;
  } catch (error) {
    const code = errorCode(error);
    if (code === "ParameterNotFound") {
      return { kind: "absent" };
    }
    if (code === "AccessDeniedException") {
      return { kind: "foreign", why: `this stack may not read it: it lacks the tag ${Tag.STACK_ID} = ${owner.StackId}` };
    }
    throw new Error(`GetParameter of ${name} in ${region} failed: ${describeError(error)}`);
  }
  let tags;
  try {
    const response = await client.send(new sdk.ListTagsForResourceCommand({ ResourceType: "Parameter", ResourceId: name }));
    tags = Object.fromEntries((response.TagList ?? []).map((tag) => [tag.Key ?? "", tag.Value ?? ""]));
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidResourceId" || code === "ParameterNotFound") {
      return { kind: "absent" };
    }
    if (code === "AccessDeniedException") {
      return { kind: "foreign", why: `this stack may not read its tags: it lacks the tag ${Tag.STACK_ID} = ${owner.StackId}` };
    }
    throw new Error(`ListTagsForResource of parameter ${name} in ${region} failed: ${describeError(error)}`);
  }
  if (tags[Tag.MANAGED_BY] !== MANAGED_BY_VALUE || tags[Tag.STACK_ID] !== owner.StackId) {
    return { kind: "foreign", why: `it lacks the tags ${Tag.MANAGED_BY} = ${MANAGED_BY_VALUE} and ${Tag.STACK_ID} = ${owner.StackId}` };
  }
  return { kind: "own", value, dataType };
}
function parameterTags(owner) {
  return [
    { Key: Tag.STACK_ID, Value: owner.StackId },
    { Key: Tag.LOGICAL_ID, Value: owner.LogicalResourceId },
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE }
  ];
}
function stackName(stackId) {
  return stackId.split("/")[1] ?? stackId;
}

// lambda/bake-image/properties.ts
var import_crypto2 = require("crypto");
var InvalidPropertiesError = class extends Error {
  constructor(message) {
    super(message);
    this.name = "InvalidPropertiesError";
  }
};
function optionalString(props, name) {
  const value = props[name];
  if (value === void 0 || value === null || value === "") {
    return void 0;
  }
  if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
    throw new InvalidPropertiesError(`Property ${name} must be a string, got ${typeof value}`);
  }
  return String(value);
}
function requiredString(props, name) {
  const value = optionalString(props, name);
  if (value === void 0) {
    throw new InvalidPropertiesError(`Property ${name} is required`);
  }
  return value;
}
function oneOf(name, value, allowed, fallback) {
  if (value === void 0) {
    return fallback;
  }
  const values = Object.values(allowed);
  if (!values.includes(value)) {
    throw new InvalidPropertiesError(`Property ${name} must be one of ${values.join(", ")}, got '${value}'`);
  }
  return value;
}
function parseBoolean(name, value) {
  if (value === void 0) {
    return false;
  }
  if (value !== "true" && value !== "false") {
    throw new InvalidPropertiesError(`Property ${name} must be 'true' or 'false', got '${value}'`);
  }
  return value === "true";
}
function parseCount(name, value) {
  if (value === void 0) {
    return 0;
  }
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed > MAX_KEEP_SUPERSEDED) {
    throw new InvalidPropertiesError(`Property ${name} must be a whole number from 0 to ${MAX_KEEP_SUPERSEDED}, got '${value}'`);
  }
  return parsed;
}
function parsePositiveInteger(name, value) {
  if (value === void 0) {
    return void 0;
  }
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) {
    throw new InvalidPropertiesError(`Property ${name} must be a positive whole number of seconds, got '${value}'`);
  }
  return parsed;
}
function stringList(props, name, pattern, what) {
  const value = props[name];
  if (value === void 0 || value === null || value === "") {
    return [];
  }
  if (!Array.isArray(value)) {
    throw new InvalidPropertiesError(`Property ${name} must be a list of ${what}, got ${typeof value}`);
  }
  const items = value.map(String);
  const bad = items.filter((item) => !pattern.test(item));
  if (bad.length > 0) {
    throw new InvalidPropertiesError(`Property ${name} must list ${what}, got '${bad.join("', '")}'`);
  }
  return [...new Set(items)];
}
function parseProperties(props) {
  return {
    instanceId: requiredString(props, Prop.INSTANCE_ID),
    namePrefix: requiredString(props, Prop.NAME_PREFIX),
    description: optionalString(props, Prop.DESCRIPTION),
    noReboot: parseBoolean(Prop.NO_REBOOT, optionalString(props, Prop.NO_REBOOT)),
    rebakeTrigger: optionalString(props, Prop.REBAKE_TRIGGER),
    removal: oneOf(Prop.REMOVAL, optionalString(props, Prop.REMOVAL), RemovalMode, RemovalMode.DESTROY),
    builderAfterBake: oneOf(Prop.BUILDER_AFTER_BAKE, optionalString(props, Prop.BUILDER_AFTER_BAKE), BuilderMode, BuilderMode.STOP),
    bakeTimeoutSeconds: parsePositiveInteger(Prop.BAKE_TIMEOUT_SECONDS, optionalString(props, Prop.BAKE_TIMEOUT_SECONDS)),
    sharing: parseSharing(props),
    deprecateAfterSeconds: parsePositiveInteger(Prop.DEPRECATE_AFTER_SECONDS, optionalString(props, Prop.DEPRECATE_AFTER_SECONDS)),
    keepSuperseded: parseCount(Prop.KEEP_SUPERSEDED, optionalString(props, Prop.KEEP_SUPERSEDED)),
    deregistrationProtection: parseBoolean(Prop.DEREGISTRATION_PROTECTION, optionalString(props, Prop.DEREGISTRATION_PROTECTION)),
    copyToRegions: parseCopyRegions(props),
    copyKmsKeyIds: parseCopyKeys(props),
    copyParameterName: parseCopyParameterName(props),
    validation: parseValidation(props),
    manifest: {
      baseImageId: optionalString(props, Prop.BASE_IMAGE_ID),
      configSets: optionalString(props, Prop.CONFIG_SETS),
      initFingerprint: optionalString(props, Prop.INIT_FINGERPRINT),
      libraryVersion: optionalString(props, Prop.LIBRARY_VERSION)
    }
  };
}
function parseValidation(props) {
  const userData = optionalString(props, Prop.VALIDATION_USER_DATA);
  if (userData === void 0) {
    return void 0;
  }
  const timeoutSeconds = parsePositiveInteger(Prop.VALIDATION_TIMEOUT_SECONDS, requiredString(props, Prop.VALIDATION_TIMEOUT_SECONDS)) ?? 0;
  const instanceType = requiredString(props, Prop.VALIDATION_INSTANCE_TYPE);
  const subnetId = requiredString(props, Prop.VALIDATION_SUBNET_ID);
  const securityGroupIds = stringList(props, Prop.VALIDATION_SECURITY_GROUP_IDS, /^sg-[0-9a-f]+$/, "security group ids");
  const fingerprint = (0, import_crypto2.createHash)("sha256").update(JSON.stringify([userData, timeoutSeconds, instanceType])).digest("hex").slice(0, 16);
  return { userData, timeoutSeconds, instanceType, subnetId, securityGroupIds, fingerprint };
}
function parseCopyRegions(props) {
  return stringList(props, Prop.COPY_TO_REGIONS, REGION_PATTERN, "region names (us-west-2)");
}
function parseCopyParameterName(props) {
  const name = optionalString(props, Prop.COPY_IMAGE_ID_PARAMETER_NAME);
  if (name !== void 0 && !PARAMETER_NAME_PATTERN.test(name)) {
    throw new InvalidPropertiesError(
      `Property ${Prop.COPY_IMAGE_ID_PARAMETER_NAME} must be an SSM parameter name of letters, digits and _ . - /, not starting with aws or ssm, got '${name}'`
    );
  }
  return name;
}
function parseCopyKeys(props) {
  const value = props[Prop.COPY_KMS_KEYS];
  if (value === void 0 || value === null || value === "") {
    return {};
  }
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidPropertiesError(`Property ${Prop.COPY_KMS_KEYS} must map region names to KMS key ARNs, got ${Array.isArray(value) ? "a list" : typeof value}`);
  }
  const keys = {};
  for (const [region, arn] of Object.entries(value)) {
    if (!REGION_PATTERN.test(region) || typeof arn !== "string" || !KMS_KEY_ARN_PATTERN.test(arn) || arn.split(":")[3] !== region) {
      throw new InvalidPropertiesError(`Property ${Prop.COPY_KMS_KEYS} must map each region to the ARN of a KMS key in that region, got ${region}: '${String(arn)}'`);
    }
    keys[region] = arn;
  }
  return keys;
}
function parseSharing(props) {
  return {
    accounts: stringList(props, Prop.SHARE_ACCOUNTS, ACCOUNT_ID_PATTERN, "12-digit account ids"),
    organizationArns: stringList(props, Prop.SHARE_ORGANIZATIONS, ORGANIZATION_ARN_PATTERN, "organization ARNs"),
    organizationalUnitArns: stringList(props, Prop.SHARE_ORGANIZATIONAL_UNITS, ORGANIZATIONAL_UNIT_ARN_PATTERN, "organizational unit ARNs")
  };
}
function sharesWithNobody(sharing) {
  return sharing.accounts.length + sharing.organizationArns.length + sharing.organizationalUnitArns.length === 0;
}
function imageInputsChanged(oldProps, newProps) {
  return IMAGE_SHAPING_PROPS.some((name) => (optionalString(oldProps, name) ?? "") !== (optionalString(newProps, name) ?? ""));
}

// lambda/bake-image/request-clock.ts
var NOT_VISIBLE_GRACE_SECONDS = 300;
var SNAPSHOT_RELEASE_SECONDS = 600;
function startData(now = /* @__PURE__ */ new Date()) {
  return { [Attr.REQUEST_STARTED_AT]: now.toISOString() };
}
function secondsSinceStart(event) {
  const started = Date.parse(event.Data?.[Attr.REQUEST_STARTED_AT] ?? "");
  return Number.isNaN(started) ? void 0 : (Date.now() - started) / 1e3;
}

// lambda/bake-image/validation.ts
var import_crypto3 = require("crypto");
var import_client_ec24 = require("@aws-sdk/client-ec2");
var TAIL_LINES = 20;
var TAIL_CHARACTERS = 1500;
function parseValidationReport(output) {
  let started = false;
  let exitCode;
  const lines = [];
  for (const raw of output.split(/\r?\n/)) {
    const line = raw.replace(/\r/g, "");
    const at = line.indexOf(VALIDATION_REPORT_PREFIX);
    if (at < 0) {
      continue;
    }
    const rest = line.slice(at + VALIDATION_REPORT_PREFIX.length);
    if (rest.startsWith("| ")) {
      lines.push(rest.slice(2));
    } else if (rest === ": begin") {
      started = true;
    } else {
      const exit = /^: exit (\d+)$/.exec(rest);
      if (exit) {
        exitCode = Number(exit[1]);
      }
    }
  }
  return { started, lines, exitCode };
}
function outputTail(lines) {
  const tail = [];
  let length = 0;
  for (const line of lines.slice(-TAIL_LINES).reverse()) {
    const cut = line.length > 200 ? `${line.slice(0, 197)}...` : line;
    if (length + cut.length + 1 > TAIL_CHARACTERS) {
      break;
    }
    tail.unshift(cut);
    length += cut.length + 1;
  }
  return tail.length > 0 ? tail.join("\n") : "(no output)";
}
async function validateImage(event, image, props) {
  const validation = props.validation;
  const imageId = image.ImageId ?? event.PhysicalResourceId;
  const validated = tagOf(image, Tag.VALIDATED);
  if (validated === validation.fingerprint) {
    return "passed";
  }
  const instance = await findTestInstance(event, imageId);
  if (!instance?.InstanceId) {
    await launchTestInstance(event, image, validation);
    return "running";
  }
  const instanceId = instance.InstanceId;
  const fail = async (what, report2) => {
    await terminate(instanceId);
    let outcome;
    if (validated !== void 0) {
      outcome = "The image passed an earlier validation and stays; the stack rolls back to that validation.";
    } else {
      outcome = await discardImage(event, image, props) ? "The image is deleted." : "The image is deleted with this resource.";
    }
    throw new Error(
      `Validation of image ${imageId} on test instance ${instanceId} ${what}. ` + (report2 ? `Last lines of its output:
${outputTail(report2.lines)}
` : "") + outcome
    );
  };
  const state = instance.State?.Name;
  if (state === "shutting-down" || state === "terminated" || state === "stopping" || state === "stopped") {
    return fail(`ended (${state}: ${instance.StateReason?.Message ?? instance.StateTransitionReason ?? "no reason given"}) before it reported a result`);
  }
  const report = parseValidationReport(await consoleOutput(instanceId));
  if (report.exitCode === 0) {
    await recordPass(imageId, validation);
    await terminate(instanceId);
    log("validation passed", { imageId, instanceId, outputLines: report.lines.length });
    return "passed";
  }
  if (report.exitCode !== void 0) {
    return fail(`failed with exit code ${report.exitCode}`, report);
  }
  const elapsedSeconds = (Date.now() - (instance.LaunchTime ? new Date(instance.LaunchTime).getTime() : Date.now())) / 1e3;
  if (elapsedSeconds > validation.timeoutSeconds) {
    return fail(
      `did not finish within its timeout (${validation.timeoutSeconds} s; ${report.started ? "it started" : "it never started: did the instance boot, and does the image run cloud-init user data?"})`,
      report
    );
  }
  log("validation running", { imageId, instanceId, state, started: report.started, outputLines: report.lines.length, elapsedSeconds: Math.round(elapsedSeconds) });
  return "running";
}
async function terminateTestInstances(owner, imageId) {
  const running = await testInstances(owner, imageId, [{ Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped"] }]);
  for (const instance of running) {
    if (instance.InstanceId) {
      await terminate(instance.InstanceId);
    }
  }
}
async function findTestInstance(event, imageId) {
  const instances = await testInstances(event, imageId, [{ Name: `tag:${Tag.VALIDATION_REQUEST}`, Values: [event.RequestId] }]);
  return instances.sort((a, b) => new Date(b.LaunchTime ?? 0).getTime() - new Date(a.LaunchTime ?? 0).getTime())[0];
}
async function testInstances(owner, imageId, filters) {
  try {
    const response = await ec2.send(new import_client_ec24.DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${Tag.VALIDATES}`, Values: [imageId] },
        { Name: `tag:${Tag.STACK_ID}`, Values: [owner.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [owner.LogicalResourceId] },
        ...filters
      ]
    }));
    return (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []);
  } catch (error) {
    throw withContext(error, `DescribeInstances for the test instances of image ${imageId}`);
  }
}
async function launchTestInstance(event, image, validation) {
  const imageId = image.ImageId ?? "";
  const tags = [
    { Key: "Name", Value: `${image.Name ?? imageId} validation` },
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_ID, Value: event.StackId },
    { Key: Tag.LOGICAL_ID, Value: event.LogicalResourceId },
    { Key: Tag.VALIDATES, Value: imageId },
    { Key: Tag.VALIDATION_REQUEST, Value: event.RequestId }
  ];
  try {
    const response = await ec2.send(new import_client_ec24.RunInstancesCommand({
      ImageId: imageId,
      InstanceType: validation.instanceType,
      MinCount: 1,
      MaxCount: 1,
      SubnetId: validation.subnetId,
      SecurityGroupIds: validation.securityGroupIds,
      UserData: Buffer.from(validation.userData, "utf8").toString("base64"),
      // The test schedules its own shutdown as a backstop: shutting down then terminates the instance.
      InstanceInitiatedShutdownBehavior: "terminate",
      MetadataOptions: { HttpTokens: "required", HttpEndpoint: "enabled" },
      // One launch per image, validation and request, however often a lost answer is retried.
      ClientToken: (0, import_crypto3.createHash)("sha256").update(`${event.RequestId}/${imageId}/${validation.fingerprint}`).digest("hex").slice(0, 64),
      TagSpecifications: [
        { ResourceType: "instance", Tags: tags },
        { ResourceType: "volume", Tags: tags }
      ]
    }));
    log("test instance launched", { imageId, instanceId: response.Instances?.[0]?.InstanceId, instanceType: validation.instanceType });
  } catch (error) {
    throw new Error(`RunInstances of the test instance for image ${imageId} failed: ${describeError(error)}`);
  }
}
async function consoleOutput(instanceId) {
  try {
    const response = await ec2.send(new import_client_ec24.GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
    return response.Output ? Buffer.from(response.Output, "base64").toString("utf8") : "";
  } catch (error) {
    throw withContext(error, `GetConsoleOutput for test instance ${instanceId}`);
  }
}
async function recordPass(imageId, validation) {
  try {
    await ec2.send(new import_client_ec24.CreateTagsCommand({ Resources: [imageId], Tags: [{ Key: Tag.VALIDATED, Value: validation.fingerprint }] }));
  } catch (error) {
    throw withContext(error, `CreateTags (${Tag.VALIDATED}) for image ${imageId}`);
  }
}
async function terminate(instanceId) {
  try {
    await ec2.send(new import_client_ec24.TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    log("test instance terminating", { instanceId });
  } catch (error) {
    if (errorCode(error) === "InvalidInstanceID.NotFound") {
      return;
    }
    warn("could not terminate the test instance: it shuts itself down after its timeout", { instanceId, error: describeError(error) });
  }
}
async function discardImage(event, image, props) {
  try {
    await deleteImage(homeRegion(), event, image.ImageId, image.Name ?? "", props.deregistrationProtection, { image });
    return true;
  } catch (error) {
    warn("could not delete the image that failed validation: the Delete of this resource removes it", { imageId: image.ImageId, error: describeError(error) });
    return false;
  }
}
function tagOf(image, key) {
  return image.Tags?.find((tag) => tag.Key === key)?.Value;
}

// lambda/bake-image/index.ts
var cloudFormation;
function cfn() {
  if (!cloudFormation) {
    const sdk = require("@aws-sdk/client-cloudformation");
    cloudFormation = { client: new sdk.CloudFormationClient({ maxAttempts: 6 }), sdk };
  }
  return cloudFormation;
}
async function onEvent(event) {
  try {
    return await handleEvent(event);
  } catch (error) {
    throw forCloudFormation(error);
  }
}
async function isComplete(event) {
  try {
    return await pollEvent(event);
  } catch (error) {
    throw forCloudFormation(error);
  }
}
async function handleEvent(event) {
  log("onEvent", eventFields(event));
  const requestType = event.RequestType;
  switch (requestType) {
    case "Create":
      return bakeOrAdopt(event, parseProperties(event.ResourceProperties));
    case "Update":
      return update(event);
    case "Delete":
      return remove(event);
    default: {
      const unknown = requestType;
      throw new Error(`Unknown request type: ${unknown}`);
    }
  }
}
async function pollEvent(event) {
  const requestType = event.RequestType;
  switch (requestType) {
    case "Delete":
      return { IsComplete: await releaseSnapshots(event) };
    case "Create":
    case "Update":
      if (!await releaseSnapshots(event)) {
        return { IsComplete: false };
      }
      return pollBake(event, parseProperties(event.ResourceProperties));
    default: {
      const unknown = requestType;
      throw new Error(`Unknown request type: ${unknown}`);
    }
  }
}
async function update(event) {
  const props = parseProperties(event.ResourceProperties);
  const physicalId = event.PhysicalResourceId;
  if (!isImageId(physicalId) || imageInputsChanged(event.OldResourceProperties ?? {}, event.ResourceProperties)) {
    return bakeOrAdopt(event, props);
  }
  log("image inputs unchanged: keeping the image", { imageId: physicalId });
  const oldRegions = parseCopyRegions(event.OldResourceProperties ?? {});
  const dropped = oldRegions.filter((region) => !props.copyToRegions.includes(region));
  const oldParameterName = previousCopyParameterName(event);
  const withdrawn = oldParameterName === void 0 ? [] : oldParameterName === props.copyParameterName ? dropped : oldRegions;
  let name;
  const nameOfImage = async () => name ??= (await describeImage(homeRegion(), physicalId))?.Name ?? imageName(props);
  if (oldParameterName !== void 0 && withdrawn.length > 0) {
    await withdrawCopyIds(event, oldParameterName, await nameOfImage(), otherRegions2(withdrawn));
  }
  let inUse = [];
  if (dropped.length > 0) {
    if (props.removal === RemovalMode.RETAIN) {
      log("removal policy RETAIN: copies in regions no longer listed are kept", { imageId: physicalId, regions: dropped });
    } else {
      inUse = await deleteCopies(event, await nameOfImage(), dropped, props.deregistrationProtection);
    }
  }
  return { PhysicalResourceId: physicalId, Data: { ...startData(), ...snapshotsInUseData(inUse) } };
}
async function bakeOrAdopt(event, props) {
  const name = imageName(props);
  const existing = await findImageByName(homeRegion(), name);
  if (existing?.ImageId) {
    log("adopting the image these inputs already produced", { imageId: existing.ImageId, imageName: name, state: existing.State });
    return bakeStarted(existing.ImageId, name);
  }
  const tags = imageTags(event, name, props);
  try {
    const response = await ec2.send(new import_client_ec25.CreateImageCommand({
      InstanceId: props.instanceId,
      Name: name,
      Description: props.description,
      NoReboot: props.noReboot,
      TagSpecifications: [
        { ResourceType: "image", Tags: tags },
        { ResourceType: "snapshot", Tags: tags }
      ]
    }));
    if (!response.ImageId) {
      throw new Error("CreateImage returned no ImageId");
    }
    log("image creation started", { imageId: response.ImageId, imageName: name, instanceId: props.instanceId, noReboot: props.noReboot });
    return bakeStarted(response.ImageId, name);
  } catch (error) {
    if (errorCode(error) === "InvalidAMIName.Duplicate") {
      const raced = await findImageByName(homeRegion(), name);
      if (raced?.ImageId) {
        log("adopting the image a concurrent request or an earlier attempt created", { imageId: raced.ImageId, imageName: name });
        return bakeStarted(raced.ImageId, name);
      }
    }
    throw new Error(createImageFailure(props, name, error));
  }
}
function bakeStarted(imageId, name) {
  return { PhysicalResourceId: imageId, Data: { ...startData(), [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
}
async function pollBake(event, props) {
  const imageId = event.PhysicalResourceId;
  const image = await describeImage(homeRegion(), imageId);
  if (!image) {
    const elapsedSeconds = secondsSinceStart(event);
    if (elapsedSeconds === void 0 || elapsedSeconds <= NOT_VISIBLE_GRACE_SECONDS) {
      log("image not visible yet", { imageId, elapsedSeconds });
      return { IsComplete: false };
    }
    throw new Error(
      `Image ${imageId} from builder ${props.instanceId} is not found ${Math.round(elapsedSeconds)} s after this request started (deregistered outside this stack?). Change rebakeTrigger to bake a new image.`
    );
  }
  const progress = bakeProgress(image);
  switch (progress.kind) {
    case "pending": {
      const elapsedSeconds = failIfPastBakeTimeout(event, props, `Image ${imageId} from builder ${props.instanceId} is still pending`);
      log("image pending", { imageId, elapsedSeconds });
      return { IsComplete: false };
    }
    case "failed":
      throw new Error(
        `Image ${imageId} from builder ${props.instanceId} is ${progress.state} (${progress.reason}). Check the image in the EC2 console, and the builder's cfn-init log (/var/log/cfn-init.log; also in the builder's system log, EC2 console "Get system log", unless initOptions.printLog is false); the image is deleted with this resource.`
      );
    case "available":
      return finishBake(event, image, props);
  }
}
async function finishBake(event, available, props) {
  const imageId = event.PhysicalResourceId;
  let image = available;
  if (props.validation) {
    if (await validateImage(event, image, props) === "running") {
      try {
        failIfPastBakeTimeout(event, props, `The validation of image ${imageId} is still running`);
      } catch (error) {
        await terminateTestInstances(event, imageId);
        throw error;
      }
      return { IsComplete: false };
    }
    if (!image.Tags?.some((tag) => tag.Key === Tag.VALIDATED && tag.Value === props.validation?.fingerprint)) {
      const tags = (image.Tags ?? []).filter((tag) => tag.Key !== Tag.VALIDATED);
      image = { ...image, Tags: [...tags, { Key: Tag.VALIDATED, Value: props.validation.fingerprint }] };
    }
  }
  const copies = props.copyToRegions.length > 0 ? await pollCopies(event, image, props) : { pending: [], available: [] };
  if (copies.pending.length > 0) {
    const elapsedSeconds = failIfPastBakeTimeout(
      event,
      props,
      `The copies of image ${imageId} to ${copies.pending.join(", ")} are still pending`
    );
    log("image copies pending", { imageId, pending: copies.pending, elapsedSeconds });
    return { IsComplete: false };
  }
  await settleBuilder(props);
  const sharedBefore = event.RequestType === "Update" && !sharesWithNobody(parseSharing(event.OldResourceProperties ?? {}));
  const before = event.RequestType === "Update" ? previousProperties(event) : void 0;
  const images = [{ region: homeRegion(), imageId }, ...copies.available.map((copy) => ({ region: copy.region, imageId: copy.image.ImageId ?? "" }))];
  for (const target of images) {
    if (!sharesWithNobody(props.sharing) || sharedBefore) {
      await shareImage(target.region, target.imageId, props.sharing);
    }
    await setLifecycle(target.region, target.imageId, image.CreationDate, props, before);
  }
  if (props.copyParameterName !== void 0 && copies.available.length > 0) {
    await publishCopyIds(
      event,
      props.copyParameterName,
      copies.available.map((copy) => ({ region: copy.region, imageId: copy.image.ImageId ?? "" }))
    );
  }
  const name = image.Name ?? imageName(props);
  const data = { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name };
  for (const copy of copies.available) {
    data[copyImageIdAttribute(copy.region)] = copy.image.ImageId ?? "";
  }
  if (props.copyToRegions.includes(homeRegion())) {
    data[copyImageIdAttribute(homeRegion())] = imageId;
  }
  log("image available", { imageId, imageName: name, ...copies.available.length > 0 ? { copies: data } : {} });
  return { IsComplete: true, Data: data };
}
function failIfPastBakeTimeout(event, props, what) {
  const elapsedSeconds = secondsSinceStart(event);
  if (props.bakeTimeoutSeconds !== void 0 && elapsedSeconds !== void 0 && elapsedSeconds > props.bakeTimeoutSeconds) {
    throw new Error(
      `${what} after ${Math.round(elapsedSeconds)} s, longer than bakeTimeout (${props.bakeTimeoutSeconds} s). Raise bakeTimeout for large volumes, long validations or many regions; the pending image and its copies are deleted with this resource.`
    );
  }
  return elapsedSeconds;
}
async function settleBuilder(props) {
  const instanceId = props.instanceId;
  try {
    switch (props.builderAfterBake) {
      case BuilderMode.STOP:
        await ec2.send(new import_client_ec25.StopInstancesCommand({ InstanceIds: [instanceId] }));
        log("builder stopping", { instanceId });
        return;
      case BuilderMode.TERMINATE:
        await ec2.send(new import_client_ec25.TerminateInstancesCommand({ InstanceIds: [instanceId] }));
        log("builder terminating", { instanceId });
        return;
      case BuilderMode.KEEP_RUNNING:
        log("builder left running", { instanceId });
        return;
    }
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidInstanceID.NotFound" || code === "IncorrectInstanceState") {
      log("builder already gone", { instanceId, code });
      return;
    }
    throw new Error(`Could not ${props.builderAfterBake} builder ${instanceId}: ${describeError(error)}`);
  }
}
function previousProperties(event) {
  try {
    return event.OldResourceProperties ? parseProperties(event.OldResourceProperties) : void 0;
  } catch {
    return void 0;
  }
}
async function remove(event) {
  const imageId = event.PhysicalResourceId;
  if (!isImageId(imageId)) {
    log("no image to delete", { physicalResourceId: imageId });
    return { PhysicalResourceId: imageId };
  }
  const props = parseProperties(event.ResourceProperties);
  if (props.removal === RemovalMode.RETAIN) {
    log("removal policy RETAIN: image and snapshots kept", { imageId });
    if (props.copyParameterName !== void 0) {
      const image = await describeImage(homeRegion(), imageId);
      if (!image || madeByThisResource(image, event)) {
        const regions = otherRegions2([.../* @__PURE__ */ new Set([...props.copyToRegions, ...recordedCopyRegions(image)])]);
        await withdrawCopyIds(event, props.copyParameterName, image?.Name ?? imageName(props), regions);
      }
    }
    return { PhysicalResourceId: imageId };
  }
  const inUse = await deleteWithRetention(event, imageId, props);
  return { PhysicalResourceId: imageId, Data: { ...startData(), ...snapshotsInUseData(inUse) } };
}
async function deleteWithRetention(event, imageId, props) {
  const inUse = [];
  if (props.keepSuperseded > 0 || keptBefore(await ownImages(event), imageId)) {
    const situation = await deleteSituation(event, imageId);
    log("delete with retention", { imageId, situation: situation.kind, keep: props.keepSuperseded });
    switch (situation.kind) {
      case "replaced": {
        const superseded = (await ownImages(event)).filter((image) => image.ImageId !== situation.currentImageId);
        for (const image of superseded.slice(props.keepSuperseded)) {
          inUse.push(...await deleteEverywhere(event, image.ImageId ?? "", props));
        }
        return inUse;
      }
      case "removed":
        for (const image of await ownImages(event)) {
          if (image.ImageId !== imageId) {
            inUse.push(...await deleteEverywhere(event, image.ImageId ?? "", props));
          }
        }
        break;
      case "rolled-back":
        break;
    }
  }
  inUse.push(...await deleteEverywhere(event, imageId, props));
  return inUse;
}
function keptBefore(images, imageId) {
  const self = images.find((image) => image.ImageId === imageId);
  const created = Date.parse(self?.CreationDate ?? "");
  return images.some((image) => image.ImageId !== imageId && (!self || Number.isNaN(created) || !((Date.parse(image.CreationDate ?? "") || 0) > created)));
}
var MAX_SNAPSHOTS_IN_USE = 30;
function snapshotsInUseData(inUse) {
  if (inUse.length === 0) {
    return {};
  }
  if (inUse.length > MAX_SNAPSHOTS_IN_USE) {
    throw new Error(
      `${inUse.length} snapshots (${inUse.slice(0, 3).join(", ")}, ...) are still in use after their images were deregistered. EC2 releases them shortly after a deregistration: retry the delete (they are found again by their tags).`
    );
  }
  return { [Attr.SNAPSHOTS_IN_USE]: inUse.join(" ") };
}
async function releaseSnapshots(event) {
  const listed = (event.Data?.[Attr.SNAPSHOTS_IN_USE] ?? "").split(" ").filter((entry) => entry.includes("/"));
  if (listed.length === 0) {
    return true;
  }
  const still = [];
  for (const entry of listed) {
    const slash = entry.indexOf("/");
    still.push(...await deleteSnapshots(entry.slice(0, slash), [entry.slice(slash + 1)], event.PhysicalResourceId));
  }
  if (still.length === 0) {
    log("snapshots released and deleted", { imageId: event.PhysicalResourceId, snapshots: listed });
    return true;
  }
  const elapsedSeconds = secondsSinceStart(event) ?? 0;
  if (elapsedSeconds > SNAPSHOT_RELEASE_SECONDS) {
    throw new Error(
      `Snapshots ${still.join(", ")} of image ${event.PhysicalResourceId} are still in use ${Math.round(elapsedSeconds)} s after their image was deregistered: another image was probably registered from them. Deregister that image and delete the snapshots, then retry; they are not deleted otherwise.`
    );
  }
  log("snapshots still in use: trying again", { imageId: event.PhysicalResourceId, snapshots: still, elapsedSeconds: Math.round(elapsedSeconds) });
  return false;
}
async function deleteSituation(event, imageId) {
  const { client, sdk } = cfn();
  let status;
  try {
    const stacks = await client.send(new sdk.DescribeStacksCommand({ StackName: event.StackId }));
    status = stacks.Stacks?.[0]?.StackStatus ?? "";
  } catch (error) {
    throw withContext(error, `DescribeStacks for ${stackName2(event.StackId)} (to decide which images to keep)`);
  }
  if (status === "DELETE_IN_PROGRESS") {
    return { kind: "removed" };
  }
  if (status.startsWith("UPDATE_ROLLBACK")) {
    return { kind: "rolled-back" };
  }
  try {
    const resource = await client.send(new sdk.DescribeStackResourceCommand({
      StackName: event.StackId,
      LogicalResourceId: event.LogicalResourceId
    }));
    const current = resource.StackResourceDetail?.PhysicalResourceId;
    return current && current !== imageId && isImageId(current) ? { kind: "replaced", currentImageId: current } : { kind: "removed" };
  } catch (error) {
    if (/does not exist/i.test(error instanceof Error ? error.message : "")) {
      return { kind: "removed" };
    }
    throw withContext(error, `DescribeStackResource for ${event.LogicalResourceId} (to decide which images to keep)`);
  }
}
async function ownImages(event) {
  try {
    const response = await ec2.send(new import_client_ec25.DescribeImagesCommand({
      Owners: ["self"],
      Filters: [
        { Name: `tag:${Tag.STACK_ID}`, Values: [event.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [event.LogicalResourceId] }
      ]
    }));
    return (response.Images ?? []).filter((image) => image.ImageId && madeByThisResource(image, event)).sort((a, b) => (Date.parse(b.CreationDate ?? "") || 0) - (Date.parse(a.CreationDate ?? "") || 0));
  } catch (error) {
    throw withContext(error, `DescribeImages for the images of ${event.LogicalResourceId}`);
  }
}
async function deleteEverywhere(event, imageId, props) {
  const image = await describeImage(homeRegion(), imageId);
  if (image && !madeByThisResource(image, event)) {
    warn("image does not carry this resource's tags: left alone", { imageId });
    return [];
  }
  if (props.validation) {
    await terminateTestInstances(event, imageId);
  }
  const name = image?.Name ?? imageName(props);
  const regions = [.../* @__PURE__ */ new Set([...props.copyToRegions, ...recordedCopyRegions(image)])];
  if (props.copyParameterName !== void 0) {
    await withdrawCopyIds(event, props.copyParameterName, name, otherRegions2(regions));
  }
  const inUse = await deleteCopies(event, name, regions, props.deregistrationProtection);
  inUse.push(...await deleteImage(homeRegion(), event, imageId, name, props.deregistrationProtection, { image }));
  return inUse;
}
function imageTags(event, name, props) {
  const manifest = [
    [Tag.BASE_IMAGE, props.manifest.baseImageId],
    [Tag.CONFIG_SETS, props.manifest.configSets],
    [Tag.INIT_FINGERPRINT, props.manifest.initFingerprint],
    [Tag.VERSION, props.manifest.libraryVersion],
    [Tag.BAKED_AT, (/* @__PURE__ */ new Date()).toISOString()]
  ];
  return [
    { Key: "Name", Value: name },
    { Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE },
    { Key: Tag.STACK_NAME, Value: stackName2(event.StackId) },
    { Key: Tag.STACK_ID, Value: event.StackId },
    { Key: Tag.LOGICAL_ID, Value: event.LogicalResourceId },
    { Key: Tag.IMAGE_NAME, Value: name },
    ...manifest.flatMap(([Key, value]) => value ? [{ Key, Value: tagValue(value) }] : [])
  ];
}
function tagValue(value) {
  return value.length <= MAX_TAG_VALUE_LENGTH ? value : `${value.slice(0, MAX_TAG_VALUE_LENGTH - 3)}...`;
}
function stackName2(stackId) {
  return stackId.split("/")[1] ?? stackId;
}
function previousCopyParameterName(event) {
  try {
    return parseCopyParameterName(event.OldResourceProperties ?? {});
  } catch {
    return void 0;
  }
}
function otherRegions2(regions) {
  return regions.filter((region) => region !== homeRegion());
}
function isImageId(id) {
  return typeof id === "string" && /^ami-[0-9a-f]+$/.test(id);
}
function createImageFailure(props, name, error) {
  const code = errorCode(error);
  const hint = code === "IncorrectState" || code === "IncorrectInstanceState" || code === "InvalidInstanceID.NotFound" ? " The builder is no longer there to image (terminated after an earlier bake?): change rebakeTrigger to bake from a new builder." : "";
  return `CreateImage for builder ${props.instanceId} (image name ${name}) failed: ${describeError(error)}.${hint}`;
}
function eventFields(event) {
  return {
    requestType: event.RequestType,
    requestId: event.RequestId,
    logicalResourceId: event.LogicalResourceId,
    physicalResourceId: event.PhysicalResourceId
  };
}
// Annotate the CommonJS export names for ESM import in node:
0 && (module.exports = {
  isComplete,
  onEvent,
  stackName,
  tagValue
});
