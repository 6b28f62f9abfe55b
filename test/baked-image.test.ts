import { spawnSync } from 'child_process';
import { App, CfnResource, Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { BakedImage, BakedImageProps, BuilderAfterBake, ImageValidation } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';

removeTemporaryAssembliesAfterAll();

const BASE_AMI = 'ami-0123456789abcdef0';

function newStack(): { stack: Stack; vpc: ec2.Vpc } {
  const app = new App();
  const stack = new Stack(app, 'TestStack', { env: { account: '123456789012', region: 'us-east-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  return { stack, vpc };
}

function bake(stack: Stack, vpc: ec2.IVpc, id = 'Image', props: Partial<BakedImageProps> = {}): BakedImage {
  return new BakedImage(stack, id, {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': BASE_AMI }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
  });
}

function builderOf(template: Template): { logicalId: string; resource: any } {
  const builders = template.findResources('AWS::EC2::Instance');
  const entries = Object.entries(builders);
  expect(entries).toHaveLength(1);
  return { logicalId: entries[0][0], resource: entries[0][1] };
}

function bakeResourceOf(template: Template): { logicalId: string; resource: any } {
  const entries = Object.entries(template.findResources('Custom::BakedImage'));
  expect(entries).toHaveLength(1);
  return { logicalId: entries[0][0], resource: entries[0][1] };
}

function builderLogicalId(props: Partial<BakedImageProps>): string {
  const { stack, vpc } = newStack();
  bake(stack, vpc, 'Image', props);
  return builderOf(Template.fromStack(stack)).logicalId;
}

describe('the builder', () => {
  test('carries the cfn-init metadata and waits for its cfn-signal', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);

    const { resource } = builderOf(template);
    expect(resource.Metadata['AWS::CloudFormation::Init']).toEqual(expect.objectContaining({
      config: { packages: { yum: { nginx: [] } } },
    }));
    expect(resource.CreationPolicy).toEqual({ ResourceSignal: { Count: 1, Timeout: 'PT30M' } });
    expect(JSON.stringify(resource.Properties.UserData)).toContain('/opt/aws/bin/cfn-signal');
  });

  test('keeps the signal timeout the user sets in initOptions', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { initOptions: { timeout: Duration.minutes(12) } });
    expect(builderOf(Template.fromStack(stack)).resource.CreationPolicy.ResourceSignal.Timeout).toBe('PT12M');
  });

  test('starts from the base image, requires IMDSv2 and has no key pair and no inbound rule', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);

    const { resource } = builderOf(template);
    expect(resource.Properties.ImageId).toBe(BASE_AMI);
    expect(resource.Properties.InstanceType).toBe('t3.medium');
    expect(resource.Properties.MetadataOptions).toEqual({ HttpEndpoint: 'enabled', HttpTokens: 'required' });
    expect(resource.Properties.KeyName).toBeUndefined();
    const groups = template.findResources('AWS::EC2::SecurityGroup', {
      Properties: { GroupDescription: Match.stringLikeRegexp('Builder') },
    });
    expect(Object.keys(groups)).toHaveLength(1);
    expect(Object.values(groups)[0].Properties.SecurityGroupIngress).toBeUndefined();
  });

  test('installs aws-cfn-bootstrap before cfn-init runs when the image lacks it', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const userData = JSON.stringify(builderOf(Template.fromStack(stack)).resource.Properties.UserData);
    const install = userData.indexOf('install -y aws-cfn-bootstrap');
    expect(install).toBeGreaterThan(0);
    expect(install).toBeLessThan(userData.indexOf('/opt/aws/bin/cfn-init -v'));
  });

  test('is replaced when the init config changes', () => {
    const before = builderLogicalId({});
    const after = builderLogicalId({ init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('httpd')) });
    expect(after).not.toEqual(before);
  });

  test.each<[string, Partial<BakedImageProps>]>([
    ['rebakeTrigger', { rebakeTrigger: 'v2' }],
    ['imageName', { imageNamePrefix: 'other-name' }],
    ['imageDescription', { imageDescription: 'another description' }],
    ['noReboot', { noReboot: true }],
    ['instanceType', { instanceType: new ec2.InstanceType('m5.large') }],
  ])('is replaced when %s changes, so the new image comes from a fresh builder', (_name, change) => {
    expect(builderLogicalId(change)).not.toEqual(builderLogicalId({}));
  });

  test('is not replaced when only the removal policy or the builder handling changes', () => {
    const before = builderLogicalId({});
    expect(builderLogicalId({ removalPolicy: RemovalPolicy.RETAIN })).toEqual(before);
    expect(builderLogicalId({ builderAfterBake: BuilderAfterBake.TERMINATE })).toEqual(before);
  });

  test('exposes its role so that the bake can be granted access', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const bucket = new s3.Bucket(stack, 'Artifacts');
    bucket.grantRead(image);
    expect(image.role).toBe(image.builder.role);

    const template = Template.fromStack(stack);
    const roleRef = { Ref: stack.getLogicalId(image.builder.role.node.defaultChild as iam.CfnRole) };
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [roleRef],
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Action: Match.arrayWith(['s3:GetObject*']) })]) },
    });
  });
});

describe('the bake custom resource', () => {
  test('receives the builder instance id and depends on the builder', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { imageNamePrefix: 'web', imageDescription: 'web servers', rebakeTrigger: '7' });
    const template = Template.fromStack(stack);
    const builder = builderOf(template);
    const { resource } = bakeResourceOf(template);

    expect(resource.Properties).toEqual({
      ServiceToken: expect.anything(),
      InstanceId: { Ref: builder.logicalId },
      NamePrefix: 'web',
      Description: 'web servers',
      NoReboot: 'false',
      RebakeTrigger: '7',
      Removal: 'destroy',
      BuilderAfterBake: 'stop',
      BakeTimeoutSeconds: '3000',
      DeregistrationProtection: 'false',
      RequireImdsv2: 'true',
      KeepSupersededImages: '0',
      ShareWithAccounts: [],
      ShareWithOrganizations: [],
      ShareWithOrganizationalUnits: [],
      BaseImageId: BASE_AMI,
      ConfigSets: 'default',
      InitFingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      LibraryVersion: expect.stringMatching(/^\d+\.\d+\.\d+/),
    });
  });

  test('passes the removal policy to the handler and to CloudFormation', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { removalPolicy: RemovalPolicy.RETAIN, builderAfterBake: BuilderAfterBake.TERMINATE });
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.Properties.Removal).toBe('retain');
    expect(resource.Properties.BuilderAfterBake).toBe('terminate');
    expect(resource.DeletionPolicy).toBe('Retain');
    expect(resource.UpdateReplacePolicy).toBe('Retain');
  });

  test('deletes the image with the stack by default', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.DeletionPolicy).toBe('Delete');
    expect(resource.Properties.Removal).toBe('destroy');
  });

  test('waits for its handlers\' permissions before the first request', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);
    const { resource } = bakeResourceOf(template);
    const handlerPolicies = Object.keys(template.findResources('AWS::IAM::Policy')).filter((id) => id.startsWith('CdkBakedImageProviderHandlerRole'));
    expect(handlerPolicies).toHaveLength(1);
    expect(resource.DependsOn).toEqual(expect.arrayContaining(handlerPolicies));
  });

  test('is served by the newest Node.js runtime with structured logs', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);
    for (const handler of ['onEvent', 'isComplete']) {
      template.hasResourceProperties('AWS::Lambda::Function', {
        Handler: `index.${handler}`,
        Runtime: 'nodejs24.x',
        LoggingConfig: Match.objectLike({ LogFormat: 'JSON' }),
      });
    }
  });

  test('polls every 20 seconds for at most 55 minutes', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);
    const machines = Object.values(template.findResources('AWS::StepFunctions::StateMachine'));
    expect(machines).toHaveLength(1);
    const definition = JSON.stringify(machines[0].Properties.DefinitionString);
    // 55 minutes / 20 seconds = 165 attempts, the framework's waiter retries (attempts - 1) times.
    expect(definition).toMatch(/\\"IntervalSeconds\\":20/);
    expect(definition).toMatch(/\\"MaxAttempts\\":165/);
  });
});

