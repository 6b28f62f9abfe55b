import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { BakedImage, BakedImageProps, BakedImageProvider, BakedImageProviderProps, ImageValidation } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';

removeTemporaryAssembliesAfterAll();

/**
 * AWS Control Tower's proactive controls (the cfn-guard rules bundled with @cdklabs/cdk-validator-cfnguard, run
 * through CDK's policy validation) over a typical app: a VPC, a BakedImage, an Auto Scaling group launching it.
 */

// A synth with cfn-guard takes 2 to 4 s on this project's 2-core machines, alone; more beside other test files.
jest.setTimeout(30_000);

/** One failing control on one resource. */
interface Failure {
  /** The control, `CT.<SERVICE>.PR.<n>`. */
  readonly control: string;
  /** The construct path of the resource, without the stack's. */
  readonly path: string;
}

/** The path of a failure cfn-guard gives no resource for. */
const UNATTRIBUTED = 'unattributed/';

/** Where the library's resources live: the BakedImage (`Image`) and the stack's provider; and failures of no known resource. */
const LIBRARY = /^(Image|CdkBakedImageProvider|unattributed)\//;

/** The README names the library's resources so; anything else is named by its path. */
function resourceName(constructPath: string): string {
  if (constructPath === 'Image/Builder/Resource') {
    return 'builder';
  }
  if (constructPath === 'CdkBakedImageProvider/Logs/Resource') {
    return 'provider\'s log group';
  }
  if (/^CdkBakedImageProvider\/(OnEvent|IsComplete|Provider\/framework-(onEvent|isComplete|onTimeout))\/Resource$/.test(constructPath)) {
    return 'provider\'s functions';
  }
  if (constructPath === 'CdkBakedImageProvider/Provider/waiter-state-machine/Resource') {
    return 'waiter state machine';
  }
  return constructPath;
}

/** The controls the README's table covers: the ones that failed on the library's resources before the provider settings. */
const CONTROLS = [
  'CT.CLOUDWATCH.PR.2', 'CT.CLOUDWATCH.PR.3', 'CT.EC2.PR.13', 'CT.EC2.PR.19', 'CT.EC2.PR.8', 'CT.LAMBDA.PR.3', 'CT.STEPFUNCTIONS.PR.1', 'CT.STEPFUNCTIONS.PR.2',
];

/** The plugin's rule id of a control: its file name (ct-cloudwatch-pr-2.guard) without the ct prefix and dashes. */
function ruleId(control: string): string {
  return control.toLowerCase().replace(/^ct\./, '').replace(/\./g, '');
}

interface TypicalApp {
  readonly app: App;
  readonly stack: Stack;
  readonly vpc: ec2.Vpc;
}

/** The assembly directories of the tests' apps, removed after the tests. */
const outdirs: string[] = [];
afterAll(() => outdirs.forEach((outdir) => fs.rmSync(outdir, { recursive: true, force: true })));

