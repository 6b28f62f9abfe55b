import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BakedImage, BakedImageProps } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';
import { decodeFastSnapshotRestoreZones, Prop } from '../src/private/contract';

removeTemporaryAssembliesAfterAll();

const BASE_AMI = 'ami-0123456789abcdef0';

function bake(props: Partial<BakedImageProps> = {}, region: string | null = 'us-east-1'): { stack: Stack; image: BakedImage } {
  const app = new App();
  const stack = new Stack(app, 'TestStack', region ? { env: { account: '123456789012', region } } : {});
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const image = new BakedImage(stack, 'Image', {
    vpc,
    machineImage: region ? ec2.MachineImage.genericLinux({ [region]: BASE_AMI }) : ec2.MachineImage.latestAmazonLinux2023(),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
  });
  return { stack, image };
}

function customResourceProperties(stack: Stack): Record<string, unknown> {
  const resources = Object.values(Template.fromStack(stack).findResources('Custom::BakedImage'));
  expect(resources).toHaveLength(1);
  return resources[0].Properties;
}

/** Every statement of the handlers' role that grants an action, by action. */
function statementsGranting(stack: Stack, action: string): any[] {
  const policies = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
  return policies.flatMap((policy) => policy.Properties.PolicyDocument.Statement)
    .filter((statement: any) => [statement.Action].flat().includes(action));
}

describe('fastSnapshotRestoreZones', () => {
  test('hands the zones to the handler, and grants enabling on this stack\'s snapshots of its region only', () => {
    const { stack, image } = bake({ fastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b'] });

    expect(decodeFastSnapshotRestoreZones(customResourceProperties(stack))).toEqual(['us-east-1a', 'us-east-1b']);
    expect(image.fastSnapshotRestoreZones).toEqual(['us-east-1a', 'us-east-1b']);
    const enable = statementsGranting(stack, 'ec2:EnableFastSnapshotRestores');
    expect(enable).toHaveLength(1);
    expect(enable[0]).toEqual(expect.objectContaining({
      Effect: 'Allow',
      Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ec2:', { Ref: 'AWS::Region' }, '::snapshot/*']] },
      Condition: { StringEquals: { 'aws:ResourceTag/cdk-baked-image:stack-id': { Ref: 'AWS::StackId' } } },
    }));
  });

  test('warns with the price when on', () => {
    const { stack } = bake({ fastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b'] });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image',
      Match.stringLikeRegexp('Fast snapshot restore in 2 Availability Zone\\(s\\) is billed while enabled.*USD 0.75 in us-east-1: about USD 1080 per 30 days'));
  });

  test('is off by default: no property, no enabling permission, no warning; disabling and reading stay in the base statements', () => {
    const { stack, image } = bake();

    expect(customResourceProperties(stack)).not.toHaveProperty(Prop.FAST_SNAPSHOT_RESTORE_ZONES);
    expect(image.fastSnapshotRestoreZones).toEqual([]);
    expect(statementsGranting(stack, 'ec2:EnableFastSnapshotRestores')).toEqual([]);
    // A later template without fast snapshot restore must still disable it for images an earlier one enabled it for.
    expect(statementsGranting(stack, 'ec2:DisableFastSnapshotRestores')).toHaveLength(1);
    expect(statementsGranting(stack, 'ec2:DescribeFastSnapshotRestores')).toHaveLength(1);
    Annotations.fromStack(stack).hasNoWarning('/TestStack/Image', Match.stringLikeRegexp('Fast snapshot restore'));
  });

  test.each([
    [['us-west-2a'], /fastSnapshotRestoreZones must name Availability Zones of the stack's region \(us-east-1a, us-east-1b, \.\.\.\), got 'us-west-2a'/],
    [['us-east-1'], /got 'us-east-1'/],
    [['use1-az1'], /got 'use1-az1'/],
    [['us-east-1aa'], /got 'us-east-1aa'/],
    [['us-east-1a', 'us-east-1a'], /names a zone twice/],
    [Array.from({ length: 11 }, (_, i) => `us-east-1${String.fromCharCode(97 + (i % 6))}`), /at most 10 Availability Zones, got 11/],
  ])('refuses %j', (zones, message) => {
    expect(() => bake({ fastSnapshotRestoreZones: zones })).toThrow(message);
  });

  test('accepts any zone name of the right shape when the stack\'s region is not known at synth', () => {
    const { stack } = bake({ fastSnapshotRestoreZones: ['eu-west-1a'] }, null);
    expect(decodeFastSnapshotRestoreZones(customResourceProperties(stack))).toEqual(['eu-west-1a']);
  });

  test('warns when more images of the stack have it than the default quota of 5 snapshots per Region holds through rebakes', () => {
    const app = new App();
    const stack = new Stack(app, 'TestStack', { env: { account: '123456789012', region: 'us-east-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const images = ['One', 'Two', 'Three'].map((id) => new BakedImage(stack, id, {
      vpc,
      machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': BASE_AMI }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
      imageNamePrefix: id,
      fastSnapshotRestoreZones: ['us-east-1a'],
    }));
    const annotations = Annotations.fromStack(stack);
    for (const image of images.slice(0, 2)) {
      annotations.hasNoWarning(`/TestStack/${image.node.id}`, Match.stringLikeRegexp('at most 5 snapshots per Region'));
    }
    annotations.hasWarning('/TestStack/Three', Match.stringLikeRegexp('more than 2 images with fast snapshot restore.*at most 5 snapshots per Region'));
  });

  test('refuses removalPolicy RETAIN: nothing would disable it on the retained image', () => {
    expect(() => bake({ fastSnapshotRestoreZones: ['us-east-1a'], removalPolicy: RemovalPolicy.RETAIN }))
      .toThrow(/fastSnapshotRestoreZones cannot be combined with removalPolicy RETAIN/);
  });
});
