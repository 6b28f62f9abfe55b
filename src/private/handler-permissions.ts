import { Aws } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Tag } from './contract';
import { acknowledgeCopyRegion, acknowledgeValidation } from './provider-acknowledgements';

/** What the handlers may do to the images and snapshots of their own stack, in any region. */
const OWN_IMAGE_ACTIONS = [
  'ec2:ModifyImageAttribute',
  'ec2:EnableImageDeprecation',
  'ec2:DisableImageDeprecation',
  'ec2:EnableImageDeregistrationProtection',
  'ec2:DisableImageDeregistrationProtection',
  'ec2:DeregisterImage',
  'ec2:DeleteSnapshot',
  // A superseded image that is kept, or an image whose zones were dropped, loses its fast snapshot restore; the
  // template that asked for it may be gone by then.
  'ec2:DisableFastSnapshotRestores',
];

/**
 * Every IAM statement of the handlers' role. The role may read, share, deprecate, protect and delete only the
 * instances, images and snapshots tagged with this stack's id, whatever the current template holds (the base
 * statements, granted on construction); images that copy or validate add the creating permissions they need
 * (grantCopies, grantCopyParameters, grantValidation), each time to the same statements.
 */
export class HandlerPermissions {
  /** The role both handlers run with. */
  private readonly role: iam.Role;

  /** The statements that let the handlers copy images, created for the first image with copies. */
  private copyStatements?: { readonly copyTo: iam.PolicyStatement; readonly tagCopies: iam.PolicyStatement };

  /** The regions some image of the stack is copied to. */
  private readonly copyRegions: string[] = [];

  /** The statements that let the handlers create and overwrite the copies' id parameters, created for the first. */
  private copyParameterStatements?: { readonly create: iam.PolicyStatement; readonly overwrite: iam.PolicyStatement };

  /** The parameter ARNs the handlers may write (copy region and name). */
  private readonly copyParameterArns: string[] = [];

  /** The statement that lets the handlers launch test instances into the validated images' subnets and groups. */
  private validationNetwork?: iam.PolicyStatement;

  /** Whether the handlers may enable fast snapshot restore (granted for the first image that asks for it). */
  private fastSnapshotRestores = false;

  /** Grants the base statements to the role (grantHandlerBase). */
  public constructor(role: iam.Role) {
    this.role = role;
    this.grantHandlerBase();
  }

