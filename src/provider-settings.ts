import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { BakeProvider } from './private/bake-provider';

/**
 * Settings of a stack's provider: the five Lambda functions (the two bake handlers and the three of the CDK
 * provider framework), the waiter state machine and the log group that every `BakedImage` of the stack shares.
 *
 * What costs nothing is on by default (logs kept a year, the waiter traced); what has a price or needs resources
 * only you can give (a VPC, a key, the waiter's logging) is off until set. Each setting names the AWS Control Tower
 * proactive control it lets pass (see Control Tower proactive controls in the README).
 */
export interface BakedImageProviderProps {
  /**
   * Run the provider's five functions in this VPC (CT.LAMBDA.PR.3).
   *
   * They then need a route to the AWS APIs they call: EC2, CloudFormation, Lambda and Step Functions of the
   * stack's region, and S3 (CloudFormation's pre-signed response URL), through a NAT gateway or through
   * interface endpoints plus an S3 gateway endpoint. Images copied to other regions (`copies`) need a NAT
   * gateway: the EC2 and SSM APIs of other regions are not reachable through this region's endpoints.
   * Endpoints defined in the same stack must exist before the first bake and outlive the last delete: make
   * each BakedImage depend on them (`image.node.addDependency(endpoint)`). On stack deletion, Lambda releases
   * the functions' network interfaces only after some minutes.
   *
   * @default - the functions run outside any VPC
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The subnets of `vpc` the functions run in. Public subnets are refused: a function there gets no public
   * IP address, and so no route out.
   *
   * @default - the VPC's private subnets (Lambda's default selection)
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * The security groups of the functions in `vpc`. They need outbound HTTPS to the APIs and endpoints
   * listed for `vpc`; they take no inbound connection.
   *
   * @default - one security group for the five functions, with no inbound rule and all outbound traffic allowed
   */
  readonly securityGroups?: ec2.ISecurityGroup[];

  /**
   * How long the provider's log group keeps the handlers' and the framework's logs (and the waiter's, with
   * `waiterLogLevel`). At least one year (or `INFINITE`) passes CT.CLOUDWATCH.PR.2. The handlers log a few
   * structured lines per poll of a bake.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * The KMS key that encrypts the provider's log group (CT.CLOUDWATCH.PR.3). A key defined in this app
   * (`kms.Key`) gets a key policy statement that lets CloudWatch Logs of the stack's region use it for
   * this account's log groups; an imported key's policy must already allow that, or the log group cannot
   * be created.
   *
   * @default - encrypted by CloudWatch Logs with its own key
   */
  readonly logEncryptionKey?: kms.IKey;

  /**
   * Log the waiter state machine's execution history at this level into the provider's log group, without
   * execution data (CT.STEPFUNCTIONS.PR.1 needs `ERROR` or `ALL`). At `ERROR` every poll that finds the
   * image not yet available is logged as a failed task, about one small event every 20 seconds of a bake.
   *
   * Step Functions delivers its logs as vended logs: the state machine's role may manage log deliveries (on
   * every resource, as the CDK provider framework grants it), and each log group it delivers to adds to the
   * account's CloudWatch Logs resource policy for log delivery, which is limited in size.
   *
   * @default - the waiter's executions are not logged (they stay in Step Functions' execution history)
   */
  readonly waiterLogLevel?: sfn.LogLevel;

  /**
   * Trace the waiter state machine with AWS X-Ray (CT.STEPFUNCTIONS.PR.2): one trace per bake, update or
   * delete that waits, within X-Ray's free tier for most accounts. The CDK provider framework has no
   * setting for it: the construct enables tracing on the framework's state machine resource and grants its
   * role the X-Ray actions (`xray:PutTraceSegments`, `xray:PutTelemetryRecords`, `xray:GetSamplingRules`,
   * `xray:GetSamplingTargets`, which support no resource-level permissions).
   *
   * @default true
   */
  readonly waiterTracing?: boolean;
}

/**
 * The one place for the settings of a stack's provider, which every `BakedImage` of the stack shares.
 *
 * Call `BakedImageProvider.configure(stack, props)` before the stack's first `BakedImage` is created: the
 * provider is created with the first image. A call with other settings once the provider exists, or after an
 * earlier call, throws; a call with the same settings (a setting left out equals its default) does nothing.
 */
export class BakedImageProvider {
  /**
   * Sets the settings of the provider of `scope`'s stack.
   *
   * @param scope any construct of the stack
   * @param props the provider's settings
   */
  public static configure(scope: Construct, props: BakedImageProviderProps): void {
    BakeProvider.configure(scope, props);
  }

  private constructor() {
  }
}