describe('one provider per stack', () => {
  test('two images share one provider, each with its own builder', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First');
    bake(stack, vpc, 'Second', { imageNamePrefix: 'second' });
    const template = Template.fromStack(stack);

    template.resourceCountIs('Custom::BakedImage', 2);
    template.resourceCountIs('AWS::EC2::Instance', 2);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    template.resourceCountIs('AWS::Lambda::Function', 5); // onEvent, isComplete and the framework's three
    const tokens = Object.values(template.findResources('Custom::BakedImage')).map((r) => JSON.stringify(r.Properties.ServiceToken));
    expect(new Set(tokens).size).toBe(1);
  });

  test('the images of a stack may image, stop and delete only what carries the stack\'s id, and each builder carries it', () => {
    const { stack, vpc } = newStack();
    const first = bake(stack, vpc, 'First');
    const second = bake(stack, vpc, 'Second', { imageNamePrefix: 'second' });
    const template = Template.fromStack(stack);
    const statements = handlerStatements(template);
    const granting = (action: string) => statements
      .filter((st) => [st.Action].flat().includes(action))
      .map((st) => ({ Resource: st.Resource, Condition: st.Condition }));

    // Destroying, sharing and protecting: images and snapshots of this stack, in every region (a copy's too).
    for (const action of OWN_IMAGE_ACTIONS) {
      expect(granting(action)).toEqual([{ Resource: [anyRegionArn('image'), anyRegionArn('snapshot')], Condition: { StringEquals: STACK_TAG } }]);
    }
    // The builders and the test instances: instances of this stack, in its region.
    for (const action of ['ec2:StopInstances', 'ec2:TerminateInstances', 'ec2:GetConsoleOutput']) {
      expect(granting(action)).toEqual([{ Resource: INSTANCES, Condition: { StringEquals: STACK_TAG } }]);
    }
    // CreateImage: of an instance of this stack, making an image and snapshots that carry its id from their creation.
    expect(granting('ec2:CreateImage')).toEqual(expect.arrayContaining([
      { Resource: INSTANCES, Condition: { StringEquals: STACK_TAG } },
      { Resource: [homeArn('image'), homeArn('snapshot')], Condition: { StringEquals: TAGGED_AT_CREATION } },
    ]));
    expect(granting('ec2:CreateImage')).toHaveLength(2);
    // Nothing depends on the logical ids the current template holds.
    expect(JSON.stringify(statements)).not.toContain('cdk-baked-image:logical-id');

    for (const image of [first, second]) {
      const builder = template.findResources('AWS::EC2::Instance')[stack.resolve(image.builder.instance.logicalId)];
      const bakeId = stack.resolve((image.node.findChild('Image').node.defaultChild as CfnResource).logicalId);
      expect(builder.Properties.Tags).toEqual(expect.arrayContaining([
        { Key: 'cdk-baked-image:logical-id', Value: bakeId },
        { Key: 'cdk-baked-image:stack-id', Value: { Ref: 'AWS::StackId' } },
      ]));
    }
  });

  test('the shared policy is the same however many images the stack holds', () => {
    const statementsFor = (images: number) => {
      const { stack, vpc } = newStack();
      for (let i = 0; i < images; i++) {
        bake(stack, vpc, `Image${i}`);
      }
      return handlerStatements(Template.fromStack(stack));
    };
    expect(statementsFor(5)).toEqual(statementsFor(1));
  });

  test('a Delete under a newer template keeps every permission to read and delete what an older template made', () => {
    // CloudFormation applies the new template's policy before the cleanup Deletes of replaced and removed images run.
    const older = newStack();
    bake(older.stack, older.vpc, 'First', {
      copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }], validation: ImageValidation.fromScript('true'), keepSupersededImages: 2, deregistrationProtection: true,
    });
    const newer = newStack();
    bake(newer.stack, newer.vpc, 'Other', { imageNamePrefix: 'other' });
    const readAndDelete = (stack: Stack) => handlerStatements(Template.fromStack(stack))
      .filter((st) => [st.Action].flat().some((action: string) => READ_AND_DELETE.includes(action)));

    expect(readAndDelete(newer.stack)).toEqual(readAndDelete(older.stack));
    // CreateImage comes with the instance actions: the builders'.
    expect(readAndDelete(newer.stack).flatMap((st) => [st.Action].flat()).sort()).toEqual([...READ_AND_DELETE, 'ec2:CreateImage'].sort());
  });

  test('no IAM statement grants ec2:* or a destructive action on every resource', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First');
    bake(stack, vpc, 'Second', { imageNamePrefix: 'second' });
    const template = Template.fromStack(stack);

    const all = Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap((policy: any) => policy.Properties.PolicyDocument.Statement);
    expect(all.length).toBeGreaterThan(0);
    for (const statement of all) {
      const actions: string[] = [statement.Action].flat();
      expect(actions).not.toContain('ec2:*');
      expect(actions).not.toContain('*');
    }
    const readOnly = /^(ec2:Describe|logs:|xray:|cloudformation:DescribeStackResource|cloudformation:SignalResource|lambda:InvokeFunction|states:)/;
    for (const statement of handlerStatements(template)) {
      const resources = [statement.Resource].flat();
      if (resources.includes('*')) {
        for (const action of [statement.Action].flat()) {
          expect(action).toMatch(readOnly);
        }
      }
    }
  });

  test('every destructive action of the handlers requires the stack\'s id on the resource, with copies and validation too', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First', { copies: [{ region: 'us-west-2' }], validation: ImageValidation.fromScript('true') });
    const statements = handlerStatements(Template.fromStack(stack));
    const destructive = [...OWN_IMAGE_ACTIONS, 'ec2:StopInstances', 'ec2:TerminateInstances'];

    const destroying = statements.filter((st) => [st.Action].flat().some((action: string) => destructive.includes(action)));
    expect(destroying.length).toBeGreaterThan(0);
    for (const statement of destroying) {
      expect(statement.Condition).toEqual({ StringEquals: STACK_TAG });
    }
  });
});

