import { CfnResource, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledge } from './acknowledge';
import { waiterStateMachine } from './waiter';

/**
 * cdk-nag (AwsSolutions) findings on the handlers' role, each acknowledged with its reason. The README
 * lists them.
 */
export function acknowledgeHandlerRole(role: iam.Role, inVpc: boolean): void {
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

/** cdk-nag findings on the wildcards grantCopies adds to the handlers' role for one copy region. */
export function acknowledgeCopyRegion(role: iam.Role, region: string): void {
  acknowledge(role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::image/*]`,
    `Copy ids in ${region} are not known before CopyImage makes them: a copy must carry this stack's id from its creation, and tagging is allowed only inside CopyImage (ec2:CreateAction).`);
  acknowledge(role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:${region}::snapshot/*]`,
    `Snapshot ids of copies in ${region} are not known before CopyImage makes them: they must carry this stack's id from their creation, and tagging is allowed only inside CopyImage (ec2:CreateAction).`);
}

/** cdk-nag findings on the wildcards grantValidation adds to the handlers' role (once per stack). */
export function acknowledgeValidation(role: iam.Role): void {
  acknowledge(role, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*]',
    'The test instance\'s root volume is created by RunInstances: its id is not known before, and the action can only create it with a test instance launched from one of this stack\'s images; tagging it is allowed only inside RunInstances.');
  acknowledge(role, 'AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*]',
    'The test instance\'s network interface is created by RunInstances in the builder\'s subnet and security group only: its id is not known before.');
}

/** What of the framework's resources the settings changed. */
export interface FrameworkSettings {
  readonly vpc: boolean;
  readonly waiterLogLevel: sfn.LogLevel;
  readonly waiterTracing: boolean;
  /** The waiter state machine's role, when tracing added X-Ray actions to it. */
  readonly waiterRole?: iam.Role;
}

/** cdk-nag findings on the resources the CDK provider framework creates, which it does not let us configure. */
export function acknowledgeFramework(provider: cr.Provider, scope: Construct, settings: FrameworkSettings): void {
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
      'The waiter state machine\'s role may only send traces to X-Ray (with waiterTracing; X-Ray actions take no resource) and manage Step Functions log deliveries (with waiterLogLevel: granted on * by the provider framework, as the Step Functions guide shows; most log-delivery actions take no resource).');
  }
}
