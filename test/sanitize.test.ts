import { spawnSync } from 'child_process';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BakedImage, BakedImageProps, Sanitize } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';

removeTemporaryAssembliesAfterAll();

const SANITIZE = 'cdkBakedImageSanitize';
const MANIFEST = 'cdkBakedImageManifest';

function synth(props: Partial<BakedImageProps> = {}): { template: Template; stack: Stack; image: BakedImage } {
  const app = new App();
  const stack = new Stack(app, 'SanitizeStack', { env: { account: '123456789012', region: 'us-east-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1 });
  const image = new BakedImage(stack, 'Image', {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': 'ami-0123456789abcdef0' }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
  });
  return { template: Template.fromStack(stack), stack, image };
}

function builder(template: Template): any {
  return Object.values(template.findResources('AWS::EC2::Instance'))[0];
}

/** The commands of the sanitize config, in the order cfn-init runs them (sorted by key). */
function sanitizeCommands(template: Template): string[] {
  const commands = builder(template).Metadata['AWS::CloudFormation::Init'][SANITIZE]?.commands ?? {};
  return Object.keys(commands).sort().map((key) => commands[key].command);
}

function userData(template: Template): string {
  return JSON.stringify(builder(template).Properties.UserData);
}

describe('sanitize before capture', () => {
  test('runs the default clean-up as the last config set, after the user\'s, in the documented order', () => {
    const { template } = synth();
    expect(sanitizeCommands(template)).toEqual(Sanitize.defaultCommands());
    expect(builder(template).Metadata['AWS::CloudFormation::Init'].configSets).toEqual({
      default: ['config'],
      [MANIFEST]: [MANIFEST],
      [SANITIZE]: [SANITIZE],
    });
    expect(userData(template)).toContain(`-c default,${MANIFEST},${SANITIZE}`);
  });

  test('runs before the builder signals, so the image is captured only after the clean-up', () => {
    const script = userData(synth().template);
    const init = script.indexOf(`-c default,${MANIFEST},${SANITIZE}`);
    expect(init).toBeGreaterThan(0);
    expect(init).toBeLessThan(script.indexOf('cfn-signal'));
  });

  test('the default clean-up covers cloud-init, host keys, authorized keys, history, cfn-init cache, machine id, temp files and logs', () => {
    const all = Sanitize.defaultCommands().join('\n');
    for (const target of ['cloud-init clean', '/etc/ssh/ssh_host_', 'authorized_keys', '_history', '/var/lib/cfn-init/data/metadata.json', '/etc/machine-id', '/var/tmp', '/var/log']) {
      expect(all).toContain(target);
    }
    // cfn-init's own log is the bake's diagnostics: printLog prints it after the signal.
    expect(all).toContain('! -name "cfn-init*"');
  });

  test.each(Sanitize.defaultCommands())('default command parses as shell: %s', (command) => {
    const parse = spawnSync('bash', ['-n', '-c', command], { encoding: 'utf8' });
    expect(parse.stderr).toBe('');
    expect(parse.status).toBe(0);
  });

  test('runs the user\'s commands after the defaults with defaultsAnd', () => {
    const { template } = synth({ sanitize: Sanitize.defaultsAnd('rm -rf /opt/app/build-cache') });
    expect(sanitizeCommands(template)).toEqual([...Sanitize.defaultCommands(), 'rm -rf /opt/app/build-cache']);
  });

  test('runs exactly the user\'s commands with commands()', () => {
    const { template } = synth({ sanitize: Sanitize.commands('rm -f /etc/app/token', 'history -c') });
    expect(sanitizeCommands(template)).toEqual(['rm -f /etc/app/token', 'history -c']);
  });

  test('keeps ten or more commands in order', () => {
    const many = Array.from({ length: 12 }, (_, i) => `echo step ${i}`);
    expect(sanitizeCommands(synth({ sanitize: Sanitize.commands(...many) }).template)).toEqual(many);
  });

  test('adds nothing with Sanitize.none()', () => {
    const { template } = synth({ sanitize: Sanitize.none() });
    expect(builder(template).Metadata['AWS::CloudFormation::Init'][SANITIZE]).toBeUndefined();
    expect(userData(template)).toContain(`-c default,${MANIFEST}\\n`);
  });

  test('follows the user\'s config sets', () => {
    const init = ec2.CloudFormationInit.fromConfigSets({
      configSets: { packages: ['pkg'], app: ['files'] },
      configs: {
        pkg: new ec2.InitConfig([ec2.InitPackage.yum('nginx')]),
        files: new ec2.InitConfig([ec2.InitFile.fromString('/etc/app.conf', 'x')]),
      },
    });
    const { template } = synth({ init, initOptions: { configSets: ['packages', 'app'] } });
    expect(userData(template)).toContain(`-c packages,app,${MANIFEST},${SANITIZE}`);
  });

  test('gets no default clean-up on a Windows builder', () => {
    const { template } = synth({
      machineImage: ec2.MachineImage.genericWindows({ 'us-east-1': 'ami-0123456789abcdef0' }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('echo baked')),
    });
    expect(builder(template).Metadata['AWS::CloudFormation::Init'][SANITIZE]).toBeUndefined();
  });

  test('replaces the builder when the clean-up changes', () => {
    const before = Object.keys(synth().template.findResources('AWS::EC2::Instance'))[0];
    const after = Object.keys(synth({ sanitize: Sanitize.defaultsAnd('echo more') }).template.findResources('AWS::EC2::Instance'))[0];
    const none = Object.keys(synth({ sanitize: Sanitize.none() }).template.findResources('AWS::EC2::Instance'))[0];
    expect(new Set([before, after, none]).size).toBe(3);
  });

  test('leaves the user\'s CloudFormationInit untouched when another resource uses it too', () => {
    const app = new App({ context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true } });
    const stack = new Stack(app, 'SharedInitStack', { env: { account: '123456789012', region: 'us-east-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1 });
    const init = ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx'));
    const image = new BakedImage(stack, 'Image', { vpc, machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': 'ami-0123456789abcdef0' }), init });
    new autoscaling.AutoScalingGroup(stack, 'Asg', {
      vpc,
      machineImage: image,
      instanceType: new ec2.InstanceType('t3.micro'),
      init,
      signals: autoscaling.Signals.waitForAll(),
    });
    const template = Template.fromStack(stack);
    const asg = Object.values(template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0];
    expect(asg.Metadata['AWS::CloudFormation::Init'][SANITIZE]).toBeUndefined();
    expect(asg.Metadata['AWS::CloudFormation::Init'].configSets).toEqual({ default: ['config'] });
  });
});