describe('least privilege', () => {
  /** The only wildcards allowed anywhere in the template's IAM policies, and the actions each may carry. */
  function classifyWildcard(statement: any, resource: string): string | undefined {
    const kind = wildcardKind(statement, resource);
    // Only the stack-scoped destroy statement reaches every region; creating stays in this region or a listed one.
    return resource.includes(':ec2:*::') && kind !== 'delete-own' ? undefined : kind;
  }

  function wildcardKind(statement: any, resource: string): string | undefined {
    const actions: string[] = [statement.Action].flat();
    const conditions = statement.Condition ?? {};
    const tags = conditions.StringEquals ?? {};
    const ownStack = JSON.stringify(tags['aws:ResourceTag/cdk-baked-image:stack-id']) === JSON.stringify({ Ref: 'AWS::StackId' });
    const taggedAtCreation = JSON.stringify(tags['aws:RequestTag/cdk-baked-image:stack-id']) === JSON.stringify({ Ref: 'AWS::StackId' });
    const homeRegion = resource.includes('{"Ref":"AWS::Region"}');
    if (resource === '"*"') {
      if (actions.every((action) => ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets'].includes(action))) {
        // The waiter state machine's tracing (CT.STEPFUNCTIONS.PR.2): X-Ray's actions support no resource-level permissions.
        return 'trace-waiter';
      }
      return actions.every((action) => action.startsWith('ec2:Describe')) ? 'describe' : undefined;
    }
    if (/:instance\/\*"/.test(resource)) {
      if (ownStack && actions.every((action) => ['ec2:CreateImage', 'ec2:StopInstances', 'ec2:TerminateInstances', 'ec2:GetConsoleOutput'].includes(action))) {
        return 'own-instance';
      }
      if (actions.every((action) => action === 'ec2:RunInstances') && taggedAtCreation) {
        return 'launch-tagged-test-instance';
      }
      return actions.every((action) => action === 'ec2:CreateTags') && tags['ec2:CreateAction'] === 'RunInstances' ? 'tag-on-launch' : undefined;
    }
    if (/::(image|snapshot)\/\*"/.test(resource)) {
      if (actions.every((action) => action === 'ec2:CreateImage')) {
        return taggedAtCreation && homeRegion ? 'create-image' : undefined;
      }
      const createAction = tags['ec2:CreateAction'];
      if (actions.every((action) => action === 'ec2:CreateTags') && createAction) {
        return createAction === 'CreateImage' ? 'tag-on-create' : createAction === 'CopyImage' ? 'tag-on-copy' : undefined;
      }
      if (actions.every((action) => action === 'ec2:CopyImage')) {
        // The source: an image of this account in this region (CopyImage's source takes no aws:ResourceTag).
        if (homeRegion && /::image\/\*"/.test(resource) && JSON.stringify(conditions) === JSON.stringify({ StringEquals: { 'ec2:Owner': { Ref: 'AWS::AccountId' } } })) {
          return 'copy-own';
        }
        // The copies are new resources: only in the regions copied to, carrying the stack's id from their creation.
        return taggedAtCreation && /ec2:(us-west-2|eu-west-1)::/.test(resource) ? 'copy-to-listed-region' : undefined;
      }
      if (actions.every((action) => action === 'ec2:RunInstances')) {
        return ownStack && homeRegion ? 'launch-own-image' : undefined;
      }
      if (actions.every((action) => action === 'ec2:CreateTags')) {
        const keys: string[] = conditions['ForAllValues:StringEquals']?.['aws:TagKeys'] ?? [];
        const recordable = ['cdk-baked-image:validated', 'cdk-baked-image:copy-regions'];
        return ownStack && keys.length > 0 && keys.every((key) => recordable.includes(key)) ? 'record-on-own-image' : undefined;
      }
      if (actions.every((action) => OWN_IMAGE_ACTIONS.includes(action))) {
        return ownStack ? 'delete-own' : undefined;
      }
      if (actions.every((action) => action === 'ec2:EnableFastSnapshotRestores')) {
        return ownStack && homeRegion && resource.includes('::snapshot/*') ? 'fast-restore-own' : undefined;
      }
      return undefined;
    }
    if (/:(volume|network-interface)\/\*"/.test(resource)) {
      if (actions.every((action) => action === 'ec2:RunInstances')) {
        return 'test-instance-parts';
      }
      return actions.every((action) => action === 'ec2:CreateTags') && tags['ec2:CreateAction'] === 'RunInstances' ? 'tag-on-launch' : undefined;
    }
    if (/:ssm:\*:",\{"Ref":"AWS::AccountId"\},":parameter\/\*"/.test(resource)) {
      // The copies' id parameters: read and deleted in any region only while they carry the stack's id.
      return ownStack && actions.every((action) => ['ssm:GetParameter', 'ssm:ListTagsForResource', 'ssm:DeleteParameter'].includes(action))
        ? 'read-delete-own-parameter' : undefined;
    }
    if (/"Arn"\]\},":\*"\]/.test(resource)) {
      // The provider framework may invoke any version of one of its functions.
      return actions.every((action) => action === 'lambda:InvokeFunction') ? 'invoke-versions' : undefined;
    }
    return undefined;
  }

  /** The kinds of the wildcard resources in every IAM policy of the template, and the wildcards of no allowed kind. */
  function wildcardsOf(template: Template): { kinds: Set<string>; offenders: string[] } {
    const kinds = new Set<string>();
    const offenders: string[] = [];
    for (const [policyId, policy] of Object.entries<any>(template.findResources('AWS::IAM::Policy'))) {
      for (const statement of policy.Properties.PolicyDocument.Statement) {
        for (const resource of [statement.Resource].flat().map((r) => JSON.stringify(r)).filter((r) => r.includes('*'))) {
          const kind = classifyWildcard(statement, resource);
          if (kind) {
            kinds.add(kind);
          } else {
            offenders.push(`${policyId}: ${JSON.stringify(statement.Action)} on ${resource}`);
          }
        }
      }
    }
    return { kinds, offenders };
  }

  test('every wildcard in every IAM policy of the template is one of the allowed kinds', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First');
    bake(stack, vpc, 'Second', { imageNamePrefix: 'second', builderAfterBake: BuilderAfterBake.TERMINATE });
    const template = Template.fromStack(stack);

    const { kinds, offenders } = wildcardsOf(template);
    expect(offenders).toEqual([]);
    expect([...kinds].sort()).toEqual([
      'create-image', 'delete-own', 'describe', 'invoke-versions', 'own-instance', 'read-delete-own-parameter', 'record-on-own-image', 'tag-on-create',
      'trace-waiter',
    ]);
  });

  test('with copies and validation, every wildcard is still one of the allowed kinds, and copying reaches only the listed regions', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First', { copies: [{ region: 'us-west-2' }], validation: ImageValidation.fromScript('true') });
    bake(stack, vpc, 'Second', { imageNamePrefix: 'second', copies: [{ region: 'eu-west-1' }, { region: 'us-west-2' }] });
    const template = Template.fromStack(stack);

    const { kinds, offenders } = wildcardsOf(template);
    expect(offenders).toEqual([]);
    expect([...kinds].sort()).toEqual([
      'copy-own', 'copy-to-listed-region', 'create-image', 'delete-own', 'describe', 'invoke-versions', 'launch-own-image', 'launch-tagged-test-instance',
      'own-instance', 'read-delete-own-parameter', 'record-on-own-image', 'tag-on-copy', 'tag-on-create', 'tag-on-launch', 'test-instance-parts',
      'trace-waiter',
    ]);
  });

  test('with fast snapshot restore, enabling it is one more allowed kind: this stack\'s snapshots, in its region', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First', { fastSnapshotRestoreZones: ['us-east-1a'] });
    const { kinds, offenders } = wildcardsOf(Template.fromStack(stack));
    expect(offenders).toEqual([]);
    expect(kinds.has('fast-restore-own')).toBe(true);
  });

  test('the builder role can read init metadata and signal only in its own stack', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const template = Template.fromStack(stack);
    const roleId = stack.getLogicalId(image.builder.role.node.defaultChild as iam.CfnRole);
    // Every policy that reaches the role, also one shared with other roles.
    const policies = Object.values<any>(template.findResources('AWS::IAM::Policy'))
      .filter((policy) => JSON.stringify(policy.Properties.Roles ?? []).includes(JSON.stringify({ Ref: roleId })));
    const statements = policies.flatMap((policy) => policy.Properties.PolicyDocument.Statement);
    const actions = statements.flatMap((st: any) => [st.Action].flat()).sort();
    expect(actions).toEqual(['cloudformation:DescribeStackResource', 'cloudformation:SignalResource']);
    // The scope: this stack only (cfn-init reads the builder's metadata with DescribeStackResource, cfn-signal signals
    // it), no other stack, no wildcard, no condition to widen it. IAM cannot narrow DescribeStackResource to one
    // logical id: the stack is the finest scope there is.
    expect(statements).toEqual([{
      Effect: 'Allow',
      Action: ['cloudformation:DescribeStackResource', 'cloudformation:SignalResource'],
      Resource: { Ref: 'AWS::StackId' },
    }]);
    template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    const role = template.findResources('AWS::IAM::Role')[roleId];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.Policies).toBeUndefined();
  });
});