function typicalApp(): TypicalApp {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-baked-image-guard-'));
  outdirs.push(outdir);
  const app = new App({
    outdir,
    context: {
      '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true,
      // The report is read from the assembly; synth neither prints it nor sets the process's exit code.
      '@aws-cdk/core:failSynthOnValidationErrors': false,
    },
  });
  const stack = new Stack(app, 'GuardStack', { env: { account: '123456789012', region: 'us-east-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  return { app, stack, vpc };
}

function addImageAndGroup({ stack, vpc }: TypicalApp, props: Partial<BakedImageProps> = {}): BakedImage {
  const image = new BakedImage(stack, 'Image', {
    vpc,
    machineImage: ec2.MachineImage.latestAmazonLinux2023(),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
  });
  new autoscaling.AutoScalingGroup(stack, 'Asg', { vpc, machineImage: image, instanceType: new ec2.InstanceType('t3.micro'), requireImdsv2: true });
  return image;
}

/** The settings a Control Tower account gives: the provider in the app's VPC, its logs kept a year with a key, the waiter logged. */
function controlTowerSettings({ stack, vpc }: TypicalApp): BakedImageProviderProps {
  return {
    vpc,
    logEncryptionKey: new kms.Key(stack, 'LogKey', { enableKeyRotation: true }),
    waiterLogLevel: sfn.LogLevel.ERROR,
  };
}

/** A Nitro type with encryption in transit (CT.EC2.PR.19), x86_64 like the base image. */
const NITRO_IN_TRANSIT_TYPE = new ec2.InstanceType('c6a.large');

/** Synthesizes the app with the Control Tower rules and returns every failing control, by resource. */
function failingControls(app: App): Failure[] {
  const validator = new CfnGuardValidator();
  // Every control of the README's table is among the rules the plugin runs.
  expect(validator.ruleIds).toEqual(expect.arrayContaining(CONTROLS.map(ruleId)));
  Validations.of(app).addPlugins(validator);
  const errors = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    app.synth();
  } finally {
    errors.mockRestore();
  }
  const reportFile = path.join(app.outdir, 'policy-validation-report.json');
  const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
  expect(report.pluginReports).toHaveLength(1);
  const [pluginReport] = report.pluginReports;
  // A plugin that could not run reports its error in the summary's metadata, and no violation.
  expect(pluginReport.summary.pluginName).toBe('cdk-validator-cfnguard');
  expect(pluginReport.summary.metadata).toBeUndefined();
  const failures: Failure[] = [];
  for (const violation of pluginReport.violations) {
    const control = /^\[(CT\.[A-Z0-9]+\.PR\.\d+)\]/.exec(violation.description)?.[1];
    expect(control).toBeDefined();
    const paths: Array<string | undefined> = violation.violatingConstructs.map((resource: any) => resource.constructPath?.replace(/^GuardStack\//, ''));
    const attributed = paths.filter((p): p is string => p !== undefined);
    for (const constructPath of attributed) {
      failures.push({ control: control!, path: constructPath });
    }
    // cfn-guard 3.1.1 adds an entry without a location to some failures (CT.KMS.PR.3 on a key policy, for one). It is
    // left out only when the rest of the failure names resources that are not the library's; otherwise it counts as the library's.
    if (paths.length > attributed.length && (attributed.length === 0 || attributed.some((p) => LIBRARY.test(p)))) {
      failures.push({ control: control!, path: `${UNATTRIBUTED}${violation.ruleName}` });
    }
  }
  return failures;
}

/** The controls that fail on the library's resources: control to sorted resource names. */
function libraryFailures(failures: Failure[]): Record<string, string[]> {
  const byControl: Record<string, Set<string>> = {};
  for (const failure of failures.filter((f) => LIBRARY.test(f.path))) {
    (byControl[failure.control] ??= new Set()).add(resourceName(failure.path));
  }
  return Object.fromEntries(Object.keys(byControl).sort().map((control) => [control, [...byControl[control]].sort()]));
}

/** A row of the README's table of Control Tower proactive controls. */
interface DocumentedControl {
  readonly control: string;
  readonly resource: string;
  readonly byDefault: 'passes' | 'fails';
}

const README_SECTION = '## Control Tower proactive controls';

/**
 * The README's table: rows `| CT.X.PR.n: what | resource | passes or fails by default | what passes it |`, in the
 * section of that name. The table is what this test holds the library to.
 */
function documentedControls(): DocumentedControl[] {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const start = readme.indexOf(`\n${README_SECTION}\n`);
  if (start < 0) {
    throw new Error(`README.md has no '${README_SECTION}' section: its table is what this test checks the rules' results against`);
  }
  const next = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, next < 0 ? undefined : next);
  return section.split('\n').filter((line) => /^\| *`?CT\./.test(line)).map((line) => {
    const cells = line.split('|').slice(1, -1).map((cell) => cell.trim());
    const control = /CT\.[A-Z0-9]+\.PR\.\d+/.exec(cells[0])![0];
    const byDefault = /^passes/i.test(cells[2]) ? 'passes' : /^fails/i.test(cells[2]) ? 'fails' : undefined;
    if (!byDefault) {
      throw new Error(`README.md, ${README_SECTION}: the third cell of the ${control} row must start with 'passes' or 'fails': ${line}`);
    }
    return { control, resource: cells[1], byDefault };
  });
}

describe('AWS Control Tower proactive controls (cfn-guard)', () => {
  test('no control fails on the library\'s resources in an app with the provider settings and a Nitro builder type', () => {
    const typical = typicalApp();
    BakedImageProvider.configure(typical.stack, controlTowerSettings(typical));
    addImageAndGroup(typical, { instanceType: NITRO_IN_TRANSIT_TYPE });
    const failures = failingControls(typical.app);

    expect(libraryFailures(failures)).toEqual({});
    // The rules ran: the test's own VPC and Auto Scaling group, which are not the library's, still fail some.
    expect(failures.filter((f) => !LIBRARY.test(f.path)).length).toBeGreaterThan(0);
  });

  test('the default app fails exactly the controls the README lists as needing a setting, on the resources it names', () => {
    const typical = typicalApp();
    addImageAndGroup(typical);
    const failures = failingControls(typical.app);
    const found = libraryFailures(failures);

    const documented = documentedControls();
    expect([...new Set(documented.map((row) => row.control))].sort()).toEqual([...CONTROLS].sort());
    const expected: Record<string, string[]> = {};
    for (const row of documented.filter((r) => r.byDefault === 'fails')) {
      (expected[row.control] ??= []).push(row.resource);
    }
    expect(found).toEqual(Object.fromEntries(Object.keys(expected).sort().map((control) => [control, expected[control].sort()])));
    // The provider's functions: its two handlers and the framework's three.
    expect(failures.filter((f) => f.control === 'CT.LAMBDA.PR.3' && LIBRARY.test(f.path))).toHaveLength(5);
  });

  test('what fails by default on the library\'s resources, before any setting', () => {
    const typical = typicalApp();
    addImageAndGroup(typical);
    expect(libraryFailures(failingControls(typical.app))).toEqual({
      'CT.CLOUDWATCH.PR.3': ['provider\'s log group'],
      'CT.EC2.PR.19': ['builder'],
      'CT.LAMBDA.PR.3': ['provider\'s functions'],
      'CT.STEPFUNCTIONS.PR.1': ['waiter state machine'],
    });
  });
});

describe('cdk-nag with the provider settings', () => {
  test('finds nothing unacknowledged on the library\'s resources with every setting, the waiter logged at ERROR or ALL, or neither logged nor traced', () => {
    for (const extra of [{}, { waiterLogLevel: sfn.LogLevel.ALL }, { waiterTracing: false, waiterLogLevel: sfn.LogLevel.OFF }]) {
      const typical = typicalApp();
      BakedImageProvider.configure(typical.stack, { ...controlTowerSettings(typical), ...extra });
      addImageAndGroup(typical, { instanceType: NITRO_IN_TRANSIT_TYPE });
      const report = new AwsSolutionsChecks(typical.app).validateScope(typical.app);
      const onLibrary = report.violations
        .filter((violation) => !violation.description.startsWith('Rule threw an error during validation.'))
        .flatMap((violation) => violation.violatingResources.map((resource) => `${violation.ruleName} ${resource.constructPath}`))
        .filter((finding) => / GuardStack\/(Image|CdkBakedImageProvider)\//.test(finding));
      expect(onLibrary).toEqual([]);
    }
  });
});

describe('the builder passes by default', () => {
  test('its network interface takes no public IP address, and it is monitored in detail', () => {
    const typical = typicalApp();
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);
    const builder = Object.values<any>(template.findResources('AWS::EC2::Instance'))[0];
    expect(builder.Properties.SubnetId).toBeUndefined();
    expect(builder.Properties.SecurityGroupIds).toBeUndefined();
    expect(builder.Properties.NetworkInterfaces).toEqual([{
      DeviceIndex: '0',
      AssociatePublicIpAddress: false,
      SubnetId: typical.stack.resolve(typical.vpc.privateSubnets[0].subnetId),
      GroupSet: [{ 'Fn::GetAtt': [expect.stringMatching(/^ImageBuilderInstanceSecurityGroup/), 'GroupId'] }],
    }]);
    expect(builder.Properties.Monitoring).toBe(true);
  });

  test('detailed monitoring can be turned off, without replacing the builder', () => {
    const logicalIds = [true, false].map((detailedMonitoring) => {
      const typical = typicalApp();
      addImageAndGroup(typical, { detailedMonitoring });
      const builders = Template.fromStack(typical.stack).findResources('AWS::EC2::Instance');
      expect(Object.values<any>(builders)[0].Properties.Monitoring).toBe(detailedMonitoring);
      return Object.keys(builders)[0];
    });
    expect(logicalIds[0]).toBe(logicalIds[1]);
  });
});

describe('provider settings', () => {
  function functionsOf(template: Template): any[] {
    return Object.values<any>(template.findResources('AWS::Lambda::Function'));
  }

  test('by default: logs kept a year without a key, functions outside any VPC, the waiter traced and not logged', () => {
    const typical = typicalApp();
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);

    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365, KmsKeyId: Match.absent() });
    const functions = functionsOf(template);
    expect(functions).toHaveLength(5);
    for (const fn of functions) {
      expect(fn.Properties.VpcConfig).toBeUndefined();
    }
    template.resourceCountIs('AWS::EC2::SecurityGroup', 1 /* the builder's */ + 1 /* the Auto Scaling group's */);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.absent(),
    });
    // The waiter's role may send traces (the actions support no resource-level permissions).
    const waiterStatements = Object.entries<any>(template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith('CdkBakedImageProviderwaiterstatemachineRole'))
      .flatMap(([, policy]) => policy.Properties.PolicyDocument.Statement);
    expect(waiterStatements).toContainEqual({
      Effect: 'Allow',
      Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'],
      Resource: '*',
    });
  });

  test('in a VPC, the five functions share one new security group in its private subnets, and Lambda may manage their interfaces', () => {
    const typical = typicalApp();
    BakedImageProvider.configure(typical.stack, { vpc: typical.vpc });
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);
    const { stack, vpc } = typical;

    const groups = template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('cdk-baked-image provider') } });
    expect(Object.keys(groups)).toHaveLength(1);
    const [groupId] = Object.keys(groups);
    expect(Object.values<any>(groups)[0].Properties.SecurityGroupIngress).toBeUndefined();
    for (const fn of functionsOf(template)) {
      expect(fn.Properties.VpcConfig).toEqual({
        SubnetIds: stack.resolve(vpc.privateSubnets.map((subnet) => subnet.subnetId)),
        SecurityGroupIds: [{ 'Fn::GetAtt': [groupId, 'GroupId'] }],
      });
    }
    const vpcAccess = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole']] };
    const roles = Object.entries<any>(template.findResources('AWS::IAM::Role'))
      .filter(([, role]) => JSON.stringify(role.Properties.AssumeRolePolicyDocument).includes('lambda.amazonaws.com'));
    expect(roles.length).toBeGreaterThanOrEqual(2);
    for (const [, role] of roles) {
      expect(role.Properties.ManagedPolicyArns).toContainEqual(vpcAccess);
    }
  });

  test('in a VPC with the given subnets and security groups, no group is created', () => {
    const typical = typicalApp();
    const group = new ec2.SecurityGroup(typical.stack, 'ProviderGroup', { vpc: typical.vpc });
    BakedImageProvider.configure(typical.stack, {
      vpc: typical.vpc,
      vpcSubnets: { subnets: [typical.vpc.privateSubnets[1]] },
      securityGroups: [group],
    });
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);
    expect(Object.keys(template.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('cdk-baked-image provider') } }))).toEqual([]);
    for (const fn of functionsOf(template)) {
      expect(fn.Properties.VpcConfig).toEqual({
        SubnetIds: [typical.stack.resolve(typical.vpc.privateSubnets[1].subnetId)],
        SecurityGroupIds: [typical.stack.resolve(group.securityGroupId)],
      });
    }
  });

  test('the log group takes the retention and key, and the key lets CloudWatch Logs of the region use it for the account\'s log groups', () => {
    const typical = typicalApp();
    const key = new kms.Key(typical.stack, 'LogKey', { enableKeyRotation: true });
    BakedImageProvider.configure(typical.stack, { logRetention: logs.RetentionDays.INFINITE, logEncryptionKey: key });
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);
    const { stack } = typical;

    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: Match.absent(), KmsKeyId: stack.resolve(key.keyArn) });
    const statements: any[] = Object.values<any>(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy.Statement;
    expect(statements).toContainEqual({
      Sid: 'CloudWatchLogsEncryptsCdkBakedImageLogs',
      Effect: 'Allow',
      Principal: { Service: { 'Fn::Join': ['', ['logs.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } },
      Action: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      Resource: '*',
      Condition: {
        ArnLike: {
          'kms:EncryptionContext:aws:logs:arn': {
            'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':logs:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':log-group:*']],
          },
        },
      },
    });
  });

  test('an imported log key gets a warning that its policy must let CloudWatch Logs use it', () => {
    const typical = typicalApp();
    const key = kms.Key.fromKeyArn(typical.stack, 'Imported', 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555');
    BakedImageProvider.configure(typical.stack, { logEncryptionKey: key });
    addImageAndGroup(typical);
    Annotations.fromStack(typical.stack).hasWarning('/GuardStack/CdkBakedImageProvider', Match.stringLikeRegexp('logEncryptionKey is an imported key'));
  });

  test('the waiter logs at the level asked into the provider\'s log group, without execution data', () => {
    const typical = typicalApp();
    BakedImageProvider.configure(typical.stack, { waiterLogLevel: sfn.LogLevel.ALL });
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);
    const logGroups = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    expect(logGroups).toHaveLength(1);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: {
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [logGroups[0], 'Arn'] } } }],
        IncludeExecutionData: false,
        Level: 'ALL',
      },
      TracingConfiguration: { Enabled: true },
    });
  });

  test('waiterTracing false leaves the waiter untraced, its role without X-Ray actions', () => {
    const typical = typicalApp();
    BakedImageProvider.configure(typical.stack, { waiterTracing: false });
    addImageAndGroup(typical);
    const template = Template.fromStack(typical.stack);
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', { TracingConfiguration: Match.absent() });
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toContain('xray:');
  });

  test('configure is for the whole stack: from any construct of it, again with the same settings, not with others', () => {
    const typical = typicalApp();
    const settings = controlTowerSettings(typical);
    const nested = new ec2.SecurityGroup(typical.stack, 'Somewhere', { vpc: typical.vpc });
    BakedImageProvider.configure(nested, settings);
    BakedImageProvider.configure(typical.stack, { ...settings });
    expect(() => BakedImageProvider.configure(typical.stack, { ...settings, waiterLogLevel: sfn.LogLevel.ALL }))
      .toThrow(/already called for stack GuardStack with other settings/);

    addImageAndGroup(typical);
    // Once the provider exists, the same settings still change nothing, and others are refused.
    BakedImageProvider.configure(typical.stack, settings);
    expect(() => BakedImageProvider.configure(typical.stack, {}))
      .toThrow(/configure\(\) came too late for stack GuardStack: its provider was already created, with other settings, for GuardStack\/Image\. Call it before the stack's first BakedImage/);
  });

  test('configure after the first BakedImage throws, unless it asks for the defaults', () => {
    const typical = typicalApp();
    addImageAndGroup(typical);
    BakedImageProvider.configure(typical.stack, {});
    BakedImageProvider.configure(typical.stack, { logRetention: logs.RetentionDays.ONE_YEAR, waiterTracing: true, waiterLogLevel: sfn.LogLevel.OFF });
    expect(() => BakedImageProvider.configure(typical.stack, { vpc: typical.vpc })).toThrow(/came too late/);
  });

  test('settings of another stack are its own', () => {
    const typical = typicalApp();
    BakedImageProvider.configure(typical.stack, { waiterLogLevel: sfn.LogLevel.ERROR });
    const other = new Stack(typical.app, 'Other', { env: { account: '123456789012', region: 'us-east-1' } });
    const otherVpc = new ec2.Vpc(other, 'Vpc', { maxAzs: 2, natGateways: 1 });
    new BakedImage(other, 'Image', {
      vpc: otherVpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    });
    Template.fromStack(other).hasResourceProperties('AWS::StepFunctions::StateMachine', { LoggingConfiguration: Match.absent() });
  });

  test('refuses network settings without a VPC, and an empty list of security groups', () => {
    const typical = typicalApp();
    expect(() => BakedImageProvider.configure(typical.stack, { vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS } }))
      .toThrow(/Invalid BakedImageProvider settings for stack GuardStack:\n {2}- vpcSubnets needs vpc/);
    expect(() => BakedImageProvider.configure(typical.stack, { securityGroups: [] }))
      .toThrow(/securityGroups needs vpc\n {2}- securityGroups must list at least one group/);
    expect(() => BakedImageProvider.configure(typical.stack, { vpc: typical.vpc, securityGroups: [] })).toThrow(/at least one group/);
  });

  test('validation launches the test instance into the builder\'s subnet, which is now on its network interface', () => {
    const typical = typicalApp();
    addImageAndGroup(typical, { validation: ImageValidation.fromScript('true') });
    const template = Template.fromStack(typical.stack);
    const builder = Object.values<any>(template.findResources('AWS::EC2::Instance'))[0];
    const subnetId = builder.Properties.NetworkInterfaces[0].SubnetId;
    expect(subnetId).toBeDefined();
    const image = Object.values<any>(template.findResources('Custom::BakedImage'))[0];
    expect(image.Properties.ValidationSubnetId).toEqual(subnetId);
  });
});
