import * as path from 'path';
import { Aws, CfnResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
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
 * Its role may read, share, deprecate, protect and delete only the instances, images and snapshots tagged with
 * this stack's id, whatever the current template holds (see grantHandlerBase); images that copy or validate add
 * the creating permissions they need (grantCopies, grantValidation).
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
    this.grantHandlerBase();

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
      actions: ['ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:DescribeImageAttribute', 'ec2:DescribeInstances'],
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
      // The copies' id parameters (imageIdParameterName with copyToRegions): read to tell this stack's from another's,
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
      acknowledge(this.role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::image/*]`,
        `Copy ids in ${region} are not known before CopyImage makes them: a copy must carry this stack's id from its creation, and tagging is allowed only inside CopyImage (ec2:CreateAction).`);
      acknowledge(this.role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::snapshot/*]`,
        `Snapshot ids of copies in ${region} are not known before CopyImage makes them: they must carry this stack's id from their creation, and tagging is allowed only inside CopyImage (ec2:CreateAction).`);
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
      acknowledge(this.role, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*]',
        'The test instance\'s root volume is created by RunInstances: its id is not known before, and the action can only create it with a test instance launched from one of this stack\'s images; tagging it is allowed only inside RunInstances.');
      acknowledge(this.role, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]',
        'The test instance\'s network interface is created by RunInstances in the builder\'s subnet and security group only: its id is not known before.');
    }
    this.validationNetwork.addResources(subnetArn(subnetId), ...securityGroupIds.map(securityGroupArn));
  }
}

/** What the handlers may do to the images and snapshots of their own stack, in any region. */
const OWN_IMAGE_ACTIONS = [
  'ec2:ModifyImageAttribute',
  'ec2:EnableImageDeprecation',
  'ec2:DisableImageDeprecation',
  'ec2:EnableImageDeregistrationProtection',
  'ec2:DisableImageDeregistrationProtection',
  'ec2:DeregisterImage',
  'ec2:DeleteSnapshot',
];

/**
 * cdk-nag (AwsSolutions) findings on the handlers' role, each acknowledged with its reason. The README
 * lists them.
 */
function acknowledgeHandlerRole(role: iam.Role): void {
  const acknowledgements: Array<[string, string]> = [
    ['AwsSolutions-IAM5[Resource::*]',
      'Only ec2:DescribeImages, ec2:DescribeSnapshots, ec2:DescribeImageAttribute and ec2:DescribeInstances are granted on *: EC2 Describe calls support no resource-level permissions.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]',
      'CreateImage, StopInstances, TerminateInstances and GetConsoleOutput are allowed only on instances tagged with this stack\'s id (its builders and test instances); RunInstances only for instances tagged with this stack\'s id at launch.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::image/*]',
      'Image ids are not known before CreateImage makes them: a new image must carry this stack\'s id from its creation, and tagging is allowed only inside CreateImage (ec2:CreateAction) or, for the validated and copy-regions tags only, on images tagged with this stack\'s id.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*]',
      'Snapshot ids are not known before CreateImage makes them: they must carry this stack\'s id from their creation, and tagging is allowed only inside CreateImage (ec2:CreateAction).'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*::image/*]',
      'Sharing, deprecating, protecting and deregistering only images tagged with this stack\'s id, in any region: a cleanup Delete runs under the new template\'s policy and must still remove copies in regions it no longer lists.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:*::snapshot/*]',
      'Deleting only snapshots tagged with this stack\'s id, in any region: a cleanup Delete runs under the new template\'s policy and must still remove copies\' snapshots in regions it no longer lists.'],
    ['AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:*:<AWS::AccountId>:parameter/*]',
      'Reading and deleting only SSM parameters tagged with this stack\'s id (the copies\' id parameters), in any region: a cleanup Delete runs under the new template\'s policy and must still remove a parameter in a region or of a name it no longer lists.'],
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
