import * as path from 'path';
import { Aws, CfnResource, Duration, Lazy, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledge } from './acknowledge';
import { Tag } from './contract';

/** How often isComplete polls DescribeImages. A mean detection delay of half of it after the image is available. */
export const QUERY_INTERVAL = Duration.seconds(20);

/**
 * How long the provider framework waits for isComplete. A multiple of QUERY_INTERVAL, and below
 * CloudFormation's one-hour limit for a custom resource operation.
 */
export const TOTAL_TIMEOUT = Duration.minutes(55);

/** The longest bakeTimeout: isComplete must fail with its own message before the framework times out. */
export const MAX_BAKE_TIMEOUT = Duration.minutes(50);

/** Where the build puts the handler bundle (lambda/bake-image, bundled by esbuild). */
const HANDLER_ASSET = path.join(__dirname, '..', '..', 'assets', 'lambda', 'bake-image', 'index');

/**
 * The stack-wide provider of `Custom::BakedImage`: one per stack, however many images it holds.
 *
 * Its role starts with read-only EC2 permissions; each BakedImage adds statements scoped to its own
 * builder instance and to the images and snapshots tagged with its own logical id.
 */
export class BakeProvider extends Construct {
  /** Returns the stack's provider, creating it on first use. */
  public static getOrCreate(scope: Construct): BakeProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(BakeProvider.ID);
    return existing instanceof BakeProvider ? existing : new BakeProvider(stack, BakeProvider.ID);
  }

  private static readonly ID = 'CdkBakedImageProvider';

  /** The service token of the custom resources. */
  public readonly serviceToken: string;

  /** The role both handlers run with. */
  public readonly role: iam.Role;

  /** The logical ids of the stack's Custom::BakedImage resources, whose tags scope the bake permissions. */
  private readonly bakeLogicalIds: string[] = [];

  private stackReadGranted = false;

  /** The statement that lets the handlers share, deprecate and delete the stack's images: copy regions add their ARNs. */
  private ownImagesStatement?: iam.PolicyStatement;

  /** The statements that let the handlers copy images, created for the first image with copies. */
  private copyStatements?: { readonly copyTo: iam.PolicyStatement; readonly tagCopies: iam.PolicyStatement };

  /** The regions some image of the stack is copied to. */
  private readonly copyRegions: string[] = [];

  /** The tag keys the handlers may set on the stack's own images after their creation. */
  private readonly recordedTagKeys: string[] = [];

  /** The statement that lets the handlers launch test instances into the validated images' subnets and groups. */
  private validationNetwork?: iam.PolicyStatement;

  private constructor(scope: Construct, id: string) {
    super(scope, id);

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.role = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Runs the cdk-baked-image handlers: creates, polls and deletes this stack\'s baked images',
    });
    logGroup.grantWrite(this.role);
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'DescribeImagesAndSnapshots',
      // Describe calls support no resource-level permissions.
      actions: ['ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:DescribeImageAttribute'],
      resources: ['*'],
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'CreateImagesAndSnapshots',
      // The image and snapshot CreateImage makes; which instance may be imaged is scoped per BakedImage.
      actions: ['ec2:CreateImage'],
      resources: [imageArn('*'), snapshotArn('*')],
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'TagOnlyWhileCreatingImages',
      actions: ['ec2:CreateTags'],
      resources: [imageArn('*'), snapshotArn('*')],
      conditions: { StringEquals: { 'ec2:CreateAction': 'CreateImage' } },
    }));

    const code = lambda.Code.fromAsset(HANDLER_ASSET);
    const handler = (handlerId: string, entry: string, description: string, timeout: Duration) => new lambda.Function(this, handlerId, {
      code,
      handler: `index.${entry}`,
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      timeout,
      role: this.role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      description,
    });
    // Timeouts cover the SDK's worst-case backoff under throttling (up to about 30 s a call, 6 attempts):
    // isComplete makes up to two calls, a Delete four and more.
    const onEvent = handler('OnEvent', 'onEvent', 'cdk-baked-image: starts image creation and deletes images with their snapshots', Duration.minutes(5));
    const isComplete = handler('IsComplete', 'isComplete', 'cdk-baked-image: polls an image until it is available', Duration.minutes(3));

    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: QUERY_INTERVAL,
      totalTimeout: TOTAL_TIMEOUT,
      logGroup,
    });
    this.serviceToken = provider.serviceToken;

    acknowledgeHandlerRole(this.role);
    acknowledgeFramework(provider, this);
  }

  /**
   * Lets the handlers image one builder, stop or terminate it, and delete the images and snapshots of
   * one custom resource, and nothing else: the builder, its images and their snapshots carry this
   * stack's id and the custom resource's logical id as tags, and every statement requires both.
   *
   * Scoping by tag rather than by the builder's instance id keeps the builder out of the policy: the
   * policy exists (and has propagated) long before the builder signals, and a layered image (a
   * BakedImage built on another) does not close a dependency cycle through the shared role.
   */
  public grantBake(resourceLogicalId: string): void {
    if (this.bakeLogicalIds.length === 0) {
      // One pair of statements for every image of the stack: each image adds only its logical id to
      // the condition lists, so the shared policy grows by a few bytes per image, not by statements.
      const ownTags = {
        StringEquals: {
          [`aws:ResourceTag/${Tag.STACK_ID}`]: Aws.STACK_ID,
          [`aws:ResourceTag/${Tag.LOGICAL_ID}`]: Lazy.list({ produce: () => this.bakeLogicalIds }),
        },
      };
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'ImageStopAndTerminateOwnBuilders',
        actions: ['ec2:CreateImage', 'ec2:StopInstances', 'ec2:TerminateInstances'],
        resources: [instanceArn('*')],
        conditions: ownTags,
      }));
      this.ownImagesStatement = new iam.PolicyStatement({
        sid: 'ShareAndDeleteOwnImagesAndSnapshots',
        actions: [
          'ec2:ModifyImageAttribute',
          'ec2:EnableImageDeprecation',
          'ec2:DisableImageDeprecation',
          'ec2:EnableImageDeregistrationProtection',
          'ec2:DisableImageDeregistrationProtection',
          'ec2:DeregisterImage',
          'ec2:DeleteSnapshot',
        ],
        resources: [imageArn('*'), snapshotArn('*')],
        conditions: ownTags,
      });
      this.role.addToPrincipalPolicy(this.ownImagesStatement);
    }
    this.bakeLogicalIds.push(resourceLogicalId);
  }

  /**
   * Lets the handlers copy the stack's images to these regions, tag the copies while copying, and share,
   * deprecate and delete copies that carry the stack's tags there. Each region adds its ARNs to the same
   * statements.
   */
  public grantCopies(regions: string[]): void {
    if (!this.ownImagesStatement) {
      throw new Error('grantBake must come before grantCopies');
    }
    if (!this.copyStatements) {
      this.copyStatements = {
        // The copies' ids are not known before CopyImage makes them.
        copyTo: new iam.PolicyStatement({ sid: 'CopyImagesToRegions', actions: ['ec2:CopyImage'] }),
        tagCopies: new iam.PolicyStatement({
          sid: 'TagOnlyWhileCopyingImages',
          actions: ['ec2:CreateTags'],
          conditions: { StringEquals: { 'ec2:CreateAction': 'CopyImage' } },
        }),
      };
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'CopyOwnImages',
        // The source of a CopyImage: one of the stack's own images (the conditions of the statement above).
        actions: ['ec2:CopyImage'],
        resources: [imageArn('*')],
        conditions: this.ownImagesStatement.conditions,
      }));
      this.role.addToPrincipalPolicy(this.copyStatements.copyTo);
      this.role.addToPrincipalPolicy(this.copyStatements.tagCopies);
    }
    this.grantRecord(Tag.COPY_REGIONS);
    for (const region of regions.filter((r) => !this.copyRegions.includes(r))) {
      this.copyRegions.push(region);
      const arns = [imageArn('*', region), snapshotArn('*', region)];
      this.copyStatements.copyTo.addResources(...arns);
      this.copyStatements.tagCopies.addResources(...arns);
      this.ownImagesStatement.addResources(...arns);
      acknowledge(this.role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::image/*]`,
        `Copy ids in ${region} are not known before CopyImage makes them. Tagging is allowed only inside CopyImage (ec2:CreateAction), and sharing, deprecating, protecting and deregistering only on images tagged with this stack id and the image's logical id.`);
      acknowledge(this.role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::snapshot/*]`,
        `Snapshot ids of copies in ${region} are not known before CopyImage makes them. Tagging is allowed only inside CopyImage (ec2:CreateAction), and deleting only on snapshots tagged with this stack id and the image's logical id.`);
    }
  }

  /**
   * Lets the handlers validate the stack's images: launch a test instance from one of its own images
   * (tagged like every instance the handlers touch, so that they may read its console and terminate it)
   * into the given subnet and security groups, and record on the image that it passed. The test instance
   * gets no role: it needs no permission to report (the handlers read its serial console).
   */
  public grantValidation(subnetId: string, securityGroupIds: string[]): void {
    if (!this.ownImagesStatement) {
      throw new Error('grantBake must come before grantValidation');
    }
    const ownTags = this.ownImagesStatement.conditions;
    if (!this.validationNetwork) {
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'DescribeTestInstances',
        // Describe calls support no resource-level permissions.
        actions: ['ec2:DescribeInstances'],
        resources: ['*'],
      }));
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'LaunchTestInstancesFromOwnImages',
        actions: ['ec2:RunInstances'],
        resources: [imageArn('*')],
        conditions: ownTags,
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
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'ReadTestInstanceConsoles',
        actions: ['ec2:GetConsoleOutput'],
        resources: [instanceArn('*')],
        conditions: ownTags,
      }));
      acknowledge(this.role, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*]',
        'The test instance\'s root volume is created by RunInstances: its id is not known before, and the action can only create it with a test instance launched from one of this stack\'s images; tagging it is allowed only inside RunInstances.');
      acknowledge(this.role, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]',
        'The test instance\'s network interface is created by RunInstances in the builder\'s subnet and security group only: its id is not known before.');
    }
    this.validationNetwork.addResources(subnetArn(subnetId), ...securityGroupIds.map(securityGroupArn));
    this.grantRecord(Tag.VALIDATED);
  }

  /**
   * Lets the handlers set one more tag key on the stack's own images, after their creation: what an image
   * went through (the validation it passed, the regions it was copied to).
   */
  private grantRecord(tagKey: string): void {
    if (this.recordedTagKeys.length === 0) {
      this.role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'RecordOnOwnImages',
        actions: ['ec2:CreateTags'],
        resources: [imageArn('*')],
        conditions: {
          ...this.ownImagesStatement?.conditions,
          'ForAllValues:StringEquals': { 'aws:TagKeys': Lazy.list({ produce: () => this.recordedTagKeys }) },
        },
      }));
    }
    if (!this.recordedTagKeys.includes(tagKey)) {
      this.recordedTagKeys.push(tagKey);
    }
  }

  /**
   * Lets the handlers read this stack's status and the current physical id of its resources: a Delete
   * that keeps superseded images must know whether the image was replaced, rolled back or removed.
   */
  public grantStackRead(): void {
    if (this.stackReadGranted) {
      return;
    }
    this.stackReadGranted = true;
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ReadOwnStack',
      actions: ['cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource'],
      resources: [Aws.STACK_ID],
    }));
  }
}