describe('secure builder', () => {
  test('encrypts its root volume with the account default key by default', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    expect(builderOf(Template.fromStack(stack)).resource.Properties.BlockDeviceMappings).toEqual([{
      DeviceName: '/dev/xvda',
      Ebs: { Encrypted: true, VolumeType: 'gp3', DeleteOnTermination: true },
    }]);
  });

  test('encrypts its root volume with the KMS key, size and device the user passes', () => {
    const { stack, vpc } = newStack();
    const key = new kms.Key(stack, 'Key');
    bake(stack, vpc, 'Image', { volumeEncryptionKey: key, rootVolumeSize: Size.gibibytes(30), rootDeviceName: '/dev/sda1' });
    expect(builderOf(Template.fromStack(stack)).resource.Properties.BlockDeviceMappings).toEqual([{
      DeviceName: '/dev/sda1',
      Ebs: {
        Encrypted: true,
        VolumeType: 'gp3',
        DeleteOnTermination: true,
        VolumeSize: 30,
        KmsKeyId: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as kms.CfnKey), 'Arn'] },
      },
    }]);
  });

  test('maps the root volume to /dev/sda1 for Windows base images', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', {
      machineImage: ec2.MachineImage.genericWindows({ 'us-east-1': BASE_AMI }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('echo baked')),
    });
    expect(builderOf(Template.fromStack(stack)).resource.Properties.BlockDeviceMappings[0].DeviceName).toBe('/dev/sda1');
  });

  test('runs in private subnets with egress by default', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    // On its network interface, which takes no public IP address (CT.EC2.PR.8).
    const subnetId = builderOf(Template.fromStack(stack)).resource.Properties.NetworkInterfaces[0].SubnetId;
    const privateIds = vpc.privateSubnets.map((subnet) => stack.resolve(subnet.subnetId));
    expect(privateIds).toContainEqual(subnetId);
  });

  test('gets Session Manager access only when asked', () => {
    const withoutAccess = newStack();
    bake(withoutAccess.stack, withoutAccess.vpc);
    expect(JSON.stringify(Template.fromStack(withoutAccess.stack).toJSON())).not.toContain('AmazonSSMManagedInstanceCore');

    const withAccess = newStack();
    const image = bake(withAccess.stack, withAccess.vpc, 'Image', { ssmSessionPermissions: true });
    const roleId = withAccess.stack.getLogicalId(image.builder.role.node.defaultChild as iam.CfnRole);
    const role = Template.fromStack(withAccess.stack).findResources('AWS::IAM::Role')[roleId];
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain('AmazonSSMManagedInstanceCore');
  });

  test('warns when the builder is placed in a public subnet', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC } });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('public subnet'));
  });
});

describe('manifest', () => {
  function manifestConfig(template: Template): any {
    return builderOf(template).resource.Metadata['AWS::CloudFormation::Init'].cdkBakedImageManifest;
  }

  test('writes manifest.json, the installed packages and the bake time into the image, after the user\'s config sets', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const template = Template.fromStack(stack);
    const config = manifestConfig(template);

    expect(config.files['/etc/baked-image/manifest.json'].content).toEqual({
      baseImageId: BASE_AMI,
      configSets: 'default',
      initFingerprint: image.initFingerprint,
      libraryVersion: expect.stringMatching(/^\d+\.\d+\.\d+/),
      stackName: { Ref: 'AWS::StackName' },
      builtBy: 'cdk-baked-image',
    });
    expect(Object.keys(config.commands).sort()).toEqual(['1-packages', '2-baked-at']);
    expect(config.commands['1-packages'].command).toContain('rpm -qa');
    expect(config.commands['1-packages'].command).toContain('> /etc/baked-image/packages.txt');
    expect(JSON.stringify(builderOf(template).resource.Properties.UserData)).toContain('-c default,cdkBakedImageManifest,cdkBakedImageSanitize');
  });

  test('gives the same init fingerprint to the same config, and another to a changed one', () => {
    const fingerprint = (init: ec2.CloudFormationInit) => {
      const { stack, vpc } = newStack();
      return bake(stack, vpc, 'Image', { init }).initFingerprint;
    };
    const nginx = () => ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx'));
    expect(fingerprint(nginx())).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint(nginx())).toBe(fingerprint(nginx()));
    expect(fingerprint(ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('httpd')))).not.toBe(fingerprint(nginx()));
  });

  test('passes the manifest to the handler for the image tags', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.Properties).toMatchObject({ BaseImageId: BASE_AMI, ConfigSets: 'default', InitFingerprint: image.initFingerprint });
  });
});

describe('keeping superseded images', () => {
  test('passes the count to the handler and lets it read only its own stack', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { keepSupersededImages: 3 });
    const template = Template.fromStack(stack);
    expect(bakeResourceOf(template).resource.Properties.KeepSupersededImages).toBe('3');
    const read = handlerStatements(template).find((st) => st.Sid === 'ReadOwnStack');
    expect(read).toEqual(expect.objectContaining({
      Action: ['cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource'],
      Resource: { Ref: 'AWS::StackId' },
    }));
  });

  test('grants the CloudFormation read on this stack only, even when no image keeps superseded ones (a Delete under a newer template may need it)', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const statements = handlerStatements(Template.fromStack(stack));
    const cloudFormation = statements.filter((st) => [st.Action].flat().some((action: string) => action.startsWith('cloudformation:')));
    expect(cloudFormation).toEqual([{
      Sid: 'ReadOwnStack',
      Effect: 'Allow',
      Action: ['cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource'],
      Resource: { Ref: 'AWS::StackId' },
    }]);
  });
});

describe('deprecation and deregistration protection', () => {
  test('passes the deprecation delay in seconds and the protection to the handler', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { deprecateAfter: Duration.days(90), deregistrationProtection: true });
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.Properties).toMatchObject({ DeprecateAfterSeconds: String(90 * 24 * 3600), DeregistrationProtection: 'true' });
  });

  test('asks for neither by default', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.Properties.DeprecateAfterSeconds).toBeUndefined();
    expect(resource.Properties.DeregistrationProtection).toBe('false');
  });
});

