import * as path from 'path';
import { Aws, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
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
      actions: ['ec2:DescribeImages', 'ec2:DescribeSnapshots'],
      resources: ['*'],
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
    const onEvent = handler('OnEvent', 'onEvent', 'cdk-baked-image: starts image creation and deletes images with their snapshots', Duration.minutes(2));
    const isComplete = handler('IsComplete', 'isComplete', 'cdk-baked-image: polls an image until it is available', Duration.minutes(1));

    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: QUERY_INTERVAL,
      totalTimeout: TOTAL_TIMEOUT,
      logGroup,
    });
    this.serviceToken = provider.serviceToken;
  }

  /**
   * Lets the handlers image one builder, stop or terminate it, and delete the images and snapshots
   * tagged with the given custom resource's logical id in this stack, and nothing else.
   */
  public grantBake(builderInstanceId: string, resourceLogicalId: string): void {
    const instance = Stack.of(this).formatArn({ service: 'ec2', resource: 'instance', resourceName: builderInstanceId });
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ec2:CreateImage'],
      resources: [instance, imageArn('*'), snapshotArn('*')],
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ec2:StopInstances', 'ec2:TerminateInstances'],
      resources: [instance],
    }));
    this.role.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['ec2:DeregisterImage', 'ec2:DeleteSnapshot'],
      resources: [imageArn('*'), snapshotArn('*')],
      conditions: {
        StringEquals: {
          [`aws:ResourceTag/${Tag.STACK_ID}`]: Aws.STACK_ID,
          [`aws:ResourceTag/${Tag.LOGICAL_ID}`]: resourceLogicalId,
        },
      },
    }));
  }
}

/** Image and snapshot ARNs have no account: arn:PARTITION:ec2:REGION::image/ID */
function imageArn(imageId: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}::image/${imageId}`;
}

function snapshotArn(snapshotId: string): string {
  return `arn:${Aws.PARTITION}:ec2:${Aws.REGION}::snapshot/${snapshotId}`;
}
