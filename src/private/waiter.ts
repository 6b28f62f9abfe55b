import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';

/**
 * The logging props of cr.Provider for the waiter state machine at this level: none when OFF, else into the
 * provider's log group.
 */
export function waiterLogging(level: sfn.LogLevel, logGroup: logs.ILogGroup): Pick<cr.ProviderProps,
'disableWaiterStateMachineLogging' | 'waiterStateMachineLogOptions'> {
  return {
    disableWaiterStateMachineLogging: level === sfn.LogLevel.OFF,
    // Never the execution data: the events carry CloudFormation's pre-signed response URL.
    waiterStateMachineLogOptions: level === sfn.LogLevel.OFF
      ? undefined
      : { destination: logGroup, level, includeExecutionData: false },
  };
}

/** The waiter state machine the provider framework makes for an isComplete handler, and its role. */
export function waiterStateMachine(provider: cr.Provider): { readonly resource: sfn.CfnStateMachine; readonly role: iam.Role } {
  const machines = provider.node.findAll().filter((c): c is sfn.CfnStateMachine => c instanceof sfn.CfnStateMachine);
  const role = machines.length === 1 ? machines[0].node.scope?.node.children.find((c): c is iam.Role => c instanceof iam.Role) : undefined;
  if (!role) {
    throw new Error(`cdk-baked-image cannot find the waiter state machine and its role under ${provider.node.path} (found ${machines.length} state machines): `
      + 'this aws-cdk-lib version builds the provider framework differently. Turn waiterTracing off and leave waiterLogLevel unset in BakedImageProvider.configure, and report it.');
  }
  return { resource: machines[0], role };
}

/**
 * Turns on X-Ray tracing of the framework's waiter state machine (CT.STEPFUNCTIONS.PR.2): cr.Provider has no
 * setting for it. Its role gets the actions Step Functions needs to trace, as sfn.StateMachine grants them for
 * `tracingEnabled`; the state machine already depends on the role and its policy.
 */
export function traceWaiter(provider: cr.Provider): iam.Role {
  const { resource, role } = waiterStateMachine(provider);
  resource.tracingConfiguration = { enabled: true };
  role.addToPrincipalPolicy(new iam.PolicyStatement({
    actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'],
    resources: ['*'],
  }));
  return role;
}
