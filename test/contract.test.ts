/**
 * The one boundary between the two halves of the product: a synthesized BakedImage's custom-resource
 * properties, as CloudFormation would resolve them, decoded by the handler's own parser. A property written
 * under one name and read under another, a shape changed on one side, or a default that differs between
 * the construct and the handler fails here.
 */
import { App, Duration, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { BakedImage, BakedImageProps, BuilderAfterBake, ImageValidation, Sanitize } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';
// The decoder the handler bundle runs (lambda/bake-image imports it from the contract).
import { decodeProperties } from '../src/private/contract';
import { encodeProperties, IMAGE_INPUTS, Prop, type BakeProperties } from '../src/private/contract';

removeTemporaryAssembliesAfterAll();

const ACCOUNT = '111122223333';
const REGION = 'us-east-1';
const BASE_AMI = 'ami-0123456789abcdef0';
/** What CloudFormation resolves the builder's Ref, its subnet and its security group to, here. */
const RESOLVED = { instance: 'i-0a1b2c3d4e5f60718', subnet: 'subnet-0a1b2c3d4e5f60718', securityGroup: 'sg-0a1b2c3d4e5f60718' };
const WEST_KEY = `arn:aws:kms:us-west-2:${ACCOUNT}:key/11111111-2222-3333-4444-555555555555`;
const EU_KEY = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/66666666-7777-8888-9999-000000000000`;
const ORGANIZATION = `arn:aws:organizations::${ACCOUNT}:organization/o-abcdef1234`;
const UNIT = `arn:aws:organizations::${ACCOUNT}:ou/o-abcdef1234/ou-ab12-cdef3456`;

/** Synthesizes one BakedImage and returns its custom resource's properties, resolved the way CloudFormation would. */
function synthesizedProperties(
  props: Partial<BakedImageProps> = {},
  keys: (stack: Stack) => Partial<BakedImageProps> = () => ({}),
): Record<string, unknown> {
  const app = new App();
  const stack = new Stack(app, 'ContractStack', { env: { account: ACCOUNT, region: REGION } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 1 });
  new BakedImage(stack, 'Web', {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ [REGION]: BASE_AMI }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
    ...keys(stack),
  });
  const template = Template.fromStack(stack).toJSON();
  const images = Object.values<any>(template.Resources).filter((resource) => resource.Type === 'Custom::BakedImage');
  expect(images).toHaveLength(1);
  const { ServiceToken: _token, ...properties } = images[0].Properties;
  return resolve(properties, template.Resources) as Record<string, unknown>;
}

/** Resolves the intrinsics a BakedImage's properties hold: Refs to the builder and its subnet, the group's id. */
function resolve(value: unknown, resources: Record<string, any>): unknown {
  if (Array.isArray(value)) {
    return value.map((item) => resolve(item, resources));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const object = value as Record<string, unknown>;
  if ('Ref' in object) {
    const type = resources[object.Ref as string]?.Type;
    const byType: Record<string, string> = { 'AWS::EC2::Instance': RESOLVED.instance, 'AWS::EC2::Subnet': RESOLVED.subnet };
    if (!byType[type]) {
      throw new Error(`The test cannot resolve a Ref to ${String(object.Ref)} (${type}): add it to resolve()`);
    }
    return byType[type];
  }
  if ('Fn::GetAtt' in object) {
    const [logicalId, attribute] = object['Fn::GetAtt'] as [string, string];
    if (resources[logicalId]?.Type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId') {
      return RESOLVED.securityGroup;
    }
    throw new Error(`The test cannot resolve Fn::GetAtt ${logicalId}.${attribute}: add it to resolve()`);
  }
  if ('Fn::Join' in object) {
    const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
    return parts.map((part) => resolve(part, resources)).join(separator);
  }
  return Object.fromEntries(Object.entries(object).map(([key, item]) => [key, resolve(item, resources)]));
}

const EVERY_PROP: Partial<BakedImageProps> = {
  initOptions: { configSets: ['default'], timeout: Duration.minutes(20) },
  instanceType: new ec2.InstanceType('m6i.large'),
  rootDeviceName: '/dev/xvda',
  rootVolumeSize: Size.gibibytes(30),
  ssmSessionPermissions: true,
  imageNamePrefix: 'web-fleet',
  imageDescription: 'The web fleet',
  rebakeTrigger: '2026-W48',
  builderAfterBake: BuilderAfterBake.TERMINATE,
  sanitize: Sanitize.defaults(),
  noReboot: true,
  shareWith: { accounts: ['444455556666'], organizationArns: [ORGANIZATION], organizationalUnitArns: [UNIT] },
  keepSupersededImages: 3,
  deprecateAfter: Duration.days(90),
  deregistrationProtection: true,
  requireImdsv2: false,
  fastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b'],
  imageIdParameterName: '/web/ami',
  validation: ImageValidation.fromCommands(['curl -sf localhost'], { timeout: Duration.minutes(5), instanceType: new ec2.InstanceType('t3.small') }),
  copies: [{ region: 'us-west-2' }, { region: 'eu-west-1' }],
  bakeTimeout: Duration.minutes(40),
};

describe('the custom resource properties a BakedImage synthesizes', () => {
  test('decode, with every prop set, to exactly what the props ask for', () => {
    const decoded = decodeProperties(synthesizedProperties(EVERY_PROP, (stack) => ({
      volumeEncryptionKey: new kms.Key(stack, 'Key'),
      copies: [
        { region: 'us-west-2', encryptionKey: kms.Key.fromKeyArn(stack, 'West', WEST_KEY) },
        { region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'Eu', EU_KEY) },
      ],
    })));

    expect(decoded).toEqual<BakeProperties>({
      instanceId: RESOLVED.instance,
      namePrefix: 'web-fleet',
      description: 'The web fleet',
      noReboot: true,
      rebakeTrigger: '2026-W48',
      removal: 'destroy',
      builderAfterBake: BuilderAfterBake.TERMINATE,
      bakeTimeoutSeconds: 2400,
      sharing: { accounts: ['444455556666'], organizationArns: [ORGANIZATION], organizationalUnitArns: [UNIT] },
      deprecateAfterSeconds: 90 * 24 * 3600,
      deregistrationProtection: true,
      requireImdsv2: false,
      fastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b'],
      keepSuperseded: 3,
      copyToRegions: ['us-west-2', 'eu-west-1'],
      copyKmsKeyIds: { 'us-west-2': WEST_KEY, 'eu-west-1': EU_KEY },
      copyParameterName: '/web/ami',
      validation: {
        userData: expect.stringContaining('curl -sf localhost'),
        timeoutSeconds: 300,
        instanceType: 't3.small',
        subnetId: RESOLVED.subnet,
        securityGroupIds: [RESOLVED.securityGroup],
        fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      },
      manifest: {
        baseImageId: BASE_AMI,
        configSets: 'default',
        initFingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
        libraryVersion: expect.any(String),
      },
    });
  });

  test('decode, with only the required props, to the documented defaults', () => {
    const decoded = decodeProperties(synthesizedProperties());

    expect(decoded).toEqual<BakeProperties>({
      instanceId: RESOLVED.instance,
      namePrefix: expect.stringMatching(/^ContractStack-Web-/),
      description: 'Baked by cdk-baked-image from ContractStack/Web',
      noReboot: false,
      rebakeTrigger: undefined,
      removal: 'destroy',
      builderAfterBake: BuilderAfterBake.STOP,
      bakeTimeoutSeconds: 3000,
      sharing: { accounts: [], organizationArns: [], organizationalUnitArns: [] },
      deprecateAfterSeconds: undefined,
      deregistrationProtection: false,
      requireImdsv2: true,
      fastSnapshotRestoreZones: [],
      keepSuperseded: 0,
      copyToRegions: [],
      copyKmsKeyIds: {},
      copyParameterName: undefined,
      validation: undefined,
      manifest: {
        baseImageId: BASE_AMI,
        configSets: 'default',
        initFingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
        libraryVersion: expect.any(String),
      },
    });
  });

  test.each([
    [RemovalPolicy.RETAIN, 'retain'],
    [RemovalPolicy.DESTROY, 'destroy'],
  ])('decode removalPolicy %s as %s', (removalPolicy, removal) => {
    expect(decodeProperties(synthesizedProperties({ removalPolicy })).removal).toBe(removal);
  });

  test.each(Object.values(BuilderAfterBake))('decode builderAfterBake %s as itself', (builderAfterBake) => {
    expect(decodeProperties(synthesizedProperties({ builderAfterBake })).builderAfterBake).toBe(builderAfterBake);
  });

  test('name only properties the contract knows', () => {
    const known: string[] = Object.values(Prop);
    const written = Object.keys(synthesizedProperties({ ...EVERY_PROP, shareWith: undefined }));
    expect(written.filter((name) => !known.includes(name))).toEqual([]);
  });

  test('are what the encoder writes for the decoded spec: decoding loses nothing', () => {
    const written = synthesizedProperties({ ...EVERY_PROP, shareWith: undefined });
    const { validation, ...decoded } = decodeProperties(written);
    const { fingerprint: _fingerprint, ...validationSpec } = validation!;
    expect(encodeProperties({ ...decoded, validation: validationSpec })).toEqual(written);
  });

  test('put every image input into the builder: a change of any of them replaces it', () => {
    const builderId = (props: Partial<BakedImageProps>) => {
      const app = new App();
      const stack = new Stack(app, 'ContractStack', { env: { account: ACCOUNT, region: REGION } });
      new BakedImage(stack, 'Web', {
        vpc: new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 1 }),
        machineImage: ec2.MachineImage.genericLinux({ [REGION]: BASE_AMI }),
        init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
        ...props,
      });
      return Object.keys(Template.fromStack(stack).findResources('AWS::EC2::Instance'));
    };
    const changes: Record<Exclude<keyof typeof IMAGE_INPUTS, 'instanceId'>, Partial<BakedImageProps>> = {
      namePrefix: { imageNamePrefix: 'other' },
      description: { imageDescription: 'other' },
      noReboot: { noReboot: true },
      rebakeTrigger: { rebakeTrigger: 'other' },
    };
    const before = builderId({});
    for (const [input, change] of Object.entries(changes)) {
      expect([input, builderId(change)]).not.toEqual([input, before]);
    }
    // Not an image input of the handler (an image is made IMDSv2-only in place), but EC2 cannot undo it: turning it
    // off must bake a new image from a new builder. The default writes nothing, so an upgrade keeps the builder.
    expect(builderId({ requireImdsv2: false })).not.toEqual(before);
    expect(builderId({ requireImdsv2: true })).toEqual(before);
  });
});
