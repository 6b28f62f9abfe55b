import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Errors, PropertyInjectors, Size, Stack, Token } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BakedImage, BakedImageLaunchTemplateProps, BakedImageProps, VolumeInitialization } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';
import { thrownBy } from './support/thrown';

removeTemporaryAssembliesAfterAll();

const BASE_AMI = 'ami-0123456789abcdef0';

/** A Windows base image and a config it can run (cfn-init's yum packages are Linux only). */
const WINDOWS: Partial<BakedImageProps> = {
  machineImage: ec2.MachineImage.genericWindows({ 'us-east-1': BASE_AMI }),
  init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('echo baked')),
};

function newStack(app = new App()): { stack: Stack; vpc: ec2.Vpc } {
  const stack = new Stack(app, 'TestStack', { env: { account: '123456789012', region: 'us-east-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  return { stack, vpc };
}

function bake(stack: Stack, vpc: ec2.IVpc, props: Partial<BakedImageProps> = {}): BakedImage {
  return new BakedImage(stack, 'Image', {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': BASE_AMI }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
  });
}

/** The LaunchTemplateData of the stack's only launch template. */
function launchTemplateData(stack: Stack): any {
  const templates = Object.values<any>(Template.fromStack(stack).findResources('AWS::EC2::LaunchTemplate'));
  expect(templates).toHaveLength(1);
  return templates[0].Properties.LaunchTemplateData;
}

/** A template made by newLaunchTemplate with these props, and its LaunchTemplateData. */
/** The cheapest provisioned rate: the tests of the mapping the template gets. */
const AT_100 = { rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.mebibytes(100)) };

function templateWith(
  props: BakedImageLaunchTemplateProps = {},
  imageProps: Partial<BakedImageProps> = {},
): { data: any; image: BakedImage; stack: Stack } {
  const { stack, vpc } = newStack();
  const image = bake(stack, vpc, imageProps);
  image.newLaunchTemplate(stack, 'Template', props);
  return { data: launchTemplateData(stack), image, stack };
}

describe('the root volume of newLaunchTemplate', () => {
  test('is left to EBS by default (lazy): no mapping is added and no rate is set', () => {
    const { data, stack } = templateWith();
    expect(data.BlockDeviceMappings).toBeUndefined();
    expect(JSON.stringify(Template.fromStack(stack).toJSON())).not.toContain('VolumeInitializationRate');
  });

  test('at a provisioned rate, is one gp3 mapping of the root device, deleted on termination, without size or encryption', () => {
    const { data } = templateWith(AT_100);
    expect(data.BlockDeviceMappings).toEqual([{
      DeviceName: '/dev/xvda',
      Ebs: { VolumeType: 'gp3', DeleteOnTermination: true, VolumeInitializationRate: 100 },
    }]);
  });

  test('warns that a rate replaces the image\'s fast snapshot restore; says nothing when lazy', () => {
    const withRate = templateWith({ rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.mebibytes(200)) },
      { fastSnapshotRestoreZones: ['us-east-1a'] });
    Annotations.fromStack(withRate.stack).hasWarning('/TestStack', Match.stringLikeRegexp('sets 200 MiB/s, but TestStack/Image has fast snapshot restore in us-east-1a'));
    const lazy = templateWith({}, { fastSnapshotRestoreZones: ['us-east-1a'] });
    Annotations.fromStack(lazy.stack).hasNoWarning('/TestStack', Match.stringLikeRegexp('fast snapshot restore in'));
  });

  test('is initialized at the rate given', () => {
    expect(templateWith({ rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.mebibytes(300)) })
      .data.BlockDeviceMappings[0].Ebs.VolumeInitializationRate).toBe(300);
    // A rate in other units is converted to whole MiB/s.
    expect(templateWith({ rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.kibibytes(200 * 1024)) })
      .data.BlockDeviceMappings[0].Ebs.VolumeInitializationRate).toBe(200);
  });

  test('is left to EBS when lazy: no mapping is added and no rate is set', () => {
    const { data, stack } = templateWith({ rootVolumeInitialization: VolumeInitialization.lazy() });
    expect(data.BlockDeviceMappings).toBeUndefined();
    expect(JSON.stringify(Template.fromStack(stack).toJSON())).not.toContain('VolumeInitializationRate');
  });

  test('keeps the user\'s block devices as given when lazy', () => {
    const { data } = templateWith({
      rootVolumeInitialization: VolumeInitialization.lazy(),
      blockDevices: [{ deviceName: '/dev/xvdb', volume: ec2.BlockDeviceVolume.ebs(10) }],
    });
    expect(data.BlockDeviceMappings).toEqual([{ DeviceName: '/dev/xvdb', Ebs: { VolumeSize: 10 } }]);
  });

  test('is added after the user\'s block devices when none of them is the root device', () => {
    const { data } = templateWith({
      ...AT_100,
      blockDevices: [
        { deviceName: '/dev/xvdb', volume: ec2.BlockDeviceVolume.ebs(10) },
        { deviceName: '/dev/xvdc', volume: ec2.BlockDeviceVolume.ephemeral(0) },
      ],
    });
    expect(data.BlockDeviceMappings).toEqual([
      { DeviceName: '/dev/xvdb', Ebs: { VolumeSize: 10 } },
      { DeviceName: '/dev/xvdc', VirtualName: 'ephemeral0' },
      { DeviceName: '/dev/xvda', Ebs: { VolumeType: 'gp3', DeleteOnTermination: true, VolumeInitializationRate: 100 } },
    ]);
  });

  test('gets the rate on the user\'s own mapping of the root device, and no second mapping of it', () => {
    const { data } = templateWith({
      rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.mebibytes(200)),
      blockDevices: [
        { deviceName: '/dev/xvdb', volume: ec2.BlockDeviceVolume.ebs(10) },
        { deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(30, { volumeType: ec2.EbsDeviceVolumeType.GP3, iops: 4000 }) },
      ],
    });
    expect(data.BlockDeviceMappings).toEqual([
      { DeviceName: '/dev/xvdb', Ebs: { VolumeSize: 10 } },
      { DeviceName: '/dev/xvda', Ebs: { VolumeSize: 30, VolumeType: 'gp3', Iops: 4000, VolumeInitializationRate: 200 } },
    ]);
  });

  test('throws when the user maps the root device to no device, naming the device and the fix', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const error = thrownBy(() => image.newLaunchTemplate(stack, 'Template', {
      ...AT_100,
      blockDevices: [{ deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(8), mappingEnabled: false }],
    }));
    expect(Errors.isValidationError(error)).toBe(true);
    expect(error.message).toContain('TestStack/Template: blockDevices maps the image\'s root device /dev/xvda to no device');
    expect(error.message).toContain('VolumeInitialization.lazy()');
  });

  test('warns and sets no rate when a device name is a token, rather than risk two mappings of one device', () => {
    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    image.newLaunchTemplate(stack, 'Template', {
      ...AT_100,
      blockDevices: [{ deviceName: Token.asString({ Ref: 'DeviceName' }), volume: ec2.BlockDeviceVolume.ebs(8) }],
    });
    const data = launchTemplateData(stack);
    expect(data.BlockDeviceMappings).toHaveLength(1);
    expect(JSON.stringify(data)).not.toContain('VolumeInitializationRate');
    Annotations.fromStack(stack).hasWarning('/TestStack/Template', Match.stringLikeRegexp('cannot be told apart'));
  });

  test('maps /dev/sda1 for a Windows image, and the explicit rootDeviceName of a Linux one', () => {
    const windows = templateWith(AT_100, WINDOWS);
    expect(windows.data.BlockDeviceMappings.map((mapping: any) => mapping.DeviceName)).toEqual(['/dev/sda1']);
    const ubuntu = templateWith(AT_100, { rootDeviceName: '/dev/sda1' });
    expect(ubuntu.data.BlockDeviceMappings.map((mapping: any) => mapping.DeviceName)).toEqual(['/dev/sda1']);
  });

  test('is left alone when the template launches another image, and a rate for it is an error', () => {
    const other = ec2.MachineImage.genericLinux({ 'us-east-1': 'ami-0fedcba9876543210' });
    expect(templateWith({ machineImage: other }).data.BlockDeviceMappings).toBeUndefined();

    const { stack, vpc } = newStack();
    const image = bake(stack, vpc);
    const error = thrownBy(() => image.newLaunchTemplate(stack, 'Template', {
      machineImage: other,
      rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.mebibytes(100)),
    }));
    expect(Errors.isValidationError(error)).toBe(true);
    expect(error.message).toContain('machineImage is another image');
  });

  test('does not pass rootVolumeInitialization on to ec2.LaunchTemplate', () => {
    const app = new App();
    const given: Array<Record<string, unknown>> = [];
    PropertyInjectors.of(app).add({
      constructUniqueId: ec2.LaunchTemplate.PROPERTY_INJECTION_ID,
      inject: (props: Record<string, unknown>) => {
        given.push(props);
        return props;
      },
    });
    const { stack, vpc } = newStack(app);
    bake(stack, vpc).newLaunchTemplate(stack, 'Template', { rootVolumeInitialization: VolumeInitialization.lazy() });
    expect(given).toHaveLength(1);
    expect(Object.keys(given[0])).not.toContain('rootVolumeInitialization');
  });

  test('passes cfn-lint with zero errors, with the added mapping and with the user\'s own root mapping', () => {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'baked-image-launch-template-'));
    try {
      const { stack, vpc } = newStack(new App({ outdir }));
      const image = bake(stack, vpc);
      image.newLaunchTemplate(stack, 'Default', AT_100);
      image.newLaunchTemplate(stack, 'Own', {
        rootVolumeInitialization: VolumeInitialization.provisionedRate(Size.mebibytes(300)),
        blockDevices: [
          { deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(30, { volumeType: ec2.EbsDeviceVolumeType.GP3 }) },
          { deviceName: '/dev/xvdb', volume: ec2.BlockDeviceVolume.ebs(10) },
        ],
      });
      const assembly = stack.node.root as App;
      const templateFile = path.join(outdir, assembly.synth().getStackByName(stack.stackName).templateFile);
      expect(fs.readFileSync(templateFile, 'utf8')).toContain('"VolumeInitializationRate": 300');

      const lint = spawnSync('cfn-lint', ['--non-zero-exit-code', 'error', '--', templateFile], { encoding: 'utf8' });
      if (lint.error) {
        throw new Error(`cfn-lint is required for this test (pip install cfn-lint): ${lint.error.message}`);
      }
      expect(`${lint.stdout}`.split('\n').filter((line) => /^E\d+/.test(line))).toEqual([]);
      expect(lint.status).toBe(0);
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });
});