describe('sharing', () => {
  const ORG = 'arn:aws:organizations::111122223333:organization/o-abcdef1234';
  const OU = 'arn:aws:organizations::111122223333:ou/o-abcdef1234/ou-ab12-cdef3456';

  test('passes the accounts, organizations and units to the handler, and lets them use the image\'s key', () => {
    const { stack, vpc } = newStack();
    const key = new kms.Key(stack, 'Key');
    bake(stack, vpc, 'Image', { volumeEncryptionKey: key, shareWith: { accounts: ['444455556666'], organizationArns: [ORG] } });
    const template = Template.fromStack(stack);

    const { resource } = bakeResourceOf(template);
    expect(resource.Properties.ShareWithAccounts).toEqual(['444455556666']);
    expect(resource.Properties.ShareWithOrganizations).toEqual([ORG]);
    expect(resource.Properties.ShareWithOrganizationalUnits).toEqual([]);

    const keyPolicy = Object.values<any>(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy.Statement;
    const accounts = keyPolicy.find((st: any) => st.Sid === 'LaunchSharedBakedImageAccounts');
    expect(accounts.Action).toEqual(expect.arrayContaining(['kms:Decrypt', 'kms:ReEncrypt*']));
    expect(accounts.Action).not.toContain('kms:CreateGrant');
    expect(JSON.stringify(accounts.Principal)).toContain(':iam::444455556666:root');
    const accountGrants = keyPolicy.find((st: any) => st.Sid === 'LaunchSharedBakedImageAccountsGrants');
    expect(accountGrants).toMatchObject({ Action: 'kms:CreateGrant', Condition: { Bool: { 'kms:GrantIsForAWSResource': true } } });
    expect(JSON.stringify(accountGrants.Principal)).toContain(':iam::444455556666:root');
    const organization = keyPolicy.find((st: any) => st.Sid === 'LaunchSharedBakedImageOrganization1');
    expect(organization.Principal).toEqual({ AWS: '*' });
    expect(organization.Condition).toEqual({ StringEquals: { 'aws:PrincipalOrgID': 'o-abcdef1234' } });
    expect(keyPolicy.find((st: any) => st.Sid === 'LaunchSharedBakedImageOrganization1Grants')).toMatchObject({
      Action: 'kms:CreateGrant',
      Principal: { AWS: '*' },
      Condition: { StringEquals: { 'aws:PrincipalOrgID': 'o-abcdef1234' }, Bool: { 'kms:GrantIsForAWSResource': true } },
    });
    // No statement of the key policy lets anyone create grants that are not for AWS resources.
    const grants = keyPolicy.filter((st: any) => [st.Action].flat().includes('kms:CreateGrant'));
    expect(grants.map((st: any) => [st.Sid, st.Condition?.Bool?.['kms:GrantIsForAWSResource']])).toEqual([
      ['LaunchSharedBakedImageAccountsGrants', true],
      ['LaunchSharedBakedImageOrganization1Grants', true],
    ]);
  });

  test('warns that an imported key or organizational units need the key shared by hand', () => {
    const { stack, vpc } = newStack();
    const key = kms.Key.fromKeyArn(stack, 'Imported', 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555');
    bake(stack, vpc, 'Image', { volumeEncryptionKey: key, shareWith: { organizationalUnitArns: [OU] } });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('imported volumeEncryptionKey'));

    const owned = newStack();
    bake(owned.stack, owned.vpc, 'Image', { volumeEncryptionKey: new kms.Key(owned.stack, 'Key'), shareWith: { organizationalUnitArns: [OU] } });
    Annotations.fromStack(owned.stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('cannot name organizational units'));
  });
});

describe('validate before use', () => {
  test('passes the test instance\'s user data, timeout, type and the builder\'s subnet and security group to the handler', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc, 'Image', {
      validation: ImageValidation.fromCommands(['systemctl is-active nginx', 'curl -fsS http://localhost/'], { timeout: Duration.minutes(5) }),
    });
    const template = Template.fromStack(stack);
    const { resource } = bakeResourceOf(template);
    const userData: string = resource.Properties.ValidationUserData;
    expect(userData.split('\n').slice(0, 3)).toEqual(['#!/bin/bash', '# cdk-baked-image: image validation', 'shutdown -h +15 >/dev/null 2>&1 || true']);
    expect(userData).toContain("<<'CDK_BAKED_IMAGE_VALIDATION_EOF'\nset -e\nsystemctl is-active nginx\ncurl -fsS http://localhost/\nCDK_BAKED_IMAGE_VALIDATION_EOF\n");
    expect(resource.Properties.ValidationTimeoutSeconds).toBe('300');
    expect(resource.Properties.ValidationInstanceType).toBe('t3.medium');
    expect(resource.Properties.ValidationSubnetId).toEqual(builderOf(template).resource.Properties.NetworkInterfaces[0].SubnetId);
    const groups = image.builder.connections.securityGroups.map((g) => g.securityGroupId);
    expect(resource.Properties.ValidationSecurityGroupIds).toEqual(stack.resolve(groups));
    // Validation is not an image input: the builder stays.
    expect(builderLogicalId({ validation: ImageValidation.fromScript('true') })).toBe(builderLogicalId({}));
  });

  test('the test instance\'s user data parses as bash (test/lambda/moto-validation.test.ts runs it)', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { validation: ImageValidation.fromScript('echo one\necho two >&2\nexit 4', { instanceType: new ec2.InstanceType('t3.small') }) });
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.Properties.ValidationInstanceType).toBe('t3.small');
    expect(spawnSync('bash', ['-n'], { input: resource.Properties.ValidationUserData }).status).toBe(0);
  });

  test('throws when the test instance type is not a Nitro type, where GetConsoleOutput Latest fails', () => {
    const { stack, vpc } = newStack();
    expect(() => bake(stack, vpc, 'Image', { validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType('t2.micro') }) }))
      .toThrow(/validation's test instance type t2.micro is not a Nitro type: .*GetConsoleOutput Latest/);
    const xenBuilder = newStack();
    expect(() => bake(xenBuilder.stack, xenBuilder.vpc, 'Image', { instanceType: new ec2.InstanceType('m4.large'), validation: ImageValidation.fromScript('true') }))
      .toThrow(/m4.large is not a Nitro type/);
    const nitro = newStack();
    bake(nitro.stack, nitro.vpc, 'Image', { validation: ImageValidation.fromScript('true') });
    Annotations.fromStack(nitro.stack).hasNoWarning('/TestStack/Image', Match.anyValue());
  });

  test('passes no validation property without validation, and grants no RunInstances', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);
    expect(bakeResourceOf(template).resource.Properties.ValidationUserData).toBeUndefined();
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toContain('ec2:RunInstances');
  });

  test('lets the handlers launch test instances only from the stack\'s own images, tagged, into the builder\'s subnet and group, with no role', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc, 'Image', { validation: ImageValidation.fromScript('true') });
    const statements = Object.values<any>(Template.fromStack(stack).findResources('AWS::IAM::Policy'))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement);
    const bySid = (sid: string) => statements.find((statement) => statement.Sid === sid);
    const granting = (action: string) => statements.filter((st) => [st.Action].flat().includes(action));
    expect(bySid('LaunchTestInstancesFromOwnImages')).toEqual(expect.objectContaining({ Resource: homeArn('image'), Condition: { StringEquals: STACK_TAG } }));
    expect(bySid('LaunchOnlyTaggedTestInstances')).toEqual(expect.objectContaining({ Resource: INSTANCES, Condition: { StringEquals: TAGGED_AT_CREATION } }));
    // Reading the test's console and terminating it: instances tagged with the stack's id at launch.
    for (const action of ['ec2:GetConsoleOutput', 'ec2:TerminateInstances']) {
      expect(granting(action)).toEqual([expect.objectContaining({ Resource: INSTANCES, Condition: { StringEquals: STACK_TAG } })]);
    }
    expect(granting('ec2:DescribeInstances')).toEqual([expect.objectContaining({ Resource: '*' })]);
    expect(bySid('RecordOnOwnImages').Condition).toEqual({
      'StringEquals': STACK_TAG,
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['cdk-baked-image:validated', 'cdk-baked-image:copy-regions'] },
    });
    const network = JSON.stringify(bySid('LaunchTestInstancesIntoBuilderNetworks').Resource);
    const builderSubnetId = builderOf(Template.fromStack(stack)).resource.Properties.NetworkInterfaces[0].SubnetId;
    expect(network).toContain(JSON.stringify(builderSubnetId));
    expect(network).toContain(JSON.stringify(stack.resolve(image.builder.connections.securityGroups[0].securityGroupId)));
    expect(statements.flatMap((statement) => [statement.Action].flat())).not.toContain('iam:PassRole');
  });

  test('grants the provider the use of the image\'s key to launch the test instance', () => {
    const { stack, vpc } = newStack();
    const key = new kms.Key(stack, 'ImageKey');
    bake(stack, vpc, 'Image', { volumeEncryptionKey: key, validation: ImageValidation.fromScript('true') });
    const statements = Object.values<any>(Template.fromStack(stack).findResources('AWS::IAM::Policy'))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement)
      .filter((statement) => [statement.Action].flat().includes('kms:CreateGrant'));
    expect(statements).toEqual([{
      Effect: 'Allow',
      Action: 'kms:CreateGrant',
      Resource: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as CfnResource), 'Arn'] },
      Condition: { Bool: { 'kms:GrantIsForAWSResource': true } },
    }]);
  });
});

