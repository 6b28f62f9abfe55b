/**
 * The IAM simulator (iam-simulator.ts, iam-requests.ts): intrinsics resolved in synthesized templates, requests
 * mapped to the authorizations AWS performs with the context keys the Service Authorization Reference lists, and
 * decisions by iam-simulate against hand-written policies and the policy a real BakedImage synthesizes.
 */
import * as kms from 'aws-cdk-lib/aws-kms';
import {
  DEFECT_SCENARIOS,
  ACCOUNT, bakedImageFixture, ec2Request, FakeLookup, type Fixture, REGION, ROLE_ARN, STACK_ID, tagSpecifications,
} from './iam-scenarios';
import {
  type ApiRequest, type AuthorizationCheck, authorizationChecks, handlerPolicies, IamSimulator,
  type IntrinsicEnv, keyPolicies, type PolicyDocument, resolveIntrinsics,
} from './iam-simulator';
import { ImageValidation } from '../../src';
import { Tag } from '../../src/private/contract';
import { removeTemporaryAssembliesAfterAll } from '../support/temporary-assemblies';

removeTemporaryAssembliesAfterAll();

jest.setTimeout(60_000);

const ENV: IntrinsicEnv = {
  partition: 'aws',
  region: REGION,
  account: ACCOUNT,
  stackName: 'TestStack',
  stackId: STACK_ID,
  ref: (id) => ({ MySubnet: 'subnet-1', MyKey: 'key-1' } as Record<string, string>)[id],
  getAtt: (id, attribute) => (id === 'MyKey' && attribute === 'Arn' ? `arn:aws:kms:${REGION}:${ACCOUNT}:key/key-1` : undefined),
};

function simulator(...statements: Array<Record<string, unknown>>): IamSimulator {
  return new IamSimulator([{ Version: '2012-10-17', Statement: statements }], { principalArn: ROLE_ARN, account: ACCOUNT });
}

function byResource(checks: AuthorizationCheck[], action: string, resource: string): AuthorizationCheck {
  const check = checks.find((c) => c.action === action && c.resource === resource);
  if (!check) {
    throw new Error(`no ${action} on ${resource} among ${checks.map((c) => `${c.action} ${c.resource}`).join(', ')}`);
  }
  return check;
}

const OWN = { [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: 'Image1234' };

/** The RunInstances request the handler makes for a validation's test instance. */
function testInstanceRequest(imageId: string, instanceType: string, subnetId: string, groupIds: string[], tags: Record<string, string>): ApiRequest {
  return ec2Request('RunInstances', {
    'ImageId': imageId,
    'InstanceType': instanceType,
    'MinCount': '1',
    'MaxCount': '1',
    'SubnetId': subnetId,
    ...Object.fromEntries(groupIds.map((id, i) => [`SecurityGroupId.${i + 1}`, id])),
    'MetadataOptions.HttpTokens': 'required',
    'MetadataOptions.HttpEndpoint': 'enabled',
    ...tagSpecifications(tags, 'instance', 'volume'),
  });
}

function copyRequest(): ApiRequest {
  return ec2Request('CopyImage', { SourceImageId: 'ami-1', SourceRegion: REGION, Name: 'copy', ...tagSpecifications(OWN, 'image', 'snapshot') }, 'us-west-2');
}

const sourceLookup = () => new FakeLookup().add(REGION, 'image', 'ami-1', { tags: OWN, owner: ACCOUNT });

describe('resolveIntrinsics', () => {
  test('resolves pseudo parameters, Fn::Join, Fn::Select, Fn::Split, Fn::Sub, and Ref and Fn::GetAtt through the callbacks', () => {
    const fragment = {
      Arn: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':subnet/', { Ref: 'MySubnet' }]] },
      Name: { 'Fn::Select': [1, { 'Fn::Split': ['/', { Ref: 'AWS::StackId' }] }] },
      Sub: { 'Fn::Sub': '${AWS::StackName}-${MySubnet}-${MyKey.Arn}-${!Literal}' },
      SubWithVariables: { 'Fn::Sub': ['${Greeting} ${AWS::URLSuffix}', { Greeting: { Ref: 'AWS::Region' } }] },
      Key: { 'Fn::GetAtt': ['MyKey', 'Arn'] },
      Plain: ['a', 1, true],
    };
    expect(resolveIntrinsics(fragment, ENV)).toEqual({
      Arn: `arn:aws:ec2:${REGION}:${ACCOUNT}:subnet/subnet-1`,
      Name: 'TestStack',
      Sub: `TestStack-subnet-1-arn:aws:kms:${REGION}:${ACCOUNT}:key/key-1-\${Literal}`,
      SubWithVariables: `${REGION} amazonaws.com`,
      Key: `arn:aws:kms:${REGION}:${ACCOUNT}:key/key-1`,
      Plain: ['a', 1, true],
    });
  });

  test.each([
    [{ 'Fn::ImportValue': 'Shared' }, /Fn::ImportValue/],
    [{ Ref: 'AWS::NotificationARNs' }, /AWS::NotificationARNs/],
    [{ Ref: 'Unknown' }, /"Ref": "Unknown"/],
    [{ 'Fn::GetAtt': ['MySubnet', 'VpcId'] }, /"MySubnet", "VpcId"/],
    [{ 'Fn::Sub': '${Missing.Attr}' }, /"Missing", "Attr"/],
    [{ 'Fn::If': ['Cond', 'a', 'b'] }, /Fn::If/],
  ])('throws naming what it cannot resolve: %j', (fragment, message) => {
    expect(() => resolveIntrinsics({ Nested: [fragment] }, ENV)).toThrow(message);
  });
});

