import { App, CfnParameter, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { BakedImage, BakedImageProps, ImageValidation } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';

removeTemporaryAssembliesAfterAll();

function tryBake(props: Partial<BakedImageProps>, configure?: (stack: Stack) => Partial<BakedImageProps>): () => BakedImage {
  const app = new App();
  const stack = new Stack(app, 'ValidationStack', { env: { account: '123456789012', region: 'us-east-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1 });
  return () => new BakedImage(stack, 'Image', {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': 'ami-0123456789abcdef0' }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('true')),
    ...props,
    ...configure?.(stack),
  });
}

describe('synth-time validation', () => {
  test('throws when imageName is longer than 111 characters, naming the prop, the length and the limit', () => {
    expect(tryBake({ imageNamePrefix: 'a'.repeat(112) })).toThrow(/imageNamePrefix must be 1 to 111 characters .* got 112/);
  });

  test('accepts an imageName of exactly 111 characters', () => {
    expect(tryBake({ imageNamePrefix: 'a'.repeat(111) })).not.toThrow();
  });

  test('throws when imageName has characters EC2 rejects, and shows them', () => {
    expect(tryBake({ imageNamePrefix: 'web#image!' })).toThrow(/imageNamePrefix may contain only .* got 'web#image!' with '#!'/);
  });

  test('accepts every character EC2 allows in AMI names', () => {
    expect(tryBake({ imageNamePrefix: "Web (v1) [x86] 2026.11/a-b'c@d_e" })).not.toThrow();
  });

  test('throws when imageName is empty', () => {
    expect(tryBake({ imageNamePrefix: '' })).toThrow(/imageNamePrefix must be 1 to 111 characters/);
  });

  test('throws when imageDescription is longer than 255 characters', () => {
    expect(tryBake({ imageDescription: 'd'.repeat(256) })).toThrow(/imageDescription must be at most 255 characters .* got 256/);
  });

  test.each([Duration.seconds(30), Duration.minutes(51), Duration.hours(2)])('throws when bakeTimeout is %s, outside 1 to 50 minutes', (timeout) => {
    expect(tryBake({ bakeTimeout: timeout })).toThrow(/bakeTimeout must be between 1 and 50 minutes .*one hour/);
  });

  test('throws when removalPolicy is SNAPSHOT, which an AMI cannot honour', () => {
    expect(tryBake({ removalPolicy: RemovalPolicy.SNAPSHOT })).toThrow(/removalPolicy must be RemovalPolicy.DESTROY or RemovalPolicy.RETAIN, got snapshot/);
  });

  test('reports every problem in one error', () => {
    const attempt = tryBake({ imageNamePrefix: 'bad#name', imageDescription: 'd'.repeat(300), bakeTimeout: Duration.hours(3) });
    expect(attempt).toThrow(/imageNamePrefix may contain only[\s\S]*imageDescription must be[\s\S]*bakeTimeout must be/);
  });

  test('leaves token values alone', () => {
    expect(tryBake({}, (stack) => ({
      imageNamePrefix: new CfnParameter(stack, 'Name').valueAsString,
      imageDescription: new CfnParameter(stack, 'Description').valueAsString,
      rebakeTrigger: new CfnParameter(stack, 'Version').valueAsString,
    }))).not.toThrow();
  });

  test('throws when initOptions names a config set that init does not define', () => {
    const init = ec2.CloudFormationInit.fromConfigSets({
      configSets: { bake: ['packages'] },
      configs: { packages: new ec2.InitConfig([ec2.InitPackage.yum('nginx')]) },
    });
    expect(tryBake({ init, initOptions: { configSets: ['bake', 'deploy'] } }))
      .toThrow(/initOptions.configSets names 'deploy', which init does not define \(it defines 'bake'\)/);
  });

  test('throws when init defines no default config set and initOptions names none', () => {
    const init = ec2.CloudFormationInit.fromConfigSets({
      configSets: { bake: ['packages'] },
      configs: { packages: new ec2.InitConfig([ec2.InitPackage.yum('nginx')]) },
    });
    expect(tryBake({ init })).toThrow(/initOptions.configSets names 'default', which init does not define/);
  });

  test('accepts config sets that init defines', () => {
    const init = ec2.CloudFormationInit.fromConfigSets({
      configSets: { bake: ['packages'], extra: ['packages'] },
      configs: { packages: new ec2.InitConfig([ec2.InitPackage.yum('nginx')]) },
    });
    expect(tryBake({ init, initOptions: { configSets: ['extra', 'bake'] } })).not.toThrow();
  });

  test('throws when vpcSubnets selects a subnet type the VPC does not have', () => {
    const app = new App();
    const stack = new Stack(app, 'IsolatedStack', { env: { account: '123456789012', region: 'us-east-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC }] });
    expect(() => new BakedImage(stack, 'Image', {
      vpc,
      machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': 'ami-0123456789abcdef0' }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('true')),
    })).toThrow(/vpcSubnets selects no subnet of the VPC .*Pass vpcSubnets that exist/);
  });

  test.each(['/golden image', 'aws/reserved', '/ssm/reserved', 'x'.repeat(1012)])('throws when imageIdParameterName is %s', (name) => {
    expect(tryBake({ imageIdParameterName: name })).toThrow(/imageIdParameterName must be an SSM parameter name/);
  });

  test('accepts a hierarchical SSM parameter name', () => {
    expect(tryBake({ imageIdParameterName: '/golden/web-1.0/image_id' })).not.toThrow();
  });

  test('throws when shareWith lists malformed accounts, organizations or units, naming each', () => {
    expect(tryBake({}, (stack) => ({
      volumeEncryptionKey: new kms.Key(stack, 'Key'),
      shareWith: { accounts: ['1234', '111122223333'], organizationArns: ['o-abcdef1234'], organizationalUnitArns: ['ou-ab12-cdef3456'] },
    }))).toThrow(/shareWith.accounts must list 12-digit account ids, got '1234'[\s\S]*shareWith.organizationArns must list[\s\S]*shareWith.organizationalUnitArns must list/);
  });

  test('throws when shareWith is used without a customer managed key, since aws/ebs images cannot be shared', () => {
    expect(tryBake({ shareWith: { accounts: ['111122223333'] } })).toThrow(/shareWith needs volumeEncryptionKey: an image encrypted with the AWS managed key aws\/ebs cannot be shared/);
  });

  test('throws when initOptions.timeout is longer than the 12 hours a CreationPolicy can wait', () => {
    expect(tryBake({ initOptions: { timeout: Duration.hours(13) } })).toThrow(/initOptions.timeout must be at most 12 hours .* got 13 hours/);
  });

  test('accepts an install phase of 12 hours', () => {
    expect(tryBake({ initOptions: { timeout: Duration.hours(12) } })).not.toThrow();
  });

  test.each([Duration.seconds(30), Duration.days(3700)])('throws when deprecateAfter is %s, outside EC2\'s 1 minute to 10 years', (after) => {
    expect(tryBake({ deprecateAfter: after })).toThrow(/deprecateAfter must be between 1 minute and 10 years/);
  });

  test.each([-1, 1.5, 51])('throws when keepSupersededImages is %s', (keep) => {
    expect(tryBake({ keepSupersededImages: keep })).toThrow(/keepSupersededImages must be a whole number from 0 to 50/);
  });

  test('throws when keepSupersededImages is combined with RETAIN, which keeps everything', () => {
    expect(tryBake({ keepSupersededImages: 2, removalPolicy: RemovalPolicy.RETAIN })).toThrow(/keepSupersededImages \(2\) has no effect with removalPolicy RETAIN/);
  });

  test('names the construct that is misconfigured', () => {
    expect(tryBake({ imageNamePrefix: 'x'.repeat(200) })).toThrow(/Invalid BakedImage ValidationStack\/Image/);
  });

  describe('copies', () => {
    const EU_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

    test('throws for a malformed region, a repeated one and the stack\'s own', () => {
      const bake = () => tryBake({ copies: [{ region: 'us-west-2' }, { region: 'Europe' }, { region: 'us-west-2' }, { region: 'us-east-1' }] });
      expect(bake()).toThrow(/copies must name regions like 'us-west-2', got 'Europe'/);
      expect(bake()).toThrow(/copies name 'us-west-2' more than once/);
      expect(bake()).toThrow(/copies name 'us-east-1', the stack's own region/);
    });

    test('throws for a region given as a token', () => {
      expect(tryBake({}, (stack) => ({ copies: [{ region: new CfnParameter(stack, 'Region').valueAsString }] })))
        .toThrow(/copies must name literal regions/);
    });

    test('throws for a key of another region', () => {
      expect(tryBake({}, (stack) => ({
        copies: [{ region: 'us-west-2', encryptionKey: kms.Key.fromKeyArn(stack, 'EuKey', EU_KEY) }],
      }))).toThrow(/the encryptionKey of the copy to 'us-west-2' is a key of 'eu-west-1'/);
    });

    test('throws when a shared image has copies without a key of their own', () => {
      expect(tryBake({ shareWith: { accounts: ['444455556666'] } }, (stack) => ({
        volumeEncryptionKey: new kms.Key(stack, 'Key'),
        copies: [{ region: 'us-west-2' }, { region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'EuKey', EU_KEY) }],
      }))).toThrow(/shareWith with copies to 'us-west-2' needs an encryptionKey for each/);
    });

    test('accepts copies to other regions, with and without keys', () => {
      expect(tryBake({}, (stack) => ({
        copies: [
          { region: 'us-west-2' },
          { region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'EuKey', EU_KEY) },
          { region: 'us-gov-west-1' },
          { region: 'ap-southeast-5' },
        ],
      }))).not.toThrow();
    });
  });

  describe('validation', () => {
    test('throws for a timeout under a minute or over bakeTimeout', () => {
      expect(tryBake({ validation: ImageValidation.fromScript('true', { timeout: Duration.seconds(30) }) }))
        .toThrow(/validation timeout must be between 1 minute and bakeTimeout \(50 minutes\), got 30 seconds/);
      expect(tryBake({ bakeTimeout: Duration.minutes(20), validation: ImageValidation.fromScript('true', { timeout: Duration.minutes(25) }) }))
        .toThrow(/validation timeout must be between 1 minute and bakeTimeout \(20 minutes\), got 25 minutes/);
    });

    test('throws for a script that would end its here-document early', () => {
      expect(tryBake({ validation: ImageValidation.fromScript('echo a\nCDK_BAKED_IMAGE_VALIDATION_EOF\necho b') }))
        .toThrow(/validation script must not contain a line 'CDK_BAKED_IMAGE_VALIDATION_EOF'/);
    });

    test('throws for a script that makes user data over EC2\'s 16 KB', () => {
      expect(tryBake({ validation: ImageValidation.fromScript(`echo ${'x'.repeat(16 * 1024)}`) }))
        .toThrow(/validation script is too long: the test instance's user data would be \d+ bytes, EC2 takes at most 16384/);
      expect(tryBake({ validation: ImageValidation.fromScript(`echo ${'x'.repeat(15 * 1024)}`) })).not.toThrow();
    });

    test('throws for a Windows image', () => {
      expect(tryBake({
        machineImage: ec2.MachineImage.genericWindows({ 'us-east-1': 'ami-0123456789abcdef0' }),
        validation: ImageValidation.fromScript('true'),
      })).toThrow(/validation runs its test from cloud-init user data, on Linux images only/);
    });

    test('throws for no command or an empty script', () => {
      expect(() => ImageValidation.fromCommands([])).toThrow(/needs at least one command/);
      expect(() => ImageValidation.fromScript('  \n')).toThrow(/needs a script/);
    });

    test('throws for a test instance type that is not Nitro, where GetConsoleOutput Latest fails, naming the type', () => {
      expect(tryBake({ validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType('t2.micro') }) })).toThrow(
        /Invalid BakedImage ValidationStack\/Image[\s\S]*validation's test instance type t2.micro is not a Nitro type: the handler reads the test's report with GetConsoleOutput Latest, which EC2 supports on Nitro instances only\. Set validation.instanceType to a Nitro type/,
      );
      for (const type of ['m4.large', 'c4.xlarge', 'r4.large', 'i3.large', 'p3.2xlarge']) {
        expect(tryBake({ validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType(type) }) }))
          .toThrow(`validation's test instance type ${type} is not a Nitro type`);
      }
    });

    test('throws for a non-Nitro builder type that the test instance inherits, and not without validation', () => {
      expect(tryBake({ instanceType: new ec2.InstanceType('m4.large'), validation: ImageValidation.fromScript('true') }))
        .toThrow(/validation's test instance type m4.large is not a Nitro type/);
      // The builder itself may be any type; a Nitro test type fixes it.
      expect(tryBake({ instanceType: new ec2.InstanceType('m4.large') })).not.toThrow();
      expect(tryBake({
        instanceType: new ec2.InstanceType('m4.large'),
        validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType('m5.large') }),
      })).not.toThrow();
    });

    test('reports a non-Nitro test instance type with the other problems in one error', () => {
      expect(tryBake({
        imageNamePrefix: 'bad#name',
        validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType('t2.micro'), timeout: Duration.seconds(30) }),
      })).toThrow(/imageNamePrefix may contain only[\s\S]*t2.micro is not a Nitro type[\s\S]*validation timeout must be between 1 minute and bakeTimeout/);
    });

    test('accepts Nitro test instance types, and leaves a token type alone', () => {
      // Bare metal instances of Xen-era families (i3.metal) run on Nitro.
      for (const type of ['t3.micro', 't3a.small', 'm5.large', 'c5.xlarge', 'c6i.large', 'm7i.large', 'i3.metal']) {
        expect(tryBake({ validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType(type) }) })).not.toThrow();
      }
      expect(tryBake({}, (stack) => ({
        validation: ImageValidation.fromScript('true', { instanceType: new ec2.InstanceType(new CfnParameter(stack, 'TestType').valueAsString) }),
      }))).not.toThrow();
    });

    test('accepts a validation within bakeTimeout', () => {
      expect(tryBake({ bakeTimeout: Duration.minutes(20), validation: ImageValidation.fromCommands(['true'], { timeout: Duration.minutes(20) }) })).not.toThrow();
    });
  });
});
