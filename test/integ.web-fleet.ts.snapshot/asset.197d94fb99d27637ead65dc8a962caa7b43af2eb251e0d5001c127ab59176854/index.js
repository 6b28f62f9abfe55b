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
  stackName: () => stackName,
  tagValue: () => tagValue
});
module.exports = __toCommonJS(index_exports);
var import_client_cloudformation = require("@aws-sdk/client-cloudformation");
var import_client_ec2 = require("@aws-sdk/client-ec2");

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

// lambda/bake-image/log.ts
function log(message, fields = {}) {
  console.log(JSON.stringify({ level: "info", message, ...fields }));
}
function warn(message, fields = {}) {
  console.warn(JSON.stringify({ level: "warn", message, ...fields }));
}

// lambda/bake-image/naming.ts
var import_crypto = require("crypto");

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
  IMAGE_NAME: "ImageName"
};
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
  BAKED_AT: "cdk-baked-image:baked-at"
};
var MAX_TAG_VALUE_LENGTH = 256;
var MANAGED_BY_VALUE = "cdk-baked-image";
var NAME_FINGERPRINT_LENGTH = 16;
var MAX_IMAGE_NAME_LENGTH = 128;
var MAX_NAME_PREFIX_LENGTH = MAX_IMAGE_NAME_LENGTH - NAME_FINGERPRINT_LENGTH - 1;

// lambda/bake-image/naming.ts
function imageName(props) {
  const inputs = JSON.stringify([props.instanceId, props.description ?? "", props.noReboot, props.rebakeTrigger ?? ""]);
  const fingerprint = (0, import_crypto.createHash)("sha256").update(inputs).digest("hex").slice(0, NAME_FINGERPRINT_LENGTH);
  return `${props.namePrefix}-${fingerprint}`;
}

// lambda/bake-image/properties.ts
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
    manifest: {
      baseImageId: optionalString(props, Prop.BASE_IMAGE_ID),
      configSets: optionalString(props, Prop.CONFIG_SETS),
      initFingerprint: optionalString(props, Prop.INIT_FINGERPRINT),
      libraryVersion: optionalString(props, Prop.LIBRARY_VERSION)
    }
  };
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