describe('the launch-time phase', () => {
  test('newLaunchTemplate gives the image, IMDSv2 and a role, so that a group can run its own init at launch', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const launchTemplate = image.newLaunchTemplate(stack, 'Template', { instanceType: new ec2.InstanceType('t3.micro') });
    new autoscaling.AutoScalingGroup(stack, 'Fleet', {
      vpc,
      launchTemplate,
      init: ec2.CloudFormationInit.fromElements(ec2.InitFile.fromString('/etc/app/environment', 'ENVIRONMENT=prod\n')),
      signals: autoscaling.Signals.waitForAll(),
    });
    const template = Template.fromStack(stack);
    const [, resource] = Object.entries<any>(template.findResources('AWS::EC2::LaunchTemplate'))[0];
    const data = resource.Properties.LaunchTemplateData;
    expect(data.ImageId).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(image.node.defaultChild as CfnResource), 'ImageId'] });
    expect(data.MetadataOptions.HttpTokens).toBe('required');
    expect(data.InstanceType).toBe('t3.micro');
    expect(data.IamInstanceProfile).toBeDefined();
    // The group's launch-time init goes into the template's user data; the image's bake-time init stays on the builder.
    expect(JSON.stringify(data.UserData)).toContain('cfn-init');
    const [, group] = Object.entries<any>(template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0];
    expect(JSON.stringify(group.Metadata['AWS::CloudFormation::Init'])).toContain('/etc/app/environment');
    expect(JSON.stringify(group.Metadata['AWS::CloudFormation::Init'])).not.toContain('nginx');
  });

  test('newLaunchTemplate keeps the role and the properties it is given', () => {
    const { stack, vpc } = newStack();
    const role = new iam.Role(stack, 'Mine', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const launchTemplate = bake(stack, vpc).newLaunchTemplate(stack, 'Template', { role, requireImdsv2: true, detailedMonitoring: true });
    expect(launchTemplate.role).toBe(role);
    const [, resource] = Object.entries<any>(Template.fromStack(stack).findResources('AWS::EC2::LaunchTemplate'))[0];
    expect(resource.Properties.LaunchTemplateData.Monitoring).toEqual({ Enabled: true });
    expect(Object.keys(Template.fromStack(stack).findResources('AWS::IAM::Role')).filter((id) => id.startsWith('TemplateRole'))).toEqual([]);
  });
});

describe('launch permissions on the image\'s key', () => {
  const SLR = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::123456789012:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling']] };

  test('grantLaunchToAutoScaling lets the Auto Scaling service-linked role use the key, CreateGrant only for AWS resources; once', () => {
    const { stack, vpc } = newStack();
    const key = new kms.Key(stack, 'ImageKey');
    const image = bake(stack, vpc, 'Image', { volumeEncryptionKey: key });
    const grant = image.grantLaunchToAutoScaling();
    expect(image.grantLaunchToAutoScaling()).toBe(grant);
    expect(grant).toBeInstanceOf(iam.Grant);
    expect(grant.success).toBe(true);
    expect(grant.resourceStatements.map((statement) => statement.sid)).toEqual(['AutoScalingLaunchesBakedImage', 'AutoScalingAttachesBakedImageVolumes']);
    const statements: any[] = Template.fromStack(stack).findResources('AWS::KMS::Key')[stack.getLogicalId(key.node.defaultChild as CfnResource)]
      .Properties.KeyPolicy.Statement;
    const use = statements.filter((statement) => statement.Sid === 'AutoScalingLaunchesBakedImage');
    const attach = statements.filter((statement) => statement.Sid === 'AutoScalingAttachesBakedImageVolumes');
    expect(use).toEqual([expect.objectContaining({
      Principal: { AWS: SLR },
      Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey'],
    })]);
    expect(attach).toEqual([expect.objectContaining({
      Principal: { AWS: SLR }, Action: 'kms:CreateGrant', Condition: { Bool: { 'kms:GrantIsForAWSResource': true } },
    })]);
  });

  test('grants nothing for the AWS managed key, and warns for an imported key', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc).grantLaunchToAutoScaling();
    expect(JSON.stringify(Template.fromStack(stack).toJSON())).not.toContain('AWSServiceRoleForAutoScaling');

    const imported = newStack();
    const key = kms.Key.fromKeyArn(imported.stack, 'Imported', 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555');
    bake(imported.stack, imported.vpc, 'Image', { volumeEncryptionKey: key }).grantLaunchToAutoScaling();
    Annotations.fromStack(imported.stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('AWSServiceRoleForAutoScaling'));
  });

  test('grantLaunch gives a role the key actions EBS needs, and nothing for the AWS managed key', () => {
    const { stack, vpc } = newStack();
    const key = new kms.Key(stack, 'ImageKey');
    const role = new iam.Role(stack, 'Launcher', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    bake(stack, vpc, 'Image', { volumeEncryptionKey: key }).grantLaunch(role);
    const roleRef = JSON.stringify([{ Ref: stack.getLogicalId(role.node.defaultChild as CfnResource) }]);
    const policies = Object.values<any>(Template.fromStack(stack).findResources('AWS::IAM::Policy'))
      .filter((policy) => JSON.stringify(policy.Properties.Roles) === roleRef);
    const statements = policies.flatMap((policy) => policy.Properties.PolicyDocument.Statement);
    expect(statements.flatMap((st: any) => [st.Action].flat()).sort())
      .toEqual(['kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncrypt*']);
    // CreateGrant in a statement of its own, only for grants to AWS resources (EBS attaching the volume).
    const keyArn = { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as CfnResource), 'Arn'] };
    expect(statements.filter((st: any) => [st.Action].flat().includes('kms:CreateGrant'))).toEqual([
      { Effect: 'Allow', Action: 'kms:CreateGrant', Resource: keyArn, Condition: { Bool: { 'kms:GrantIsForAWSResource': true } } },
    ]);

    const plain = newStack();
    const other = new iam.Role(plain.stack, 'Launcher', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    expect(bake(plain.stack, plain.vpc).grantLaunch(other).success).toBe(false);
    expect(JSON.stringify(Template.fromStack(plain.stack).findResources('AWS::IAM::Policy'))).not.toContain('kms:');
  });
});

