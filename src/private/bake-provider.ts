import * as path from 'path';
import { Annotations, Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { BakedImageProviderProps } from '../provider-settings';
import { validationError } from './errors';
import { HandlerPermissions } from './handler-permissions';
import { acknowledgeFramework, acknowledgeHandlerRole } from './provider-acknowledgements';
import { DEFAULT_LOG_RETENTION, effectiveSettings, sameSettings, settingsProblems } from './provider-configuration';
import { traceWaiter, waiterLogging } from './waiter';

export { DEFAULT_LOG_RETENTION } from './provider-configuration';

/** How often isComplete polls DescribeImages. A mean detection delay of half of it after the image is available. */
export const QUERY_INTERVAL = Duration.seconds(20);

/**
 * How long the provider framework waits for isComplete. A multiple of QUERY_INTERVAL, and below
 * CloudFormation's one-hour limit for a custom resource operation.
 */
export const TOTAL_TIMEOUT = Duration.minutes(55);

/** The longest bakeTimeout: isComplete must fail with its own message before the framework times out. */
export const MAX_BAKE_TIMEOUT = Duration.minutes(50);

/** The settings each stack's provider is to be created with (BakedImageProvider.configure), until it is. */
const CONFIGURED = new WeakMap<Stack, BakedImageProviderProps>();

/** Where the build puts the handler bundle (lambda/bake-image, bundled by esbuild). */
const HANDLER_ASSET = path.join(__dirname, '..', '..', 'assets', 'lambda', 'bake-image', 'index');

/**
 * The stack-wide provider of `Custom::BakedImage`: one per stack, however many images it holds.
 *
 * Its role may read, share, deprecate, protect and delete only the instances, images and snapshots tagged with
 * this stack's id, whatever the current template holds (see HandlerPermissions); images that copy or validate add
 * the creating permissions they need (grantCopies, grantCopyParameters, grantValidation).
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
      throw validationError('BakedImageProviderInvalidSettings', `Invalid BakedImageProvider settings for stack ${stack.node.path}:\n  - ${problems.join('\n  - ')}`, scope);
    }
    const existing = stack.node.tryFindChild(BakeProvider.ID);
    if (existing instanceof BakeProvider) {
      if (!sameSettings(effectiveSettings(existing.settings), effectiveSettings(settings))) {
        throw validationError('BakedImageProviderConfiguredTooLate', `BakedImageProvider.configure() came too late for stack ${stack.node.path}: its provider was already created, `
          + `with other settings, for ${existing.createdFor}. Call it before the stack's first BakedImage.`, scope);
      }
      return;
    }
    const previous = CONFIGURED.get(stack);
    if (previous && !sameSettings(effectiveSettings(previous), effectiveSettings(settings))) {
      throw validationError('BakedImageProviderConfiguredTwice', `BakedImageProvider.configure() was already called for stack ${stack.node.path} with other settings: `
        + 'the stack has one provider, configure it once.', scope);
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

  /** The statements of the role, which the grant methods add to. */
  private readonly permissions: HandlerPermissions;

  /** How many of the stack's images asked for fast snapshot restore. */
  private fastSnapshotRestoreImages = 0;

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
    this.permissions = new HandlerPermissions(this.role);

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
      ...waiterLogging(waiterLogLevel, logGroup),
    });
    this.serviceToken = provider.serviceToken;
    const waiterTracing = settings.waiterTracing ?? true;
    const waiterRole = waiterTracing ? traceWaiter(provider) : undefined;

    acknowledgeHandlerRole(this.role, settings.vpc !== undefined);
    acknowledgeFramework(provider, this, { vpc: settings.vpc !== undefined, waiterLogLevel, waiterTracing, waiterRole });
  }

  /**
   * Lets the handlers enable fast snapshot restore for the stack's snapshots (HandlerPermissions.grantFastSnapshotRestores).
   *
   * @returns how many of the stack's images have asked for it, this one included
   */
  public grantFastSnapshotRestores(): number {
    this.permissions.grantFastSnapshotRestores();
    return ++this.fastSnapshotRestoreImages;
  }

  /**
   * Lets the handlers copy the stack's images to these regions (HandlerPermissions.grantCopies).
   */
  public grantCopies(regions: string[]): void {
    this.permissions.grantCopies(regions);
  }

  /**
   * Lets the handlers write the parameter of this name in these regions (HandlerPermissions.grantCopyParameters).
   *
   * @param parameterName a literal SSM parameter name
   */
  public grantCopyParameters(parameterName: string, regions: string[]): void {
    this.permissions.grantCopyParameters(parameterName, regions);
  }

  /**
   * Lets the handlers validate the stack's images with test instances in this subnet and these security groups
   * (HandlerPermissions.grantValidation).
   */
  public grantValidation(subnetId: string, securityGroupIds: string[]): void {
    this.permissions.grantValidation(subnetId, securityGroupIds);
  }
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