/**
 * cdk-nag (AwsSolutions) findings on the handlers' role, each acknowledged with its reason. The README
 * lists them.
 */
function acknowledgeHandlerRole(role: iam.Role): void {
  const acknowledgements: Array<[string, string]> = [
    ['AwsSolutions-IAM5[Resource::*]',
      'Only ec2:DescribeImages, ec2:DescribeSnapshots and ec2:DescribeImageAttribute are granted on *: EC2 Describe calls support no resource-level permissions.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]',
      'CreateImage, StopInstances, TerminateInstances and GetConsoleOutput are allowed only on instances tagged with this stack id and one BakedImage\'s logical id (its own builder and test instances); RunInstances only for instances tagged with this stack id at launch.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::image/*]',
      'Image ids are not known before CreateImage makes them. Tagging is allowed only inside CreateImage (ec2:CreateAction), and sharing, deprecating, protecting and deregistering only on images tagged with this stack id and the image\'s logical id.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*]',
      'Snapshot ids are not known before CreateImage makes them. Tagging is allowed only inside CreateImage (ec2:CreateAction), and deleting only on snapshots tagged with this stack id and the image\'s logical id.'],
  ];
  for (const [id, reason] of acknowledgements) {
    acknowledge(role, id, reason);
  }
}

/** cdk-nag findings on the resources the CDK provider framework creates, which it does not let us configure. */
function acknowledgeFramework(provider: cr.Provider, scope: Construct): void {
  const stack = Stack.of(scope);
  // Every function but the framework's entry point is invoked through a role that may call its versions.
  const functions = scope.node.findAll()
    .filter((c): c is lambda.CfnFunction => c instanceof lambda.CfnFunction)
    .filter((fn) => !fn.node.path.includes('/framework-onEvent/'));
  const invokeVersions = functions.map((fn) => `AwsSolutions-IAM5[Resource::<${stack.resolve((fn as CfnResource).logicalId)}.Arn>:*]`);
  const acknowledgements: Array<[string, string]> = [
    ['AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'The provider framework\'s own functions log with the AWS managed basic execution policy; the framework creates those roles.'],
    ...invokeVersions.map((id): [string, string] => [id,
      'The provider framework may invoke any version of its own functions (function-arn:*); the wildcard covers versions of one function only.']),
    ['AwsSolutions-L1',
      'The provider framework chooses the runtime of its own functions; the bake handlers run on the newest Node.js runtime aws-cdk-lib knows.'],
    ['AwsSolutions-SF1',
      'The waiter state machine only retries isComplete; each poll is logged as JSON by the handlers, and executions are kept in Step Functions history.'],
    ['AwsSolutions-SF2',
      'X-Ray tracing of the waiter would trace one DescribeImages call per poll, at a cost, for no insight the handler logs do not give.'],
  ];
  for (const [id, reason] of acknowledgements) {
    acknowledge(provider, id, reason);
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