describe('copies to other regions', () => {
  const EU_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

  test('passes the regions and the copies\' key ARNs to the handler; the regions are not image inputs', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', {
      copies: [{ region: 'us-west-2' }, { region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'EuKey', EU_KEY) }],
    });
    const { resource } = bakeResourceOf(Template.fromStack(stack));
    expect(resource.Properties.CopyToRegions).toEqual(['us-west-2', 'eu-west-1']);
    expect(resource.Properties.CopyKmsKeyIds).toEqual({ 'eu-west-1': EU_KEY });
    // Adding a region copies the existing image: the builder (and so the image) stays.
    expect(builderLogicalId({ copies: [{ region: 'us-west-2' }] })).toBe(builderLogicalId({}));
  });

  test('passes no copy property without copies, and grants no copy permission', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const template = Template.fromStack(stack);
    const { resource } = bakeResourceOf(template);
    expect(resource.Properties.CopyToRegions).toBeUndefined();
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toContain('ec2:CopyImage');
  });

  test('imageIdForRegion gives each copy\'s attribute, and the image id for the stack\'s own region', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc, 'Image', { copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }] });
    const logicalId = stack.getLogicalId(image.node.defaultChild as CfnResource);
    expect(stack.resolve(image.imageIdForRegion('us-west-2'))).toEqual({ 'Fn::GetAtt': [logicalId, 'ImageId.us-west-2'] });
    expect(stack.resolve(image.imageIdForRegion('eu-west-1'))).toEqual({ 'Fn::GetAtt': [logicalId, 'ImageId.eu-west-1'] });
    expect(stack.resolve(image.imageIdForRegion('us-east-1'))).toEqual({ 'Fn::GetAtt': [logicalId, 'ImageId'] });
    expect(image.copyRegions).toEqual(['us-west-2', 'eu-west-1']);
    expect(() => image.imageIdForRegion('ap-south-1')).toThrow(/has no copy in 'ap-south-1': its copies are in 'us-west-2', 'eu-west-1'/);
  });

  test('lets the handlers copy only this account\'s images of the stack\'s region, only to the listed regions with the stack\'s id, and delete copies only by that id', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }] });
    const statements = handlerStatements(Template.fromStack(stack));
    const region = (name: string, kind: string) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ec2:${name}::${kind}/*`]] });
    const listed = [region('us-west-2', 'image'), region('us-west-2', 'snapshot'), region('eu-west-1', 'image'), region('eu-west-1', 'snapshot')];

    // The Service Authorization Reference lists no aws:ResourceTag for CopyImage's source: this account's images.
    const copying = statements.filter((st) => [st.Action].flat().includes('ec2:CopyImage'));
    expect(copying).toEqual([
      { Sid: 'CopyFromOwnImages', Effect: 'Allow', Action: 'ec2:CopyImage', Resource: homeArn('image'), Condition: { StringEquals: { 'ec2:Owner': { Ref: 'AWS::AccountId' } } } },
      { Sid: 'CopyImagesToRegions', Effect: 'Allow', Action: 'ec2:CopyImage', Resource: listed, Condition: { StringEquals: TAGGED_AT_CREATION } },
    ]);
    expect(statements.find((st) => st.Sid === 'TagOnlyWhileCopyingImages')).toEqual({
      Sid: 'TagOnlyWhileCopyingImages',
      Effect: 'Allow',
      Action: 'ec2:CreateTags',
      Condition: { StringEquals: { 'ec2:CreateAction': 'CopyImage' } },
      Resource: listed,
    });
    // Deleting a copy: the statement every stack has, on every region, by the stack's id.
    const deleting = statements.filter((st) => [st.Action].flat().includes('ec2:DeregisterImage'));
    expect(deleting).toEqual([expect.objectContaining({
      Resource: [anyRegionArn('image'), anyRegionArn('snapshot')],
      Condition: { StringEquals: STACK_TAG },
    })]);
    // The image records the regions it was copied to, on images of this stack in its region, with the record keys only.
    expect(statements.find((st) => st.Sid === 'RecordOnOwnImages')).toEqual(expect.objectContaining({
      Action: 'ec2:CreateTags',
      Resource: homeArn('image'),
      Condition: {
        'StringEquals': STACK_TAG,
        'ForAllValues:StringEquals': { 'aws:TagKeys': ['cdk-baked-image:validated', 'cdk-baked-image:copy-regions'] },
      },
    }));
  });

  test('grants the provider the use of the image\'s key and of the copies\' keys', () => {
    const { stack, vpc } = newStack();
    const key = new kms.Key(stack, 'ImageKey');
    bake(stack, vpc, 'Image', {
      volumeEncryptionKey: key,
      copies: [{ region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'EuKey', EU_KEY) }],
    });
    const kmsStatements = handlerStatements(Template.fromStack(stack))
      .filter((statement) => [statement.Action].flat().some((action: string) => action.startsWith('kms:')));
    const keyArn = { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as CfnResource), 'Arn'] };
    const grants = kmsStatements.filter((statement) => [statement.Action].flat().includes('kms:CreateGrant'));
    // CreateGrant only for grants to AWS resources (EBS copying the snapshots), on both keys, in statements of its own.
    expect(grants.flatMap((statement) => [statement.Resource].flat())).toEqual(expect.arrayContaining([keyArn, EU_KEY]));
    for (const statement of grants) {
      expect(statement).toEqual({ Effect: 'Allow', Action: 'kms:CreateGrant', Resource: expect.anything(), Condition: { Bool: { 'kms:GrantIsForAWSResource': true } } });
    }
    // The other key actions EBS needs, on both keys too, without a condition.
    for (const resource of [keyArn, EU_KEY]) {
      const use = kmsStatements
        .filter((statement) => !statement.Condition && JSON.stringify([statement.Resource].flat()).includes(JSON.stringify(resource)));
      expect(use.flatMap((statement) => [statement.Action].flat()).sort())
        .toEqual(['kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo']);
    }
  });

  test('warns that the copies\' keys must let the accounts a shared image goes to use them', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', {
      volumeEncryptionKey: new kms.Key(stack, 'Key'),
      shareWith: { accounts: ['444455556666'] },
      copies: [{ region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'EuKey', EU_KEY) }],
    });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('key policy of each copy\'s key'));
  });
});

describe('as a machine image', () => {
  test('feeds an Auto Scaling group launch template with the custom resource\'s ImageId', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const launchTemplate = new ec2.LaunchTemplate(stack, 'Template', {
      machineImage: image,
      instanceType: new ec2.InstanceType('t3.micro'),
    });
    new autoscaling.AutoScalingGroup(stack, 'Asg', { vpc, launchTemplate });
    const template = Template.fromStack(stack);
    const { logicalId } = bakeResourceOf(template);

    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ ImageId: { 'Fn::GetAtt': [logicalId, 'ImageId'] } }),
    });
  });

  test('works as machineImage of an AutoScalingGroup directly', () => {
    const app = new App({ context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true } });
    const stack = new Stack(app, 'AsgStack', { env: { account: '123456789012', region: 'us-east-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2 });
    const image = bake(stack, vpc);
    new autoscaling.AutoScalingGroup(stack, 'Asg', { vpc, machineImage: image, instanceType: new ec2.InstanceType('t3.micro') });
    const template = Template.fromStack(stack);
    const { logicalId } = bakeResourceOf(template);

    template.resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ ImageId: { 'Fn::GetAtt': [logicalId, 'ImageId'] } }),
    });
    expect(image.getImage(stack).osType).toBe(ec2.OperatingSystemType.LINUX);
  });

  test('is a base image for another BakedImage, whose builder then starts from the parent\'s image', () => {
    const { stack, vpc } = newStack();
    const foundation = bake(stack, vpc, 'Foundation');
    const app = bake(stack, vpc, 'App', { machineImage: foundation, imageNamePrefix: 'app' });
    const template = Template.fromStack(stack);
    const foundationBake = stack.getLogicalId(foundation.node.findChild('Image').node.defaultChild as CfnResource);

    const appBuilder = template.findResources('AWS::EC2::Instance')[stack.resolve(app.builder.instance.logicalId)];
    // A rebaked parent changes this ImageId, which replaces the child's builder and so rebakes the child.
    expect(appBuilder.Properties.ImageId).toEqual({ 'Fn::GetAtt': [foundationBake, 'ImageId'] });
    expect(app.osType).toBe(ec2.OperatingSystemType.LINUX);
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
  });

  test('publishes the image id to an SSM parameter of data type aws:ec2:image when asked', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc, 'Image', { imageIdParameterName: '/golden/web/image-id' });
    const template = Template.fromStack(stack);
    const { logicalId } = bakeResourceOf(template);

    template.hasResourceProperties('AWS::SSM::Parameter', {
      Name: '/golden/web/image-id',
      Type: 'String',
      DataType: 'aws:ec2:image',
      Value: { 'Fn::GetAtt': [logicalId, 'ImageId'] },
    });
    expect(image.imageIdParameter).toBeDefined();
  });

  test('publishes no SSM parameter by default', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    Template.fromStack(stack).resourceCountIs('AWS::SSM::Parameter', 0);
    expect(image.imageIdParameter).toBeUndefined();
  });

  test('has the custom resource as its default child', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const { logicalId } = bakeResourceOf(Template.fromStack(stack));
    expect(stack.resolve((image.node.defaultChild as CfnResource).logicalId)).toBe(logicalId);
  });

  test('exposes the image id and name as tokens', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const { logicalId } = bakeResourceOf(Template.fromStack(stack));
    expect(stack.resolve(image.imageId)).toEqual({ 'Fn::GetAtt': [logicalId, 'ImageId'] });
    expect(stack.resolve(image.imageName)).toEqual({ 'Fn::GetAtt': [logicalId, 'ImageName'] });
  });
});

describe('warnings', () => {
  test('warns when the image is captured without a reboot', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { noReboot: true });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('no file-system consistency guarantee'));
  });

  test('warns when the builder is left running', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { builderAfterBake: BuilderAfterBake.KEEP_RUNNING });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image', Match.stringLikeRegexp('billed until the stack is deleted'));
  });

  test('has no warning with the defaults', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    Annotations.fromStack(stack).hasNoWarning('/TestStack/Image', Match.anyValue());
  });
});

/** What the handlers may do to the images and snapshots of their own stack, in every region. */
const OWN_IMAGE_ACTIONS = [
  'ec2:ModifyImageAttribute', 'ec2:EnableImageDeprecation', 'ec2:DisableImageDeprecation',
  'ec2:EnableImageDeregistrationProtection', 'ec2:DisableImageDeregistrationProtection', 'ec2:DeregisterImage', 'ec2:DeleteSnapshot',
  'ec2:DisableFastSnapshotRestores',
];