describe('the template side', () => {
  let fixture: Fixture;
  beforeAll(() => {
    fixture = bakedImageFixture({ Image: (stack) => ({ volumeEncryptionKey: new kms.Key(stack, 'Key') }) });
  });

  test('handlerPolicies returns the bake handlers\' role policy with every intrinsic resolved, and no other role\'s', () => {
    const text = JSON.stringify(fixture.policies);
    expect(text).not.toMatch(/"Ref"|"Fn::/);
    expect(text).toContain('ec2:CreateImage');
    expect(text).toContain(`arn:aws:ec2:${REGION}::image/*`);
    // The provider framework's roles invoke the handlers; the handlers' role does not.
    expect(text).not.toContain('lambda:InvokeFunction');
  });

  test('handlerPolicies throws when the template has no bake handlers\' role', () => {
    expect(() => handlerPolicies({ Resources: {} }, ENV)).toThrow(/CdkBakedImageProviderHandlerRole/);
  });

  test('keyPolicies returns each KMS key\'s policy resolved, by logical id', () => {
    const policies = Object.values(keyPolicies(fixture.template, fixture.env));
    expect(policies).toHaveLength(1);
    expect(JSON.stringify(policies[0])).toContain(`"arn:aws:iam::${ACCOUNT}:root"`);
  });
});

describe('authorizationChecks', () => {
  test('gives a CopyImage source image only the keys the reference lists for it: no aws:ResourceTag, whatever its tags', async () => {
    const checks = await authorizationChecks(copyRequest(), sourceLookup());
    const source = byResource(checks, 'ec2:CopyImage', `arn:aws:ec2:${REGION}::image/ami-1`);
    expect(source.context).toEqual(expect.objectContaining({ 'ec2:ImageID': 'ami-1', 'ec2:Owner': ACCOUNT, 'ec2:Region': 'us-west-2' }));
    expect(Object.keys(source.context).filter((key) => /ResourceTag|RequestTag|TagKeys/.test(key))).toEqual([]);
  });

  test('gives DeregisterImage\'s image its tags as aws:ResourceTag and ec2:ResourceTag', async () => {
    const [check] = await authorizationChecks(ec2Request('DeregisterImage', { ImageId: 'ami-1' }), sourceLookup());
    expect(check).toMatchObject({ action: 'ec2:DeregisterImage', resource: `arn:aws:ec2:${REGION}::image/ami-1`, resourceType: 'image' });
    expect(check.context).toEqual(expect.objectContaining({
      [`aws:ResourceTag/${Tag.STACK_ID}`]: STACK_ID,
      [`ec2:ResourceTag/${Tag.LOGICAL_ID}`]: 'Image1234',
      'ec2:ImageID': 'ami-1',
    }));
  });

  test('maps CopyImage to the source image in SourceRegion, the new image and snapshot in the request\'s region, and tagging them on creation', async () => {
    const checks = await authorizationChecks(copyRequest(), sourceLookup());
    expect(checks.map((c) => `${c.action} ${c.resource}`)).toEqual([
      `ec2:CopyImage arn:aws:ec2:${REGION}::image/ami-1`,
      'ec2:CopyImage arn:aws:ec2:us-west-2::image/*',
      'ec2:CopyImage arn:aws:ec2:us-west-2::snapshot/*',
      'ec2:CreateTags arn:aws:ec2:us-west-2::image/*',
      'ec2:CreateTags arn:aws:ec2:us-west-2::snapshot/*',
    ]);
    expect(checks[1].context).toEqual(expect.objectContaining({ [`aws:RequestTag/${Tag.STACK_ID}`]: STACK_ID, 'aws:TagKeys': Object.keys(OWN) }));
    expect(checks[3].context).toEqual(expect.objectContaining({ 'ec2:CreateAction': 'CopyImage', [`aws:RequestTag/${Tag.LOGICAL_ID}`]: 'Image1234' }));
  });

  test('maps CreateImage to the instance (an ARN with the account), the new image and snapshot, and tag-on-create', async () => {
    const lookup = new FakeLookup().add(REGION, 'instance', 'i-1', { tags: OWN, owner: ACCOUNT, conditionValues: { 'ec2:InstanceType': 't3.medium' } });
    const checks = await authorizationChecks(ec2Request('CreateImage', { InstanceId: 'i-1', Name: 'n', ...tagSpecifications(OWN, 'image', 'snapshot') }), lookup);
    expect(checks.map((c) => `${c.action} ${c.resource}`)).toEqual([
      `ec2:CreateImage arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-1`,
      `ec2:CreateImage arn:aws:ec2:${REGION}::image/*`,
      `ec2:CreateImage arn:aws:ec2:${REGION}::snapshot/*`,
      `ec2:CreateTags arn:aws:ec2:${REGION}::image/*`,
      `ec2:CreateTags arn:aws:ec2:${REGION}::snapshot/*`,
    ]);
    expect(checks[0].context).toEqual(expect.objectContaining({ [`aws:ResourceTag/${Tag.STACK_ID}`]: STACK_ID, 'ec2:InstanceType': 't3.medium', 'ec2:InstanceID': 'i-1' }));
    // The instance is not tagged by the request, the new image is not a resource with tags yet.
    expect(Object.keys(checks[0].context).some((key) => key.startsWith('aws:RequestTag/'))).toBe(false);
    expect(Object.keys(checks[1].context).some((key) => key.startsWith('aws:ResourceTag/'))).toBe(false);
  });

  test('maps RunInstances to the image, the new instance, volume and network interface, the subnet and each security group', async () => {
    const lookup = new FakeLookup()
      .add(REGION, 'image', 'ami-1', { tags: OWN, owner: ACCOUNT })
      .add(REGION, 'subnet', 'subnet-1', { tags: {}, owner: ACCOUNT })
      .add(REGION, 'security-group', 'sg-1', { tags: {}, owner: ACCOUNT })
      .add(REGION, 'security-group', 'sg-2', { tags: {}, owner: ACCOUNT });
    const checks = await authorizationChecks(ec2Request('RunInstances', {
      'ImageId': 'ami-1',
      'InstanceType': 't3.micro',
      'MinCount': '1',
      'MaxCount': '1',
      'SubnetId': 'subnet-1',
      'SecurityGroupId.1': 'sg-1',
      'SecurityGroupId.2': 'sg-2',
      'MetadataOptions.HttpTokens': 'required',
      ...tagSpecifications(OWN, 'instance', 'volume'),
    }), lookup);
    const at = (kind: string) => `arn:aws:ec2:${REGION}:${ACCOUNT}:${kind}`;
    expect(checks.map((c) => `${c.action} ${c.resource}`)).toEqual([
      `ec2:RunInstances arn:aws:ec2:${REGION}::image/ami-1`,
      `ec2:RunInstances ${at('instance/*')}`,
      `ec2:RunInstances ${at('volume/*')}`,
      `ec2:RunInstances ${at('network-interface/*')}`,
      `ec2:RunInstances ${at('subnet/subnet-1')}`,
      `ec2:RunInstances ${at('security-group/sg-1')}`,
      `ec2:RunInstances ${at('security-group/sg-2')}`,
      `ec2:CreateTags ${at('instance/*')}`,
      `ec2:CreateTags ${at('volume/*')}`,
    ]);
    expect(checks[1].context).toEqual(expect.objectContaining({
      'ec2:InstanceType': 't3.micro', 'ec2:MetadataHttpTokens': 'required', [`aws:RequestTag/${Tag.STACK_ID}`]: STACK_ID,
    }));
    expect(checks[3].context).toEqual(expect.objectContaining({ 'ec2:Subnet': at('subnet/subnet-1') }));
    expect(checks[7].context).toEqual(expect.objectContaining({ 'ec2:CreateAction': 'RunInstances', 'ec2:InstanceType': 't3.micro' }));
  });

  test('maps DeregisterImage with DeleteAssociatedSnapshots to an optional DeleteSnapshot on each of the image\'s snapshots', async () => {
    const lookup = sourceLookup()
      .add(REGION, 'image', 'ami-2', { tags: OWN, owner: ACCOUNT, snapshotIds: ['snap-1', 'snap-2'] })
      .add(REGION, 'snapshot', 'snap-1', { tags: OWN, owner: ACCOUNT })
      .add(REGION, 'snapshot', 'snap-2', { tags: {}, owner: ACCOUNT });
    const checks = await authorizationChecks(ec2Request('DeregisterImage', { ImageId: 'ami-2', DeleteAssociatedSnapshots: 'true' }), lookup);
    expect(checks.map((c) => [c.action, c.resource, c.optional])).toEqual([
      ['ec2:DeregisterImage', `arn:aws:ec2:${REGION}::image/ami-2`, undefined],
      ['ec2:DeleteSnapshot', `arn:aws:ec2:${REGION}::snapshot/snap-1`, true],
      ['ec2:DeleteSnapshot', `arn:aws:ec2:${REGION}::snapshot/snap-2`, true],
    ]);
  });

  test.each(['DescribeImages', 'DescribeSnapshots', 'DescribeInstances'])('maps %s, which supports no resource-level permissions, to *', async (action) => {
    const [check] = await authorizationChecks(ec2Request(action, { 'Owner.1': 'self' }), new FakeLookup());
    expect(check).toMatchObject({ action: `ec2:${action}`, resource: '*' });
    expect(check.resourceType).toBeUndefined();
  });

  test('names the stack of DescribeStacks by the stack id it is given, or by its name', async () => {
    const cfn = (StackName: string): ApiRequest => ({ ...ec2Request('DescribeStacks', { StackName }), service: 'cloudformation' });
    expect((await authorizationChecks(cfn(STACK_ID), new FakeLookup()))[0].resource).toBe(STACK_ID);
    expect((await authorizationChecks(cfn('TestStack'), new FakeLookup()))[0].resource)
      .toBe(`arn:aws:cloudformation:${REGION}:${ACCOUNT}:stack/TestStack/*`);
  });

  test('names an SSM parameter by an ARN without a doubled slash, with PutParameter\'s request tags', async () => {
    const ssm = (action: string, json: object): ApiRequest => ({ service: 'ssm', action, json, region: REGION, account: ACCOUNT, partition: 'aws' });
    const [put] = await authorizationChecks(ssm('PutParameter', { Name: '/baked/image', Value: 'ami-1', Overwrite: true, Tags: [{ Key: 'k', Value: 'v' }] }), new FakeLookup());
    expect(put.resource).toBe(`arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/baked/image`);
    expect(put.context).toEqual(expect.objectContaining({ 'aws:RequestTag/k': 'v', 'aws:TagKeys': ['k'], 'ssm:Overwrite': 'true' }));
    const lookup = new FakeLookup().add(REGION, 'parameter', 'plain', { tags: { k: 'v' } });
    const [get] = await authorizationChecks(ssm('GetParameter', { Name: 'plain' }), lookup);
    expect(get).toMatchObject({ resource: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/plain`, context: expect.objectContaining({ 'aws:ResourceTag/k': 'v' }) });
  });

  test.each([
    ['ec2', 'CreateVolume'],
    ['ssm', 'GetParameters'],
    ['s3', 'GetObject'],
  ])('throws for %s:%s, which it does not map', async (service, action) => {
    await expect(authorizationChecks({ ...ec2Request(action, {}), service }, new FakeLookup())).rejects.toThrow(`No IAM mapping for ${service}:${action}`);
  });

  test('marks a check on a resource that does not exist as missing, with none of its values', async () => {
    const [check] = await authorizationChecks(ec2Request('DeleteSnapshot', { SnapshotId: 'snap-gone' }), new FakeLookup());
    expect(check.missing).toBe(true);
    expect(check.context['ec2:SnapshotID']).toBeUndefined();
  });
});

describe('IamSimulator', () => {
  const copyDestinations = {
    Effect: 'Allow', Action: ['ec2:CopyImage', 'ec2:CreateTags'], Resource: ['arn:aws:ec2:us-west-2::image/*', 'arn:aws:ec2:us-west-2::snapshot/*'],
  };

  test('denies CopyImage of a source image by a policy conditioned on aws:ResourceTag, and allows it by one conditioned on ec2:Owner', async () => {
    const byTag = simulator(copyDestinations, {
      Sid: 'CopyTagged',
      Effect: 'Allow',
      Action: 'ec2:CopyImage',
      Resource: `arn:aws:ec2:${REGION}::image/*`,
      Condition: { StringEquals: { [`aws:ResourceTag/${Tag.STACK_ID}`]: STACK_ID } },
    });
    const denied = await byTag.authorizeRequest(copyRequest(), sourceLookup());
    expect(denied.allowed).toBe(false);
    expect(denied.denials).toHaveLength(1);
    expect(denied.denials[0]).toContain(`ec2:CopyImage on arn:aws:ec2:${REGION}::image/ami-1 (source image ami-1 in ${REGION})`);
    expect(denied.denials[0]).toContain(`statement CopyTagged: StringEquals aws:ResourceTag/${Tag.STACK_ID}`);
    expect(denied.denials[0]).toContain('the request has no such key');

    const byOwner = simulator(copyDestinations, {
      Effect: 'Allow', Action: 'ec2:CopyImage', Resource: `arn:aws:ec2:${REGION}::image/*`, Condition: { StringEquals: { 'ec2:Owner': ACCOUNT } },
    });
    expect(await byOwner.authorizeRequest(copyRequest(), sourceLookup())).toEqual({ allowed: true, denials: [], undone: [] });
  });

  test('refuses a check that carries a context key the reference does not list for its action and resource type', async () => {
    const checks = await authorizationChecks(copyRequest(), sourceLookup());
    const forged = { ...checks[0], context: { ...checks[0].context, [`aws:ResourceTag/${Tag.STACK_ID}`]: STACK_ID } };
    await expect(simulator(copyDestinations).authorize([forged])).rejects.toThrow(`supports no aws:ResourceTag/${Tag.STACK_ID}`);
  });

  test('does not let a policy on one image id allow creating a new image (id *), which one on image/* does', async () => {
    const request = ec2Request('CreateImage', { InstanceId: 'i-1', Name: 'n' });
    const lookup = new FakeLookup().add(REGION, 'instance', 'i-1', { tags: {}, owner: ACCOUNT });
    const instance = { Effect: 'Allow', Action: 'ec2:CreateImage', Resource: [`arn:aws:ec2:${REGION}:${ACCOUNT}:instance/*`, `arn:aws:ec2:${REGION}::snapshot/*`] };
    const oneImage = await simulator(instance, { Effect: 'Allow', Action: 'ec2:CreateImage', Resource: `arn:aws:ec2:${REGION}::image/ami-1` }).authorizeRequest(request, lookup);
    expect(oneImage.denials).toEqual([expect.stringContaining(`ec2:CreateImage on arn:aws:ec2:${REGION}::image/* (new image in ${REGION}): ImplicitlyDenied`)]);
    const anyImage = await simulator(instance, { Effect: 'Allow', Action: 'ec2:CreateImage', Resource: `arn:aws:ec2:${REGION}::image/*` }).authorizeRequest(request, lookup);
    expect(anyImage.allowed).toBe(true);
  });

  test('allows a Describe that supports no resource-level permissions on *, and not on an ARN', async () => {
    const request = ec2Request('DescribeImages', { 'Owner.1': 'self' });
    expect((await simulator({ Effect: 'Allow', Action: 'ec2:DescribeImages', Resource: '*' }).authorizeRequest(request, new FakeLookup())).allowed).toBe(true);
    const byArn = simulator({ Effect: 'Allow', Action: 'ec2:DescribeImages', Resource: `arn:aws:ec2:${REGION}::image/*` });
    expect((await byArn.authorizeRequest(request, new FakeLookup())).allowed).toBe(false);
  });

  test('leaves a snapshot it may not delete undone, not the DeregisterImage with DeleteAssociatedSnapshots', async () => {
    const lookup = new FakeLookup()
      .add(REGION, 'image', 'ami-2', { tags: OWN, owner: ACCOUNT, snapshotIds: ['snap-own', 'snap-other'] })
      .add(REGION, 'snapshot', 'snap-own', { tags: OWN, owner: ACCOUNT })
      .add(REGION, 'snapshot', 'snap-other', { tags: {}, owner: ACCOUNT });
    const decision = await simulator({
      Effect: 'Allow',
      Action: ['ec2:DeregisterImage', 'ec2:DeleteSnapshot'],
      Resource: '*',
      Condition: { StringEquals: { [`aws:ResourceTag/${Tag.STACK_ID}`]: STACK_ID } },
    }).authorizeRequest(ec2Request('DeregisterImage', { ImageId: 'ami-2', DeleteAssociatedSnapshots: 'true' }), lookup);
    expect(decision.allowed).toBe(true);
    expect(decision.undone.map((check) => check.resource)).toEqual([`arn:aws:ec2:${REGION}::snapshot/snap-other`]);
  });

  test('does not enforce a check on a resource that does not exist (EC2 answers NotFound)', async () => {
    const decision = await simulator().authorizeRequest(ec2Request('DeleteSnapshot', { SnapshotId: 'snap-gone' }), new FakeLookup());
    expect(decision.allowed).toBe(true);
  });

  test('says which explicit Deny statement denied a request', async () => {
    const decision = await simulator(
      { Effect: 'Allow', Action: 'ec2:DeleteSnapshot', Resource: '*' },
      { Sid: 'KeepOthers', Effect: 'Deny', Action: 'ec2:DeleteSnapshot', Resource: '*', Condition: { StringNotEquals: { 'ec2:Owner': '999999999999' } } },
    ).authorizeRequest(ec2Request('DeleteSnapshot', { SnapshotId: 'snap-1' }), new FakeLookup().add(REGION, 'snapshot', 'snap-1', { tags: {}, owner: ACCOUNT }));
    expect(decision.denials).toEqual([expect.stringMatching(/ExplicitlyDenied[\s\S]*denied by identity statement KeepOthers/)]);
  });
});

describe('the policy synthesized for a BakedImage', () => {
  let fixture: Fixture;
  let logicalId: string;
  beforeAll(() => {
    fixture = bakedImageFixture({ Image: () => ({ validation: ImageValidation.fromScript('true') }) });
    logicalId = fixture.imageLogicalIds.Image;
  });

  function createImage(instanceTags: Record<string, string>): Promise<{ allowed: boolean; denials: string[] }> {
    const builder = fixture.builders.Image;
    const tags = { [Tag.MANAGED_BY]: 'cdk-baked-image', [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId };
    const lookup = new FakeLookup().add(REGION, 'instance', builder.instanceId, { tags: instanceTags, owner: ACCOUNT });
    return fixture.simulator.authorizeRequest(ec2Request('CreateImage', {
      InstanceId: builder.instanceId, Name: 'image-0123456789abcdef', ...tagSpecifications(tags, 'image', 'snapshot'),
    }), lookup);
  }

  test('gives the builder the stack-id and logical-id tags it scopes CreateImage by', () => {
    expect(fixture.builders.Image.tags).toEqual(expect.objectContaining({ [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId }));
  });

  test('allows CreateImage of a builder that carries the stack-id and logical-id tags, and denies it of one without them', async () => {
    const allowed = await createImage(fixture.builders.Image.tags);
    expect(allowed.denials).toEqual([]);
    const denied = await createImage({ Name: 'someone else\'s instance' });
    expect(denied.allowed).toBe(false);
    expect(denied.denials.join('\n')).toContain(`ec2:CreateImage on arn:aws:ec2:${REGION}:${ACCOUNT}:instance/${fixture.builders.Image.instanceId}`);
  });

  test('allows a wildcard-only Describe on *', async () => {
    const decision = await fixture.simulator.authorizeRequest(ec2Request('DescribeImages', { 'Owner.1': 'self' }), new FakeLookup());
    expect(decision).toEqual({ allowed: true, denials: [], undone: [] });
  });

  test('allows the validation\'s launch of a tagged test instance into the builder\'s subnet and security group', async () => {
    const runInstances = fixture.policies.flatMap((p: PolicyDocument) => [p.Statement].flat())
      .filter((s) => [s.Action].flat().includes('ec2:RunInstances')).flatMap((s) => [s.Resource].flat()) as string[];
    const subnetId = runInstances.find((arn) => arn.includes(':subnet/'))!.split('/')[1];
    const groupIds = runInstances.filter((arn) => arn.includes(':security-group/')).map((arn) => arn.split('/')[1]);
    const tags = { [Tag.MANAGED_BY]: 'cdk-baked-image', [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId, [Tag.VALIDATES]: 'ami-1' };
    const lookup = new FakeLookup().add(REGION, 'image', 'ami-1', { tags, owner: ACCOUNT }).add(REGION, 'subnet', subnetId, { tags: {}, owner: ACCOUNT });
    groupIds.forEach((id) => lookup.add(REGION, 'security-group', id, { tags: {}, owner: ACCOUNT }));
    const decision = await fixture.simulator.authorizeRequest(testInstanceRequest('ami-1', 't3.micro', subnetId, groupIds, tags), lookup);
    expect(decision.denials).toEqual([]);
  });

  test('allows deleting an image of this BakedImage and its snapshot, and denies deleting another stack\'s', async () => {
    const other = { [Tag.STACK_ID]: STACK_ID.replace('TestStack', 'OtherStack'), [Tag.LOGICAL_ID]: logicalId };
    const lookup = new FakeLookup()
      .add(REGION, 'image', 'ami-own', { tags: { [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId }, owner: ACCOUNT })
      .add(REGION, 'snapshot', 'snap-own', { tags: { [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId }, owner: ACCOUNT })
      .add(REGION, 'image', 'ami-other', { tags: other, owner: ACCOUNT });
    const decide = (action: string, params: Record<string, string>) => fixture.simulator.authorizeRequest(ec2Request(action, params), lookup);
    expect((await decide('DeregisterImage', { ImageId: 'ami-own' })).denials).toEqual([]);
    expect((await decide('DeleteSnapshot', { SnapshotId: 'snap-own' })).denials).toEqual([]);
    expect((await decide('DeregisterImage', { ImageId: 'ami-other' })).allowed).toBe(false);
  });

  test('allows making an image of this stack IMDSv2-only, and denies it on another stack\'s image', async () => {
    const other = { [Tag.STACK_ID]: STACK_ID.replace('TestStack', 'OtherStack'), [Tag.LOGICAL_ID]: logicalId };
    const lookup = new FakeLookup()
      .add(REGION, 'image', 'ami-own', { tags: { [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId }, owner: ACCOUNT })
      .add(REGION, 'image', 'ami-other', { tags: other, owner: ACCOUNT })
      .add(REGION, 'image', 'ami-untagged', { tags: {}, owner: ACCOUNT });
    const imdsv2Only = (imageId: string) => fixture.simulator.authorizeRequest(
      ec2Request('ModifyImageAttribute', { 'ImageId': imageId, 'ImdsSupport.Value': 'v2.0' }), lookup);
    expect((await imdsv2Only('ami-own')).denials).toEqual([]);
    expect((await imdsv2Only('ami-other')).allowed).toBe(false);
    expect((await imdsv2Only('ami-untagged')).allowed).toBe(false);
  });
});

describe('fast snapshot restore, decided as AWS would', () => {
  const own = { [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: 'Image' };
  const other = { [Tag.STACK_ID]: STACK_ID.replace('TestStack', 'OtherStack'), [Tag.LOGICAL_ID]: 'Image' };
  const lookup = new FakeLookup()
    .add(REGION, 'snapshot', 'snap-own', { tags: own, owner: ACCOUNT })
    .add(REGION, 'snapshot', 'snap-other', { tags: other, owner: ACCOUNT })
    .add('us-west-2', 'snapshot', 'snap-west', { tags: own, owner: ACCOUNT });
  const request = (action: string, snapshotId: string, zone: string, region = REGION) =>
    ec2Request(action, { 'SourceSnapshotId.1': snapshotId, 'AvailabilityZone.1': zone }, region);

  test('with fastSnapshotRestoreZones: enabling only for this stack\'s snapshots of its region; reading everywhere', async () => {
    const fixture = bakedImageFixture({ Image: () => ({ fastSnapshotRestoreZones: ['us-east-1a'] }) });
    const decide = (apiRequest: ApiRequest) => fixture.simulator.authorizeRequest(apiRequest, lookup);
    expect((await decide(request('EnableFastSnapshotRestores', 'snap-own', 'us-east-1a'))).denials).toEqual([]);
    expect((await decide(request('EnableFastSnapshotRestores', 'snap-other', 'us-east-1a'))).allowed).toBe(false);
    expect((await decide(request('EnableFastSnapshotRestores', 'snap-west', 'us-west-2a', 'us-west-2'))).allowed).toBe(false);
    expect((await decide(ec2Request('DescribeFastSnapshotRestores', { 'Filter.1.Name': 'snapshot-id', 'Filter.1.Value.1': 'snap-own' }))).denials).toEqual([]);
  });

  test('without it: no enabling, but disabling this stack\'s snapshots (in any region) stays for images an earlier template enabled', async () => {
    const fixture = bakedImageFixture({ Image: () => ({}) });
    const decide = (apiRequest: ApiRequest) => fixture.simulator.authorizeRequest(apiRequest, lookup);
    expect((await decide(request('EnableFastSnapshotRestores', 'snap-own', 'us-east-1a'))).allowed).toBe(false);
    expect((await decide(request('DisableFastSnapshotRestores', 'snap-own', 'us-east-1a'))).denials).toEqual([]);
    expect((await decide(request('DisableFastSnapshotRestores', 'snap-west', 'us-west-2a', 'us-west-2'))).denials).toEqual([]);
    expect((await decide(request('DisableFastSnapshotRestores', 'snap-other', 'us-east-1a'))).allowed).toBe(false);
  });
});

describe('the policy synthesized for a BakedImage with a copy, sharing, validation and keys', () => {
  const WEST = 'us-west-2';
  const WEST_KEY = `arn:aws:kms:${WEST}:${ACCOUNT}:key/west`;
  let fixture: Fixture;
  let lookup: FakeLookup;
  let requests: Record<string, ApiRequest>;

  beforeAll(() => {
    fixture = bakedImageFixture({
      Image: (stack) => ({
        copies: [{ region: WEST, encryptionKey: kms.Key.fromKeyArn(stack, 'WestKey', WEST_KEY) }],
        volumeEncryptionKey: new kms.Key(stack, 'Key'),
        shareWith: { accounts: ['444455556666'] },
        validation: ImageValidation.fromScript('true'),
        keepSupersededImages: 2,
      }),
    });
    const logicalId = fixture.imageLogicalIds.Image;
    const builderId = fixture.builders.Image.instanceId;
    // The tags the handlers give the image, its copy and the test instance (lambda/bake-image).
    const own = { Name: 'image-x', [Tag.MANAGED_BY]: 'cdk-baked-image', [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId, [Tag.IMAGE_NAME]: 'image-x' };
    const copy = { ...own, [Tag.COPIED_FROM]: `${REGION}/ami-home` };
    const test = { ...own, [Tag.VALIDATES]: 'ami-home', [Tag.VALIDATION_REQUEST]: 'request-1' };
    const launchResources = fixture.policies.flatMap((p) => [p.Statement].flat())
      .filter((s) => [s.Action].flat().includes('ec2:RunInstances')).flatMap((s) => [s.Resource].flat()) as string[];
    const subnetId = launchResources.find((arn) => arn.includes(':subnet/'))!.split('/')[1];
    const groupIds = launchResources.filter((arn) => arn.includes(':security-group/')).map((arn) => arn.split('/')[1]);
    lookup = new FakeLookup()
      .add(REGION, 'instance', builderId, { tags: fixture.builders.Image.tags, owner: ACCOUNT })
      .add(REGION, 'image', 'ami-home', { tags: { ...own, [Tag.COPY_REGIONS]: WEST }, owner: ACCOUNT, snapshotIds: ['snap-home'] })
      .add(REGION, 'snapshot', 'snap-home', { tags: own, owner: ACCOUNT })
      .add(WEST, 'image', 'ami-west', { tags: copy, owner: ACCOUNT, snapshotIds: ['snap-west'] })
      .add(WEST, 'snapshot', 'snap-west', { tags: copy, owner: ACCOUNT })
      .add(REGION, 'instance', 'i-test', { tags: test, owner: ACCOUNT })
      .add(REGION, 'subnet', subnetId, { tags: {}, owner: ACCOUNT });
    groupIds.forEach((id) => lookup.add(REGION, 'security-group', id, { tags: {}, owner: ACCOUNT }));
    const cfn = (action: string, params: Record<string, string>): ApiRequest => ({ ...ec2Request(action, params), service: 'cloudformation' });
    requests = {
      'DescribeImages by name': ec2Request('DescribeImages', { 'Owner.1': 'self', 'Filter.1.Name': 'name', 'Filter.1.Value.1': 'image-x' }),
      'CreateImage of the builder': ec2Request('CreateImage', { InstanceId: builderId, Name: 'image-x', ...tagSpecifications(own, 'image', 'snapshot') }),
      'CreateTags of the copy regions': ec2Request('CreateTags', { 'ResourceId.1': 'ami-home', 'Tag.1.Key': Tag.COPY_REGIONS, 'Tag.1.Value': WEST }),
      'DescribeImageAttribute of the copy': ec2Request('DescribeImageAttribute', { ImageId: 'ami-west', Attribute: 'launchPermission' }, WEST),
      'ModifyImageAttribute of the image': ec2Request('ModifyImageAttribute', { 'ImageId': 'ami-home', 'LaunchPermission.Add.1.UserId': '444455556666' }),
      'ModifyImageAttribute of the copy': ec2Request('ModifyImageAttribute', { 'ImageId': 'ami-west', 'LaunchPermission.Add.1.UserId': '444455556666' }, WEST),
      'EnableImageDeprecation of the copy': ec2Request('EnableImageDeprecation', { ImageId: 'ami-west', DeprecateAt: '2030-01-01T00:00:00Z' }, WEST),
      'EnableImageDeregistrationProtection of the image': ec2Request('EnableImageDeregistrationProtection', { ImageId: 'ami-home', WithCooldown: 'false' }),
      'RunInstances of the test instance': testInstanceRequest('ami-home', 't3.medium', subnetId, groupIds, test),
      'GetConsoleOutput of the test instance': ec2Request('GetConsoleOutput', { InstanceId: 'i-test', Latest: 'true' }),
      'CreateTags of the validation passed': ec2Request('CreateTags', { 'ResourceId.1': 'ami-home', 'Tag.1.Key': Tag.VALIDATED, 'Tag.1.Value': 'fingerprint' }),
      'TerminateInstances of the test instance': ec2Request('TerminateInstances', { 'InstanceId.1': 'i-test' }),
      'StopInstances of the builder': ec2Request('StopInstances', { 'InstanceId.1': builderId }),
      'DescribeStacks of its stack': cfn('DescribeStacks', { StackName: STACK_ID }),
      'DescribeStackResource of the image': cfn('DescribeStackResource', { StackName: STACK_ID, LogicalResourceId: logicalId }),
      'DisableImageDeregistrationProtection of the copy': ec2Request('DisableImageDeregistrationProtection', { ImageId: 'ami-west' }, WEST),
      'DeregisterImage of the copy with its snapshots': ec2Request('DeregisterImage', { ImageId: 'ami-west', DeleteAssociatedSnapshots: 'true' }, WEST),
      'DeleteSnapshot of the image': ec2Request('DeleteSnapshot', { SnapshotId: 'snap-home' }),
    };
  });

  // CopyImage is decided in the defect scenarios below.
  test('allows every call of a bake, its sharing, validation and deletion (in both regions), each on its own resources', async () => {
    const denials: string[] = [];
    for (const request of Object.values(requests)) {
      const decision = await fixture.simulator.authorizeRequest(request, lookup);
      denials.push(...decision.denials, ...decision.undone.map((check) => `undone: ${check.action} on ${check.resource}`));
    }
    expect(denials).toEqual([]);
  });
});

describe('what the policy of 7fad8a7 got wrong, decided as AWS would', () => {
  // Each failed against that commit's synthesized policy (see iam-scenarios.ts for the defect it shows).
  test.each(DEFECT_SCENARIOS.map((scenario) => [scenario.name, scenario] as const))('%s', async (_name, scenario) => {
    const decision = await scenario.decide();
    expect({ allowed: decision.allowed, denials: decision.denials }).toEqual({
      allowed: scenario.expected === 'allowed',
      denials: scenario.expected === 'allowed' ? [] : expect.any(Array),
    });
  });
});