  /**
   * Lets the handlers copy the stack's images to these regions and tag the copies while copying. Each region adds its
   * ARNs to the same statements. Sharing, deprecating and deleting copies needs nothing more (grantHandlerBase).
   */
  public grantCopies(regions: string[]): void {
    if (!this.copyStatements) {
      this.copyStatements = {
        // The copies' ids are not known before CopyImage makes them; they carry this stack's id from their creation.
        copyTo: new iam.PolicyStatement({
          sid: 'CopyImagesToRegions',
          actions: ['ec2:CopyImage'],
          conditions: { StringEquals: { [`aws:RequestTag/${Tag.STACK_ID}`]: Aws.STACK_ID } },
        }),
        tagCopies: new iam.PolicyStatement({
          sid: 'TagOnlyWhileCopyingImages',
          actions: ['ec2:CreateTags'],
          conditions: { StringEquals: { 'ec2:CreateAction': 'CopyImage' } },
        }),
      };
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'CopyFromOwnImages',
        // The source of a CopyImage: the Service Authorization Reference lists only aws:RequestTag/*, aws:TagKeys,
        // ec2:ImageID and ec2:Owner for it (no aws:ResourceTag): images of this region owned by this account.
        actions: ['ec2:CopyImage'],
        resources: [imageArn('*')],
        conditions: { StringEquals: { 'ec2:Owner': Aws.ACCOUNT_ID } },
      }));
      this.role.addToPrincipalPolicy(this.copyStatements.copyTo);
      this.role.addToPrincipalPolicy(this.copyStatements.tagCopies);
    }
    for (const region of regions.filter((r) => !this.copyRegions.includes(r))) {
      this.copyRegions.push(region);
      const arns = [imageArn('*', region), snapshotArn('*', region)];
      this.copyStatements.copyTo.addResources(...arns);
      this.copyStatements.tagCopies.addResources(...arns);
      acknowledgeCopyRegion(this.role, region);
    }
  }

  /**
   * Lets the handlers write the parameter of this name in these regions: create it tagged with this stack's id
   * (`ssm:PutParameter` with Tags needs `ssm:AddTagsToResource` as well), and overwrite it. The Service Authorization
   * Reference lists no aws:ResourceTag for PutParameter, so overwriting is limited to these exact parameters, and the
   * handler overwrites one only after reading this stack's tag on it (which the base statements allow only for this
   * stack's parameters). Reading and deleting need nothing more (grantHandlerBase).
   *
   * @param parameterName a literal SSM parameter name
   */
  public grantCopyParameters(parameterName: string, regions: string[]): void {
    if (!this.copyParameterStatements) {
      this.copyParameterStatements = {
        create: new iam.PolicyStatement({
          sid: 'CreateCopyParametersTagged',
          actions: ['ssm:PutParameter', 'ssm:AddTagsToResource'],
          conditions: { StringEquals: { [`aws:RequestTag/${Tag.STACK_ID}`]: Aws.STACK_ID } },
        }),
        overwrite: new iam.PolicyStatement({
          sid: 'OverwriteCopyParameters',
          actions: ['ssm:PutParameter'],
          conditions: { StringEquals: { 'ssm:Overwrite': 'true' } },
        }),
      };
      this.role.addToPrincipalPolicy(this.copyParameterStatements.create);
      this.role.addToPrincipalPolicy(this.copyParameterStatements.overwrite);
    }
    for (const region of regions) {
      const arn = `arn:${Aws.PARTITION}:ssm:${region}:${Aws.ACCOUNT_ID}:parameter/${parameterName.replace(/^\//, '')}`;
      if (!this.copyParameterArns.includes(arn)) {
        this.copyParameterArns.push(arn);
        this.copyParameterStatements.create.addResources(arn);
        this.copyParameterStatements.overwrite.addResources(arn);
      }
    }
  }

  /**
   * Lets the handlers validate the stack's images: launch a test instance from one of its own images (tagged with the
   * stack's id at launch, so that the base statements let the handlers read its console and terminate it) into the
   * given subnet and security groups. The test instance gets no role: it needs no permission to report (the handlers
   * read its serial console).
   */
  public grantValidation(subnetId: string, securityGroupIds: string[]): void {
    if (!this.validationNetwork) {
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'LaunchTestInstancesFromOwnImages',
        actions: ['ec2:RunInstances'],
        resources: [imageArn('*')],
        conditions: { StringEquals: { [`aws:ResourceTag/${Tag.STACK_ID}`]: Aws.STACK_ID } },
      }));
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'LaunchOnlyTaggedTestInstances',
        actions: ['ec2:RunInstances'],
        resources: [instanceArn('*')],
        conditions: { StringEquals: { [`aws:RequestTag/${Tag.STACK_ID}`]: Aws.STACK_ID } },
      }));
      this.validationNetwork = new iam.PolicyStatement({
        sid: 'LaunchTestInstancesIntoBuilderNetworks',
        // The test instance's new volume and network interface, in the builders' subnets and security groups.
        actions: ['ec2:RunInstances'],
        resources: [volumeArn('*'), networkInterfaceArn('*')],
      });
      this.role.addToPrincipalPolicy(this.validationNetwork);
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'TagOnlyWhileLaunchingTestInstances',
        actions: ['ec2:CreateTags'],
        resources: [instanceArn('*'), volumeArn('*')],
        conditions: { StringEquals: { 'ec2:CreateAction': 'RunInstances' } },
      }));
      acknowledgeValidation(this.role);
    }
    this.validationNetwork.addResources(subnetArn(subnetId), ...securityGroupIds.map(securityGroupArn));
  }

  /**
   * Lets the handlers enable fast snapshot restore for the snapshots of this stack's images, in this region only (the
   * zones are the region's). Disabling it is a base permission: a kept superseded image loses it under later templates.
   */
  public grantFastSnapshotRestores(): void {
    if (this.fastSnapshotRestores) {
      return;
    }
    this.fastSnapshotRestores = true;
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'FastRestoreOwnSnapshots',
      actions: ['ec2:EnableFastSnapshotRestores'],
      resources: [snapshotArn('*')],
      conditions: { StringEquals: { [`aws:ResourceTag/${Tag.STACK_ID}`]: Aws.STACK_ID } },
    }));
  }

  /**
   * What every stack's handlers may do, whatever its images ask for. Everything that reads or destroys is here and
   * scoped by this stack's id tag alone (on ARNs of every region), never by the current template's logical ids, copy
   * regions or features: during a stack update CloudFormation replaces this policy with the new template's BEFORE the
   * cleanup Deletes of replaced and removed images run (with their old properties) and before a rollback, so the
   * permissions to delete what an older template made must not depend on what the current one lists.
   *
   * Only creation is scoped to what the current template asks for (this region, copy regions, validation network).
   */
  private grantHandlerBase(): void {
    const ownStack = { StringEquals: { [`aws:ResourceTag/${Tag.STACK_ID}`]: Aws.STACK_ID } };
    const taggedForOwnStack = { StringEquals: { [`aws:RequestTag/${Tag.STACK_ID}`]: Aws.STACK_ID } };
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'Describe',
      // Describe calls support no resource-level permissions.
      actions: ['ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:DescribeImageAttribute', 'ec2:DescribeInstances', 'ec2:DescribeFastSnapshotRestores'],
      resources: ['*'],
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'CreateOwnImages',
      // The image and snapshots CreateImage makes carry this stack's id from their creation (tag-on-create).
      actions: ['ec2:CreateImage'],
      resources: [imageArn('*'), snapshotArn('*')],
      conditions: taggedForOwnStack,
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'TagOnlyWhileCreatingImages',
      actions: ['ec2:CreateTags'],
      resources: [imageArn('*'), snapshotArn('*')],
      conditions: { StringEquals: { 'ec2:CreateAction': 'CreateImage' } },
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ImageStopAndTerminateOwnInstances',
      // The builders (tagged by the construct) and the test instances (tagged at launch by the handlers).
      actions: ['ec2:CreateImage', 'ec2:StopInstances', 'ec2:TerminateInstances', 'ec2:GetConsoleOutput'],
      resources: [instanceArn('*')],
      conditions: ownStack,
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ShareProtectAndDeleteOwnImagesAndSnapshots',
      actions: [...OWN_IMAGE_ACTIONS],
      // Every region: a Delete may come for a copy in a region the current template no longer lists.
      resources: [imageArn('*', '*'), snapshotArn('*', '*')],
      conditions: ownStack,
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'RecordOnOwnImages',
      // What an image went through: the validation it passed, the regions it was copied to.
      actions: ['ec2:CreateTags'],
      resources: [imageArn('*')],
      conditions: {
        ...ownStack,
        'ForAllValues:StringEquals': { 'aws:TagKeys': [Tag.VALIDATED, Tag.COPY_REGIONS] },
      },
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ReadAndDeleteOwnParameters',
      // The copies' id parameters (imageIdParameterName with copies): read to tell this stack's from another's,
      // and deleted, in any region, only while tagged with this stack's id.
      actions: ['ssm:GetParameter', 'ssm:ListTagsForResource', 'ssm:DeleteParameter'],
      resources: [`arn:${Aws.PARTITION}:ssm:*:${Aws.ACCOUNT_ID}:parameter/*`],
      conditions: ownStack,
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ReadOwnStack',
      // A Delete that keeps superseded images asks whether the image was replaced, rolled back or removed.
      actions: ['cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource'],
      resources: [Aws.STACK_ID],
    }));
  }
}

function volumeArn(volumeId: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:volume/${volumeId}`;
}

function networkInterfaceArn(id: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:network-interface/${id}`;
}

function subnetArn(subnetId: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:subnet/${subnetId}`;
}

function securityGroupArn(groupId: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:security-group/${groupId}`;
}

function instanceArn(instanceId: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}:${Aws.ACCOUNT_ID}:instance/${instanceId}`;
}

/** Image and snapshot ARNs have no account: arn:PARTITION:ec2:REGION::image/ID */
function imageArn(imageId: string, region: string = Aws.REGION): string {
  return `arn:${Aws.PARTITION}:ec2:${region}::image/${imageId}`;
}

function snapshotArn(snapshotId: string, region: string = Aws.REGION): string {
  return `arn:${Aws.PARTITION}:ec2:${region}::snapshot/${snapshotId}`;
}