/** What a Delete needs, whatever the template it runs under: to find, read, stop and delete. */
const READ_AND_DELETE = [
  'ec2:DescribeImages', 'ec2:DescribeSnapshots', 'ec2:DescribeImageAttribute', 'ec2:DescribeInstances', 'ec2:DescribeFastSnapshotRestores',
  'ec2:StopInstances', 'ec2:TerminateInstances', 'ec2:GetConsoleOutput',
  ...OWN_IMAGE_ACTIONS,
  'cloudformation:DescribeStacks', 'cloudformation:DescribeStackResource',
];

/** The condition on a resource that carries this stack's id. */
const STACK_TAG = { 'aws:ResourceTag/cdk-baked-image:stack-id': { Ref: 'AWS::StackId' } };

/** The condition on a request that tags what it creates with this stack's id. */
const TAGGED_AT_CREATION = { 'aws:RequestTag/cdk-baked-image:stack-id': { Ref: 'AWS::StackId' } };

/** Every image or snapshot, in every region. */
function anyRegionArn(kind: 'image' | 'snapshot'): unknown {
  return { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ec2:*::${kind}/*`]] };
}

/** Every image or snapshot of the stack's region. */
function homeArn(kind: 'image' | 'snapshot'): unknown {
  return { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:', { Ref: 'AWS::Region' }, `::${kind}/*`]] };
}

/** Every instance of the stack's account and region. */
const INSTANCES = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':instance/*']] };

function handlerStatements(template: Template): any[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.entries(policies)
    .filter(([id]) => id.startsWith('CdkBakedImageProviderHandlerRole'))
    .flatMap(([, policy]: [string, any]) => policy.Properties.PolicyDocument.Statement);
}

describe('copies\' ids published in their regions', () => {
  const PARAMETER = '/bakery/web/ami';

  function parameterArn(region: string): unknown {
    return { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:ssm:${region}:`, { Ref: 'AWS::AccountId' }, ':parameter/bakery/web/ami']] };
  }

  test('the parameter name goes to the handler with the copy regions; the home region keeps its AWS::SSM::Parameter', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }], imageIdParameterName: PARAMETER });
    const template = Template.fromStack(stack);

    expect(bakeResourceOf(template).resource.Properties.CopyImageIdParameterName).toBe(PARAMETER);
    template.resourceCountIs('AWS::SSM::Parameter', 1);
    template.hasResourceProperties('AWS::SSM::Parameter', { Name: PARAMETER, DataType: 'aws:ec2:image', Type: 'String' });
  });

  test('without copies, or without a name, the handler gets no parameter name and the role no ssm:PutParameter', () => {
    for (const props of [{ imageIdParameterName: PARAMETER }, { copies: [{ region: 'us-west-2' }] }]) {
      const { stack, vpc } = newStack();
      bake(stack, vpc, 'Image', props);
      const template = Template.fromStack(stack);
      expect(bakeResourceOf(template).resource.Properties.CopyImageIdParameterName).toBeUndefined();
      expect(handlerStatements(template).flatMap((st) => [st.Action].flat())).not.toContain('ssm:PutParameter');
    }
  });

  test('writing is granted on the exact parameter of each copy region: creating only tagged with the stack\'s id', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image', { copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }], imageIdParameterName: PARAMETER });
    const statements = handlerStatements(Template.fromStack(stack));

    const create = statements.find((st) => st.Sid === 'CreateCopyParametersTagged');
    expect(create).toEqual({
      Sid: 'CreateCopyParametersTagged',
      Effect: 'Allow',
      Action: ['ssm:PutParameter', 'ssm:AddTagsToResource'],
      Resource: [parameterArn('us-west-2'), parameterArn('eu-west-1')],
      Condition: { StringEquals: TAGGED_AT_CREATION },
    });
    const overwrite = statements.find((st) => st.Sid === 'OverwriteCopyParameters');
    expect(overwrite).toEqual({
      Sid: 'OverwriteCopyParameters',
      Effect: 'Allow',
      Action: 'ssm:PutParameter',
      Resource: [parameterArn('us-west-2'), parameterArn('eu-west-1')],
      Condition: { StringEquals: { 'ssm:Overwrite': 'true' } },
    });
    // No other statement may write parameters.
    const writers = statements.filter((st) => [st.Action].flat().some((action: string) => action === 'ssm:PutParameter' || action === 'ssm:AddTagsToResource'));
    expect(writers.map((st) => st.Sid).sort()).toEqual(['CreateCopyParametersTagged', 'OverwriteCopyParameters']);
  });

  test('reading and deleting parameters is granted in every region, only on those tagged with the stack\'s id, whatever the template lists', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc);
    const statements = handlerStatements(Template.fromStack(stack));

    expect(statements.find((st) => st.Sid === 'ReadAndDeleteOwnParameters')).toEqual({
      Sid: 'ReadAndDeleteOwnParameters',
      Effect: 'Allow',
      Action: ['ssm:GetParameter', 'ssm:ListTagsForResource', 'ssm:DeleteParameter'],
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:*:', { Ref: 'AWS::AccountId' }, ':parameter/*']] },
      Condition: { StringEquals: STACK_TAG },
    });
  });

  test('two images publishing to different names in shared regions: one statement each, every ARN once', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'First', { copies: [{ region: 'us-west-2' }], imageIdParameterName: PARAMETER });
    bake(stack, vpc, 'Second', { imageNamePrefix: 'second', copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }], imageIdParameterName: '/bakery/worker/ami' });
    const statements = handlerStatements(Template.fromStack(stack));
    const create = statements.filter((st) => st.Sid === 'CreateCopyParametersTagged');
    expect(create).toHaveLength(1);
    expect(JSON.stringify(create[0].Resource)).toContain(':parameter/bakery/worker/ami');
    expect(create[0].Resource).toHaveLength(3);
  });

  test('a token name with copies is refused at synth time', () => {
    const { stack, vpc } = newStack();
    expect(() => bake(stack, vpc, 'Image', { copies: [{ region: 'us-west-2' }], imageIdParameterName: stack.stackId }))
      .toThrow(/imageIdParameterName must be a literal string with copies/);
  });
});