describe('VolumeInitialization', () => {
  test('provisionedRate keeps the rate in MiB/s; lazy has none', () => {
    expect(VolumeInitialization.provisionedRate(Size.mebibytes(150)).rate?.toMebibytes()).toBe(150);
    expect(VolumeInitialization.lazy().rate).toBeUndefined();
  });

  test.each([
    ['below 100 MiB/s', Size.mebibytes(99), 'got 99 MiB/s'],
    ['above 300 MiB/s', Size.mebibytes(301), 'got 301 MiB/s'],
    ['a fraction of a MiB/s', Size.kibibytes(100 * 1024 + 512), 'got 100.5 MiB/s'],
  ])('provisionedRate throws for a rate %s, showing it and the range', (_what, rate, shown) => {
    const error = thrownBy(() => VolumeInitialization.provisionedRate(rate));
    expect(Errors.isValidationError(error)).toBe(true);
    expect(error.name).toBe('BakedImageVolumeInitializationRate');
    expect(error.message).toContain('a whole number of MiB/s from 100 to 300');
    expect(error.message).toContain(shown);
  });

  test('provisionedRate accepts both ends of the range', () => {
    expect(VolumeInitialization.provisionedRate(Size.mebibytes(100)).rate?.toMebibytes()).toBe(100);
    expect(VolumeInitialization.provisionedRate(Size.mebibytes(300)).rate?.toMebibytes()).toBe(300);
  });

  test('provisionedRate throws for a token, saying a literal rate is needed', () => {
    const rate = Size.mebibytes(Token.asNumber({ Ref: 'Rate' }));
    const error = thrownBy(() => VolumeInitialization.provisionedRate(rate));
    expect(Errors.isValidationError(error)).toBe(true);
    expect(error.message).toContain('needs a literal rate: got a token');
  });

});

describe('rootDeviceName', () => {
  test('is /dev/xvda for Linux, /dev/sda1 for Windows, the given name when set, and the builder\'s root mapping', () => {
    const cases: Array<[Partial<BakedImageProps>, string]> = [
      [{}, '/dev/xvda'],
      [WINDOWS, '/dev/sda1'],
      [{ rootDeviceName: '/dev/sda1' }, '/dev/sda1'],
    ];
    for (const [props, expected] of cases) {
      const { stack, vpc } = newStack();
      const image = bake(stack, vpc, props);
      expect(image.rootDeviceName).toBe(expected);
      const builder = Object.values<any>(Template.fromStack(stack).findResources('AWS::EC2::Instance'))[0];
      expect(builder.Properties.BlockDeviceMappings[0].DeviceName).toBe(expected);
    }
  });
});
