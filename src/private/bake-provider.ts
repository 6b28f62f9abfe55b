import * as path from 'path';
import { Annotations, Aws, CfnResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { BakedImageProviderProps } from '../provider-settings';
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

/** The provider's log retention unless BakedImageProvider.configure sets another: CT.CLOUDWATCH.PR.2 asks for a year. */
export const DEFAULT_LOG_RETENTION = logs.RetentionDays.ONE_YEAR;

/** The settings each stack's provider is to be created with (BakedImageProvider.configure), until it is. */
const CONFIGURED = new WeakMap<Stack, BakedImageProviderProps>();

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
  /** Returns the stack's provider, creating it on first use with the settings configure() recorded. */
  public static getOrCreate(scope: Construct): BakeProvider {
    const stack = Stack.of(scope);
    const existing = stack.node.tryFindChild(BakeProvider.ID);
    return existing instanceof BakeProvider ? existing : new BakeProvider(stack, BakeProvider.ID, CONFIGURED.get(stack) ?? {}, scope.node.path);
  }

  /**
   * Records the settings the stack's provider is to be created with (BakedImageProvider.configure). The same
   * settings again change nothing; other settings throw, once configured or once the provider exists.
   */
  public static configure(scope: Construct, settings: BakedImageProviderProps): void {
    const stack = Stack.of(scope);
    const problems = settingsProblems(settings);
    if (problems.length > 0) {
      throw new Error(`Invalid BakedImageProvider settings for stack ${stack.node.path}:\n  - ${problems.join('\n  - ')}`);
    }
    const existing = stack.node.tryFindChild(BakeProvider.ID);
    if (existing instanceof BakeProvider) {
      if (!sameSettings(effectiveSettings(existing.settings), effectiveSettings(settings))) {
        throw new Error(`BakedImageProvider.configure() came too late for stack ${stack.node.path}: its provider was already created, `
          + `with other settings, for ${existing.createdFor}. Call it before the stack's first BakedImage.`);
      }
      return;
    }
    const previous = CONFIGURED.get(stack);
    if (previous && !sameSettings(effectiveSettings(previous), effectiveSettings(settings))) {
      throw new Error(`BakedImageProvider.configure() was already called for stack ${stack.node.path} with other settings: `
        + 'the stack has one provider, configure it once.');
    }
    CONFIGURED.set(stack, settings);
  }

  private static readonly ID = 'CdkBakedImageProvider';

  /** The service token of the custom resources. */
  public readonly serviceToken: string;

  /** The settings the provider was created with. */
  public readonly settings: BakedImageProviderProps;

  /** The construct whose BakedImage created the provider. */
  private readonly createdFor: string;

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

  private constructor(scope: Construct, id: string, settings: BakedImageProviderProps, createdFor: string) {
    super(scope, id);
    this.settings = settings;
    this.createdFor = createdFor;

    if (settings.logEncryptionKey) {
      allowLogsToUse(settings.logEncryptionKey, this);
    }
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: settings.logRetention ?? DEFAULT_LOG_RETENTION,
      encryptionKey: settings.logEncryptionKey,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.role = new iam.Role(this, 'HandlerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Runs the cdk-baked-image handlers: creates, polls and deletes this stack\'s baked images',
    });
    logGroup.grantWrite(this.role);
    this.grantHandlerBase();

    // In a VPC: the five functions share one security group unless the settings give some.
    const network = settings.vpc ? {
      vpc: settings.vpc,
      vpcSubnets: settings.vpcSubnets,
      securityGroups: settings.securityGroups ?? [new ec2.SecurityGroup(this, 'SecurityGroup', {
        vpc: settings.vpc,
        description: 'cdk-baked-image provider functions: no inbound, outbound to the AWS APIs they call',
        allowAllOutbound: true,
      })],
    } : {};
    if (settings.vpc) {
      // What lambda.Function gives the roles it creates itself: Lambda manages the functions' network interfaces with it.
      this.role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'));
    }

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
      ...network,
    });
    // Timeouts cover the SDK's worst-case backoff under throttling (up to about 30 s a call, 6 attempts):
    // isComplete makes up to two calls, a Delete four and more.
    const onEvent = handler('OnEvent', 'onEvent', 'cdk-baked-image: starts image creation and deletes images with their snapshots', Duration.minutes(5));
    const isComplete = handler('IsComplete', 'isComplete', 'cdk-baked-image: polls an image until it is available', Duration.minutes(3));

    const waiterLogLevel = settings.waiterLogLevel ?? sfn.LogLevel.OFF;
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: QUERY_INTERVAL,
      totalTimeout: TOTAL_TIMEOUT,
      logGroup,
      ...network,
      disableWaiterStateMachineLogging: waiterLogLevel === sfn.LogLevel.OFF,
      // Never the execution data: the events carry CloudFormation's pre-signed response URL.
      waiterStateMachineLogOptions: waiterLogLevel === sfn.LogLevel.OFF
        ? undefined
        : { destination: logGroup, level: waiterLogLevel, includeExecutionData: false },
    });
    this.serviceToken = provider.serviceToken;
    const waiterTracing = settings.waiterTracing ?? true;
    const waiterRole = waiterTracing ? traceWaiter(provider) : undefined;

    acknowledgeHandlerRole(this.role, settings.vpc !== undefined);
    acknowledgeFramework(provider, this, { vpc: settings.vpc !== undefined, waiterLogLevel, waiterTracing, waiterRole });
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
function acknowledgeHandlerRole(role: iam.Role, inVpc: boolean): void {
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
  if (inVpc) {
    acknowledgements.push(['AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      'The handlers run in the VPC the provider settings name: Lambda manages their network interfaces with the AWS managed policy it gives every function in a VPC.']);
  }
  for (const [id, reason] of acknowledgements) {
    acknowledge(role, id, reason);
  }
}

/** What of the framework's resources the settings changed. */
interface FrameworkSettings {
  readonly vpc: boolean;
  readonly waiterLogLevel: sfn.LogLevel;
  readonly waiterTracing: boolean;
  /** The waiter state machine's role, when tracing added X-Ray actions to it. */
  readonly waiterRole?: iam.Role;
}

/** cdk-nag findings on the resources the CDK provider framework creates, which it does not let us configure. */
function acknowledgeFramework(provider: cr.Provider, scope: Construct, settings: FrameworkSettings): void {
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
  ];
  if (settings.vpc) {
    acknowledgements.push(['AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      'The provider framework\'s own functions run in the VPC the provider settings name, with the AWS managed policy the framework gives them for their network interfaces.']);
  }
  if (settings.waiterLogLevel === sfn.LogLevel.OFF) {
    acknowledgements.push(['AwsSolutions-SF1',
      'The waiter state machine only retries isComplete; each poll is logged as JSON by the handlers, and executions are kept in Step Functions history. BakedImageProvider.configure({ waiterLogLevel }) logs them.']);
  } else if (settings.waiterLogLevel !== sfn.LogLevel.ALL) {
    acknowledgements.push(['AwsSolutions-SF1',
      `The waiter state machine logs at the level the provider settings ask for (${settings.waiterLogLevel}); ALL would add every state transition of every poll, which the handlers' own logs already show.`]);
  }
  if (!settings.waiterTracing) {
    acknowledgements.push(['AwsSolutions-SF2',
      'X-Ray tracing of the waiter was turned off in the provider settings (BakedImageProvider.configure({ waiterTracing: false })).']);
  }
  for (const [id, reason] of acknowledgements) {
    acknowledge(provider, id, reason);
  }
  if (settings.waiterTracing || settings.waiterLogLevel !== sfn.LogLevel.OFF) {
    const waiterRole = settings.waiterRole ?? waiterStateMachine(provider).role;
    acknowledge(waiterRole, 'AwsSolutions-IAM5[Resource::*]',
      'The waiter state machine\'s role may only send traces to X-Ray (with waiterTracing) and manage Step Functions log deliveries (with waiterLogLevel, granted by the provider framework): these actions support no resource-level permissions.');
  }
}

/** The waiter state machine the provider framework makes for an isComplete handler, and its role. */
function waiterStateMachine(provider: cr.Provider): { readonly resource: sfn.CfnStateMachine; readonly role: iam.Role } {
  const machines = provider.node.findAll().filter((c): c is sfn.CfnStateMachine => c instanceof sfn.CfnStateMachine);
  const role = machines.length === 1 ? machines[0].node.scope?.node.children.find((c): c is iam.Role => c instanceof iam.Role) : undefined;
  if (!role) {
    throw new Error(`cdk-baked-image cannot find the waiter state machine and its role under ${provider.node.path} (found ${machines.length} state machines): `
      + 'this aws-cdk-lib version builds the provider framework differently. Set BakedImageProvider.configure({ waiterTracing: false }) and report it.');
  }
  return { resource: machines[0], role };
}

/**
 * Turns on X-Ray tracing of the framework's waiter state machine (CT.STEPFUNCTIONS.PR.2): cr.Provider has no
 * setting for it. Its role gets the actions Step Functions needs to trace, as sfn.StateMachine grants them for
 * `tracingEnabled`; the state machine already depends on the role and its policy.
 */
function traceWaiter(provider: cr.Provider): iam.Role {
  const { resource, role } = waiterStateMachine(provider);
  resource.tracingConfiguration = { enabled: true };
  role.addToPrincipalPolicy(new iam.PolicyStatement({
    actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'],
    resources: ['*'],
  }));
  return role;
}

/**
 * Lets CloudWatch Logs of the stack's region use a key of this app for the account's log groups (the log group's
 * own ARN would make the key and the log group depend on each other). An imported key gets a warning.
 */
function allowLogsToUse(key: kms.IKey, scope: Construct): void {
  if (!(key instanceof kms.Key)) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:importedLogKey',
      'logEncryptionKey is an imported key: its key policy must let the CloudWatch Logs service principal of this region (logs.REGION.amazonaws.com) use it (kms:Encrypt*, kms:Decrypt*, kms:ReEncrypt*, kms:GenerateDataKey*, kms:Describe*), or the provider\'s log group cannot be created.');
    return;
  }
  key.addToResourcePolicy(new iam.PolicyStatement({
    sid: 'CloudWatchLogsEncryptsCdkBakedImageLogs',
    principals: [new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`)],
    actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
    resources: ['*'],
    conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${Aws.REGION}:${Aws.ACCOUNT_ID}:log-group:*` } },
  }));
}