// lambda/bake-image/index.ts
var ec2 = new import_client_ec2.EC2Client({ maxAttempts: 6 });
var cfn = new import_client_cloudformation.CloudFormationClient({ maxAttempts: 6 });
async function onEvent(event) {
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
async function isComplete(event) {
  const requestType = event.RequestType;
  switch (requestType) {
    case "Delete":
      return { IsComplete: true };
    case "Create":
    case "Update":
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
  return { PhysicalResourceId: physicalId };
}
async function bakeOrAdopt(event, props) {
  const name = imageName(props);
  const existing = await findImageByName(name);
  if (existing?.ImageId) {
    log("adopting the image these inputs already produced", { imageId: existing.ImageId, imageName: name, state: existing.State });
    return bakeStarted(existing.ImageId, name);
  }
  const tags = imageTags(event, name, props);
  try {
    const response = await ec2.send(new import_client_ec2.CreateImageCommand({
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
      const raced = await findImageByName(name);
      if (raced?.ImageId) {
        log("adopting the image a concurrent request or an earlier attempt created", { imageId: raced.ImageId, imageName: name });
        return bakeStarted(raced.ImageId, name);
      }
    }
    throw new Error(createImageFailure(props, name, error));
  }
}
function bakeStarted(imageId, name) {
  return { PhysicalResourceId: imageId, Data: { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
}
async function pollBake(event, props) {
  const imageId = event.PhysicalResourceId;
  const image = await describeImage(imageId);
  const progress = bakeProgress(image);
  switch (progress.kind) {
    case "pending": {
      const elapsedSeconds = secondsSince(image?.CreationDate);
      if (props.bakeTimeoutSeconds !== void 0 && elapsedSeconds !== void 0 && elapsedSeconds > props.bakeTimeoutSeconds) {
        throw new Error(
          `Image ${imageId} from builder ${props.instanceId} is still pending after ${Math.round(elapsedSeconds)} s, longer than bakeTimeout (${props.bakeTimeoutSeconds} s). Raise bakeTimeout for large volumes; the pending image is deleted with this resource.`
        );
      }
      log("image pending", { imageId, elapsedSeconds });
      return { IsComplete: false };
    }
    case "failed":
      throw new Error(
        `Image ${imageId} from builder ${props.instanceId} is ${progress.state} (${progress.reason}). Check the image in the EC2 console, and the builder's cfn-init log (/var/log/cfn-init.log; also in the builder's system log, EC2 console "Get system log", unless initOptions.printLog is false); the image is deleted with this resource.`
      );
    case "available": {
      await settleBuilder(props);
      await applySharing(event, imageId, props);
      await applyLifecycle(event, imageId, image?.CreationDate, props);
      const name = image?.Name ?? imageName(props);
      log("image available", { imageId, imageName: name });
      return { IsComplete: true, Data: { [Attr.IMAGE_ID]: imageId, [Attr.IMAGE_NAME]: name } };
    }
  }
}
async function settleBuilder(props) {
  const instanceId = props.instanceId;
  try {
    switch (props.builderAfterBake) {
      case BuilderMode.STOP:
        await ec2.send(new import_client_ec2.StopInstancesCommand({ InstanceIds: [instanceId] }));
        log("builder stopping", { instanceId });
        return;
      case BuilderMode.TERMINATE:
        await ec2.send(new import_client_ec2.TerminateInstancesCommand({ InstanceIds: [instanceId] }));
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
async function applySharing(event, imageId, props) {
  const sharedBefore = event.RequestType === "Update" && !sharesWithNobody(parseSharing(event.OldResourceProperties ?? {}));
  if (sharesWithNobody(props.sharing) && !sharedBefore) {
    return;
  }
  let current;
  try {
    const response = await ec2.send(new import_client_ec2.DescribeImageAttributeCommand({ ImageId: imageId, Attribute: "launchPermission" }));
    current = response.LaunchPermissions ?? [];
  } catch (error) {
    throw withContext(error, `DescribeImageAttribute (launchPermission) for image ${imageId}`);
  }
  const change = launchPermissionChange(current, props.sharing);
  if (change.add.length === 0 && change.remove.length === 0) {
    log("launch permissions already as asked", { imageId });
    return;
  }
  try {
    await ec2.send(new import_client_ec2.ModifyImageAttributeCommand({
      ImageId: imageId,
      LaunchPermission: {
        ...change.add.length > 0 ? { Add: change.add } : {},
        ...change.remove.length > 0 ? { Remove: change.remove } : {}
      }
    }));
  } catch (error) {
    throw new Error(`Could not share image ${imageId} (launch permissions): ${describeError(error)}`);
  }
  log("launch permissions updated", { imageId, added: change.add, removed: change.remove });
}
async function applyLifecycle(event, imageId, creationDate, props) {
  const before = event.RequestType === "Update" ? previousProperties(event) : void 0;
  if (props.deprecateAfterSeconds !== void 0) {
    const created = Date.parse(creationDate ?? "") || Date.now();
    const deprecateAt = new Date(Math.max(created + props.deprecateAfterSeconds * 1e3, Date.now() + 6e4));
    await lifecycleCall(
      `EnableImageDeprecation for image ${imageId}`,
      () => ec2.send(new import_client_ec2.EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: deprecateAt }))
    );
    log("image deprecation set", { imageId, deprecateAt: deprecateAt.toISOString() });
  } else if (before?.deprecateAfterSeconds !== void 0) {
    await lifecycleCall(
      `DisableImageDeprecation for image ${imageId}`,
      () => ec2.send(new import_client_ec2.DisableImageDeprecationCommand({ ImageId: imageId }))
    );
    log("image deprecation removed", { imageId });
  }
  if (props.deregistrationProtection) {
    await lifecycleCall(
      `EnableImageDeregistrationProtection for image ${imageId}`,
      () => ec2.send(new import_client_ec2.EnableImageDeregistrationProtectionCommand({ ImageId: imageId, WithCooldown: false }))
    );
    log("deregistration protection enabled", { imageId });
  } else if (before?.deregistrationProtection) {
    await lifecycleCall(
      `DisableImageDeregistrationProtection for image ${imageId}`,
      () => ec2.send(new import_client_ec2.DisableImageDeregistrationProtectionCommand({ ImageId: imageId }))
    );
    log("deregistration protection removed", { imageId });
  }
}
async function lifecycleCall(what, call) {
  try {
    await call();
  } catch (error) {
    throw new Error(`${what} failed: ${describeError(error)}`);
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
    return { PhysicalResourceId: imageId };
  }
  if (props.keepSuperseded > 0) {
    const situation = await deleteSituation(event, imageId);
    log("delete with retention", { imageId, situation: situation.kind, keep: props.keepSuperseded });
    switch (situation.kind) {
      case "replaced": {
        const superseded = (await ownImages(event)).filter((image) => image.ImageId !== situation.currentImageId);
        for (const image of superseded.slice(props.keepSuperseded)) {
          await deleteImage(event, image.ImageId ?? "", props);
        }
        return { PhysicalResourceId: imageId };
      }
      case "removed":
        for (const image of await ownImages(event)) {
          if (image.ImageId !== imageId) {
            await deleteImage(event, image.ImageId ?? "", props);
          }
        }
        break;
      case "rolled-back":
        break;
    }
  }
  await deleteImage(event, imageId, props);
  return { PhysicalResourceId: imageId };
}
async function deleteSituation(event, imageId) {
  let status;
  try {
    const stacks = await cfn.send(new import_client_cloudformation.DescribeStacksCommand({ StackName: event.StackId }));
    status = stacks.Stacks?.[0]?.StackStatus ?? "";
  } catch (error) {
    throw withContext(error, `DescribeStacks for ${stackName(event.StackId)} (to decide which images to keep)`);
  }
  if (status === "DELETE_IN_PROGRESS") {
    return { kind: "removed" };
  }
  if (status.startsWith("UPDATE_ROLLBACK")) {
    return { kind: "rolled-back" };
  }
  try {
    const resource = await cfn.send(new import_client_cloudformation.DescribeStackResourceCommand({ StackName: event.StackId, LogicalResourceId: event.LogicalResourceId }));
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
    const response = await ec2.send(new import_client_ec2.DescribeImagesCommand({
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
async function deleteImage(event, imageId, props) {
  const image = await describeImage(imageId);
  if (image && !madeByThisResource(image, event)) {
    warn("image does not carry this resource's tags: left alone", { imageId });
    return;
  }
  const name = image?.Name ?? imageName(props);
  const snapshotIds = /* @__PURE__ */ new Set();
  for (const mapping of image?.BlockDeviceMappings ?? []) {
    if (mapping.Ebs?.SnapshotId) {
      snapshotIds.add(mapping.Ebs.SnapshotId);
    }
  }
  for (const snapshotId of await findSnapshotsByImageName(event, name, imageId)) {
    snapshotIds.add(snapshotId);
  }
  if (image) {
    if (props.deregistrationProtection || image.DeregistrationProtection?.startsWith("enabled")) {
      await liftDeregistrationProtection(imageId, image.DeregistrationProtection);
    }
    await deregister(imageId);
  } else {
    log("image already gone", { imageId });
  }
  for (const snapshotId of snapshotIds) {
    await deleteSnapshot(snapshotId, imageId);
  }
}
async function liftDeregistrationProtection(imageId, state) {
  try {
    await ec2.send(new import_client_ec2.DisableImageDeregistrationProtectionCommand({ ImageId: imageId }));
    log("deregistration protection lifted for the delete", { imageId, state });
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidAMIID.NotFound" || code === "InvalidAMIID.Unavailable") {
      return;
    }
    throw new Error(`Could not lift the deregistration protection of image ${imageId}: ${describeError(error)}`);
  }
  if (state?.includes("cooldown")) {
    throw new Error(
      `Image ${imageId} has deregistration protection with a cooldown (${state}): it was lifted now, and EC2 lets the image be deregistered only after the 24-hour cooldown. Delete the stack again after that.`
    );
  }
}
async function deregister(imageId) {
  try {
    await ec2.send(new import_client_ec2.DeregisterImageCommand({ ImageId: imageId }));
    log("image deregistered", { imageId });
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidAMIID.NotFound" || code === "InvalidAMIID.Unavailable") {
      log("image already gone", { imageId, code });
      return;
    }
    throw new Error(`Could not deregister image ${imageId}: ${describeError(error)}`);
  }
}
async function deleteSnapshot(snapshotId, imageId) {
  try {
    await ec2.send(new import_client_ec2.DeleteSnapshotCommand({ SnapshotId: snapshotId }));
    log("snapshot deleted", { snapshotId, imageId });
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidSnapshot.NotFound") {
      log("snapshot already gone", { snapshotId, imageId });
      return;
    }
    if (code === "InvalidSnapshot.InUse") {
      warn("snapshot kept: another image still uses it", { snapshotId, imageId });
      return;
    }
    throw new Error(`Could not delete snapshot ${snapshotId} of image ${imageId}: ${describeError(error)}`);
  }
}
async function describeImage(imageId) {
  try {
    const response = await ec2.send(new import_client_ec2.DescribeImagesCommand({ ImageIds: [imageId] }));
    return response.Images?.find((image) => image.ImageId === imageId);
  } catch (error) {
    const code = errorCode(error);
    if (code === "InvalidAMIID.NotFound" || code === "InvalidAMIID.Unavailable") {
      return void 0;
    }
    throw withContext(error, `DescribeImages for image ${imageId}`);
  }
}
async function findImageByName(name) {
  try {
    const response = await ec2.send(new import_client_ec2.DescribeImagesCommand({
      Owners: ["self"],
      Filters: [{ Name: "name", Values: [name] }]
    }));
    return response.Images?.find((image) => image.Name === name && image.State !== "deregistered");
  } catch (error) {
    throw withContext(error, `DescribeImages for the image named ${name}`);
  }
}
async function findSnapshotsByImageName(event, name, imageId) {
  try {
    const response = await ec2.send(new import_client_ec2.DescribeSnapshotsCommand({
      OwnerIds: ["self"],
      Filters: [
        { Name: `tag:${Tag.IMAGE_NAME}`, Values: [name] },
        { Name: `tag:${Tag.STACK_ID}`, Values: [event.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [event.LogicalResourceId] }
      ]
    }));
    return (response.Snapshots ?? []).flatMap((snapshot) => snapshot.SnapshotId ? [snapshot.SnapshotId] : []);
  } catch (error) {
    throw withContext(error, `DescribeSnapshots for the snapshots of image ${imageId} (${name})`);
  }
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
    { Key: Tag.STACK_NAME, Value: stackName(event.StackId) },
    { Key: Tag.STACK_ID, Value: event.StackId },
    { Key: Tag.LOGICAL_ID, Value: event.LogicalResourceId },
    { Key: Tag.IMAGE_NAME, Value: name },
    ...manifest.flatMap(([Key, value]) => value ? [{ Key, Value: tagValue(value) }] : [])
  ];
}
function tagValue(value) {
  return value.length <= MAX_TAG_VALUE_LENGTH ? value : `${value.slice(0, MAX_TAG_VALUE_LENGTH - 3)}...`;
}
function madeByThisResource(image, event) {
  const tags = new Map((image.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
  return tags.get(Tag.MANAGED_BY) === MANAGED_BY_VALUE && tags.get(Tag.STACK_ID) === event.StackId && tags.get(Tag.LOGICAL_ID) === event.LogicalResourceId;
}
function stackName(stackId) {
  return stackId.split("/")[1] ?? stackId;
}
function isImageId(id) {
  return typeof id === "string" && /^ami-[0-9a-f]+$/.test(id);
}
function secondsSince(date) {
  if (!date) {
    return void 0;
  }
  const start = Date.parse(date);
  return Number.isNaN(start) ? void 0 : (Date.now() - start) / 1e3;
}
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