/** What BakedImageProvider.configure refuses. */
function settingsProblems(settings: BakedImageProviderProps): string[] {
  const problems: string[] = [];
  if (!settings.vpc && settings.vpcSubnets) {
    problems.push('vpcSubnets needs vpc');
  }
  if (!settings.vpc && settings.securityGroups) {
    problems.push('securityGroups needs vpc');
  }
  if (settings.securityGroups && settings.securityGroups.length === 0) {
    problems.push('securityGroups must list at least one group; leave it out for a new one');
  }
  return problems;
}

/** The settings with their defaults filled in: leaving a setting out is the same as asking for its default. */
function effectiveSettings(settings: BakedImageProviderProps): BakedImageProviderProps {
  return {
    ...settings,
    logRetention: settings.logRetention ?? DEFAULT_LOG_RETENTION,
    waiterLogLevel: settings.waiterLogLevel ?? sfn.LogLevel.OFF,
    waiterTracing: settings.waiterTracing ?? true,
  };
}

/**
 * Whether two settings are the same: the same constructs and keys (by identity), the same values, subnet selections
 * and lists element by element.
 */
function sameSettings(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, index) => sameSettings(item, b[index]));
  }
  const plain = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
  if (plain(a) && plain(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)].filter((key) => a[key] !== undefined || b[key] !== undefined));
    return [...keys].every((key) => sameSettings(a[key], b[key]));
  }
  return false;
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
