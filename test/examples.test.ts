import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import * as launchTimeConfig from '../examples/launch-time-config';
import * as layeredBakery from '../examples/layered-bakery';
import * as multiRegion from '../examples/multi-region';
import * as quickStartDrupal from '../examples/quick-start-drupal';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';

removeTemporaryAssembliesAfterAll();

type CreateApp = (outdir?: string, context?: Record<string, string>) => App;

interface Resource {
  readonly Type: string;
  readonly Properties?: any;
  readonly Metadata?: any;
  readonly CreationPolicy?: any;
  readonly UpdatePolicy?: any;
}

interface Synthesized {
  readonly templateFile: string;
  readonly resources: Record<string, Resource>;
}

const outdirs: string[] = [];
const synthesized = new Map<CreateApp, Map<string, Synthesized>>();

afterAll(() => {
  for (const outdir of outdirs) {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
});

/** Synthesizes an example app into a temporary cloud assembly, once per context. */
function synthesize(createApp: CreateApp, context: Record<string, string> = {}): Synthesized {
  const byContext = synthesized.get(createApp) ?? new Map<string, Synthesized>();
  synthesized.set(createApp, byContext);
  const cached = byContext.get(JSON.stringify(context));
  if (cached) {
    return cached;
  }
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'baked-image-examples-'));
  outdirs.push(outdir);
  const assembly = createApp(outdir, context).synth();
  if (assembly.stacks.length !== 1) {
    throw new Error(`expected one stack, got ${assembly.stacks.map((stack) => stack.stackName).join(', ')}`);
  }
  const templateFile = path.join(outdir, assembly.stacks[0].templateFile);
  const result = { templateFile, resources: JSON.parse(fs.readFileSync(templateFile, 'utf8')).Resources };
  byContext.set(JSON.stringify(context), result);
  return result;
}

/** Runs cfn-lint on a template: its error lines, its exit status and everything it printed. */
function cfnLint(templateFile: string): { errors: string[]; status: number | null; output: string } {
  const lint = spawnSync('cfn-lint', ['--non-zero-exit-code', 'error', '--', templateFile], { encoding: 'utf8' });
  if (lint.error) {
    throw new Error(`cfn-lint is required for this test (pip install cfn-lint): ${lint.error.message}`);
  }
  const output = `${lint.stdout}${lint.stderr}`;
  return { errors: output.split('\n').filter((line) => /^E\d+/.test(line)), status: lint.status, output };
}

function ofType(resources: Record<string, Resource>, type: string): Array<[string, Resource]> {
  return Object.entries(resources).filter(([, resource]) => resource.Type === type);
}

function onlyOfType(resources: Record<string, Resource>, type: string): [string, Resource] {
  const found = ofType(resources, type);
  if (found.length !== 1) {
    throw new Error(`expected exactly one ${type}, found ${found.length}: ${found.map(([id]) => id).join(', ')}`);
  }
  return found[0];
}

/** The user data of an instance or launch template, with tokens rendered as JSON. */
function userDataOf(resource: Resource): string {
  const userData = resource.Properties.UserData ?? resource.Properties.LaunchTemplateData.UserData;
  const encoded = userData['Fn::Base64'];
  if (typeof encoded === 'string') {
    return encoded;
  }
  const [separator, parts] = encoded['Fn::Join'] as [string, unknown[]];
  return parts.map((part) => typeof part === 'string' ? part : JSON.stringify(part)).join(separator);
}

/** The config sets cfn-init runs, in order, as named by the `-c` option in the user data. */
function configSetsRun(resource: Resource): string[] {
  const match = /cfn-init [^\n]* -c (\S+)/.exec(userDataOf(resource));
  if (!match) {
    throw new Error(`no cfn-init call with -c in the user data:\n${userDataOf(resource)}`);
  }
  return match[1].split(',');
}

function initOf(resource: Resource): Record<string, any> {
  return resource.Metadata?.['AWS::CloudFormation::Init'] ?? {};
}

/** Every key of one section (files, packages.yum, commands, ...) over all configs of a cfn-init metadata. */
function initKeys(resource: Resource, section: (config: any) => Record<string, unknown> | undefined): string[] {
  return Object.entries(initOf(resource))
    .filter(([name]) => name !== 'configSets')
    .flatMap(([, config]) => Object.keys(section(config) ?? {}));
}

function builderOf(resources: Record<string, Resource>, image: Resource): [string, Resource] {
  const builderId = image.Properties.InstanceId.Ref;
  return [builderId, resources[builderId]];
}

const QUICK_START_FULL = { phpVersion: '8.2', drupalVersion: '10', memcached: 'true' };

describe.each<[string, CreateApp, Record<string, string>]>([
  ['quick-start-drupal', quickStartDrupal.createApp, QUICK_START_FULL],
  ['layered-bakery', layeredBakery.createApp, {}],
  ['launch-time-config', launchTimeConfig.createApp, { environment: 'prod' }],
])('the %s example', (_name, createApp, context) => {
  test('passes cfn-lint with zero errors', () => {
    const lint = cfnLint(synthesize(createApp, context).templateFile);
    expect(lint.errors).toEqual([]);
    expect({ status: lint.status, output: lint.output }).toEqual({ status: 0, output: expect.any(String) });
  });

  test('launches its baked image through a launch template with a rolling update, and no launch configuration', () => {
    const { resources } = synthesize(createApp, context);
    const [templateId, launchTemplate] = onlyOfType(resources, 'AWS::EC2::LaunchTemplate');
    const [, asg] = onlyOfType(resources, 'AWS::AutoScaling::AutoScalingGroup');
    const imageIds = ofType(resources, 'Custom::BakedImage').map(([id]) => id);

    const imageId = launchTemplate.Properties.LaunchTemplateData.ImageId['Fn::GetAtt'];
    expect(imageId).toEqual([expect.any(String), 'ImageId']);
    expect(imageIds).toContain(imageId[0]);
    expect(asg.Properties.LaunchTemplate.LaunchTemplateId).toEqual({ Ref: templateId });
    expect(asg.UpdatePolicy.AutoScalingRollingUpdate).toEqual(expect.objectContaining({ MaxBatchSize: 1, MinInstancesInService: 1 }));
    expect(ofType(resources, 'AWS::AutoScaling::LaunchConfiguration')).toEqual([]);
  });
});

describe('the quick-start-drupal example', () => {
  test('runs the config sets the context chooses: PHP 8.2, Drupal 10 and memcached', () => {
    const { resources } = synthesize(quickStartDrupal.createApp, QUICK_START_FULL);
    const [, builder] = onlyOfType(resources, 'AWS::EC2::Instance');
    const run = configSetsRun(builder);

    expect(run).toEqual(expect.arrayContaining(['httpd', 'php82', 'drupal10', 'memcached']));
    expect(run).not.toContain('php83');
    expect(run).not.toContain('drupal11');
    expect(run.indexOf('php82')).toBeLessThan(run.indexOf('drupal10'));
    expect(run.indexOf('drupal10')).toBeLessThan(run.indexOf('memcached'));
    const init = initOf(builder);
    expect(Object.keys(init.php82.packages.yum)).toEqual(expect.arrayContaining(['php8.2', 'php8.2-fpm']));
    expect(Object.values(init.drupal10.sources)).toEqual([expect.stringMatching(/\/drupal-10\.\d+\.\d+\.tar\.gz$/)]);
    expect(Object.keys(init.memcached.packages.yum)).toEqual(expect.arrayContaining(['memcached', 'php8.2-devel']));
  });

  test('leaves the memcached config set out when memcached is false, and changes nothing else', () => {
    const withMemcached = onlyOfType(synthesize(quickStartDrupal.createApp, QUICK_START_FULL).resources, 'AWS::EC2::Instance')[1];
    const [, builder] = onlyOfType(
      synthesize(quickStartDrupal.createApp, { ...QUICK_START_FULL, memcached: 'false' }).resources, 'AWS::EC2::Instance');

    expect(configSetsRun(builder)).toEqual(configSetsRun(withMemcached).filter((name) => name !== 'memcached'));
    expect(Object.keys(initOf(builder))).not.toContain('memcached');
    expect(Object.keys(initOf(builder).configSets)).not.toContain('memcached');
  });

  test('bakes PHP 8.3 and Drupal 11 without memcached when the context says nothing', () => {
    const [, builder] = onlyOfType(synthesize(quickStartDrupal.createApp).resources, 'AWS::EC2::Instance');
    const run = configSetsRun(builder);

    expect(run).toEqual(expect.arrayContaining(['php83', 'drupal11']));
    expect(run).not.toContain('php82');
    expect(run).not.toContain('memcached');
  });

  test('feeds the version context value to the rebake trigger, which replaces the builder', () => {
    const first = synthesize(quickStartDrupal.createApp).resources;
    const second = synthesize(quickStartDrupal.createApp, { version: '7' }).resources;
    const [, firstImage] = onlyOfType(first, 'Custom::BakedImage');
    const [, secondImage] = onlyOfType(second, 'Custom::BakedImage');

    expect(firstImage.Properties.RebakeTrigger).toBe('1');
    expect(secondImage.Properties.RebakeTrigger).toBe('7');
    expect(builderOf(second, secondImage)[0]).not.toEqual(builderOf(first, firstImage)[0]);
  });

  test('throws naming phpVersion, the value and the allowed values for an unknown PHP version', () => {
    expect(() => quickStartDrupal.createApp(undefined, { phpVersion: '7.4' }))
      .toThrow(/context value phpVersion must be one of '8\.2', '8\.3', got '7\.4'/);
  });

  test('reports every invalid context value in one error', () => {
    let message = '';
    try {
      quickStartDrupal.createApp(undefined, { phpVersion: '8.1', drupalVersion: '9', memcached: 'yes' });
    } catch (error) {
      message = (error as Error).message;
    }

    expect(message).toMatch(/phpVersion must be one of '8\.2', '8\.3', got '8\.1'/);
    expect(message).toMatch(/drupalVersion must be one of '10', '11', got '9'/);
    expect(message).toMatch(/memcached must be one of 'true', 'false', got 'yes'/);
  });

  test('throws when Drupal 11 is asked for on PHP 8.2, which it does not support', () => {
    expect(() => quickStartDrupal.createApp(undefined, { phpVersion: '8.2', drupalVersion: '11' }))
      .toThrow(/drupalVersion '11' needs phpVersion '8\.3', got phpVersion '8\.2'/);
  });
});

describe('the layered-bakery example', () => {
  function images(resources: Record<string, Resource>): { foundation: [string, Resource]; app: [string, Resource] } {
    const all = ofType(resources, 'Custom::BakedImage');
    const foundation = all.filter(([id]) => id.startsWith('Foundation'));
    const app = all.filter(([id]) => id.startsWith('App'));
    expect({ all: all.length, foundation: foundation.length, app: app.length }).toEqual({ all: 2, foundation: 1, app: 1 });
    return { foundation: foundation[0], app: app[0] };
  }

  test("starts the app builder from the foundation image: its ImageId is the foundation's ImageId attribute", () => {
    const { resources } = synthesize(layeredBakery.createApp);
    const { foundation, app } = images(resources);
    const [, appBuilder] = builderOf(resources, app[1]);
    const [, foundationBuilder] = builderOf(resources, foundation[1]);

    expect(appBuilder.Properties.ImageId).toEqual({ 'Fn::GetAtt': [foundation[0], 'ImageId'] });
    expect(foundationBuilder.Properties.ImageId).toEqual({ Ref: expect.stringMatching(/^SsmParameterValue.*al2023/) });
  });

  test('serves both images from one provider: one state machine and one service token', () => {
    const { resources } = synthesize(layeredBakery.createApp);
    const { foundation, app } = images(resources);

    expect(ofType(resources, 'AWS::StepFunctions::StateMachine')).toHaveLength(1);
    expect(app[1].Properties.ServiceToken).toEqual(foundation[1].Properties.ServiceToken);
  });

  test('updates the operating system in the foundation layer only', () => {
    const { resources } = synthesize(layeredBakery.createApp);
    const { foundation, app } = images(resources);
    const commandsOf = (image: Resource) => {
      const builder = builderOf(resources, image)[1];
      return Object.entries(initOf(builder))
        .filter(([name]) => name !== 'configSets')
        .flatMap(([, config]) => Object.values<any>(config.commands ?? {}).map((command) => command.command));
    };

    expect(commandsOf(foundation[1])).toContain('dnf -y update');
    expect(commandsOf(app[1])).not.toContain('dnf -y update');
  });

  test('rebakes only the app layer for a new appVersion', () => {
    const before = synthesize(layeredBakery.createApp).resources;
    const after = synthesize(layeredBakery.createApp, { appVersion: '2' }).resources;
    const builderIds = (resources: Record<string, Resource>) => {
      const { foundation, app } = images(resources);
      return { foundation: builderOf(resources, foundation[1])[0], app: builderOf(resources, app[1])[0] };
    };

    expect(builderIds(after).foundation).toEqual(builderIds(before).foundation);
    expect(builderIds(after).app).not.toEqual(builderIds(before).app);
  });
});

describe('the launch-time-config example', () => {
  test("runs cfn-init for the launch-time config from the launch template's user data, and waits for the signals", () => {
    const { resources } = synthesize(launchTimeConfig.createApp, { environment: 'prod' });
    const [asgId, asg] = onlyOfType(resources, 'AWS::AutoScaling::AutoScalingGroup');
    const [, launchTemplate] = onlyOfType(resources, 'AWS::EC2::LaunchTemplate');
    const userData = userDataOf(launchTemplate);

    expect(userData).toContain(`/opt/aws/bin/cfn-init -v --region {"Ref":"AWS::Region"} --stack {"Ref":"AWS::StackName"} --resource ${asgId} -c launch`);
    expect(userData).toContain(`/opt/aws/bin/cfn-signal -e $? --region {"Ref":"AWS::Region"} --stack {"Ref":"AWS::StackName"} --resource ${asgId}`);
    expect(asg.CreationPolicy.ResourceSignal).toEqual({ Count: 2, Timeout: 'PT10M' });
    expect(asg.UpdatePolicy.AutoScalingRollingUpdate.WaitOnResourceSignals).toBe(true);
  });

  test('bakes nginx and the app into the image, and writes the environment file only at launch', () => {
    const { resources } = synthesize(launchTimeConfig.createApp, { environment: 'prod' });
    const [, image] = onlyOfType(resources, 'Custom::BakedImage');
    const [, builder] = builderOf(resources, image);
    const [, asg] = onlyOfType(resources, 'AWS::AutoScaling::AutoScalingGroup');

    expect(initKeys(builder, (config) => config.packages?.yum)).toContain('nginx');
    expect(initKeys(builder, (config) => config.files)).toEqual(expect.arrayContaining(['/opt/app/server.py', '/etc/systemd/system/app.service']));
    expect(initKeys(builder, (config) => config.files)).not.toContain('/etc/app/environment');
    expect(initKeys(asg, (config) => config.files)).toEqual(['/etc/app/environment']);
    expect(initKeys(asg, (config) => config.packages)).toEqual([]);
    expect(initOf(asg).environment.files['/etc/app/environment'].content).toContain('APP_ENVIRONMENT=prod\n');
  });

  test('launches every environment from the same image: a new environment rolls the fleet but bakes nothing', () => {
    const prod = synthesize(launchTimeConfig.createApp, { environment: 'prod' }).resources;
    const dev = synthesize(launchTimeConfig.createApp, { environment: 'dev' }).resources;
    const bake = (resources: Record<string, Resource>) => {
      const [imageId, image] = onlyOfType(resources, 'Custom::BakedImage');
      const [builderId, builder] = builderOf(resources, image);
      return { imageId, image: image.Properties, builderId, userData: userDataOf(builder), init: initOf(builder) };
    };
    const launchUserData = (resources: Record<string, Resource>) => userDataOf(onlyOfType(resources, 'AWS::EC2::LaunchTemplate')[1]);

    expect(bake(dev)).toEqual(bake(prod));
    expect(launchUserData(dev)).not.toEqual(launchUserData(prod));
    expect(initOf(onlyOfType(dev, 'AWS::AutoScaling::AutoScalingGroup')[1]).environment.files['/etc/app/environment'].content)
      .toContain('APP_ENVIRONMENT=dev\n');
  });

  test('throws naming environment, the value and the allowed values for an unknown environment', () => {
    expect(() => launchTimeConfig.createApp(undefined, { environment: 'qa' }))
      .toThrow(/context value environment must be one of 'dev', 'staging', 'prod', got 'qa'/);
  });
});

describe('the multi-region example', () => {
  /** Both stacks of the example: the bakery in us-east-1 and the fleet in us-west-2. */
  function synthesizeBoth(): Record<string, Synthesized> {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'baked-image-examples-'));
    outdirs.push(outdir);
    const assembly = multiRegion.createApp(outdir).synth();
    return Object.fromEntries(assembly.stacks.map((stack) => {
      const templateFile = path.join(outdir, stack.templateFile);
      return [stack.stackName, { templateFile, resources: JSON.parse(fs.readFileSync(templateFile, 'utf8')).Resources }];
    }));
  }
  const stacks = synthesizeBoth();

  test('defines the bakery and the fleet, each passing cfn-lint with zero errors', () => {
    expect(Object.keys(stacks).sort()).toEqual(['BakedImageBakery', 'BakedImageFleetWest']);
    for (const { templateFile } of Object.values(stacks)) {
      const lint = cfnLint(templateFile);
      expect(lint.errors).toEqual([]);
      expect(lint.status).toBe(0);
    }
  });

  test('copies the image to us-west-2 and eu-west-1, each copy encrypted with a key of its region', () => {
    const [, image] = onlyOfType(stacks.BakedImageBakery.resources, 'Custom::BakedImage');
    expect(image.Properties.CopyToRegions).toEqual(['us-west-2', 'eu-west-1']);
    expect(Object.entries(image.Properties.CopyKmsKeyIds).map(([region, arn]) => [region, String(arn).split(':')[3]]))
      .toEqual([['us-west-2', 'us-west-2'], ['eu-west-1', 'eu-west-1']]);
    expect(image.Properties.ShareWithAccounts).toEqual(['444455556666']);
    expect(image.Properties.DeregistrationProtection).toBe('true');
    expect(image.Properties.BakeTimeoutSeconds).toBe('2700');
  });

  test('the fleet in us-west-2 launches the us-west-2 copy from the SSM parameter the bakery publishes there, with no cross-region reference', () => {
    const [, image] = onlyOfType(stacks.BakedImageBakery.resources, 'Custom::BakedImage');
    expect(image.Properties.CopyImageIdParameterName).toBe(multiRegion.IMAGE_PARAMETER);
    const [, launchTemplate] = onlyOfType(stacks.BakedImageFleetWest.resources, 'AWS::EC2::LaunchTemplate');
    const ref = launchTemplate.Properties.LaunchTemplateData.ImageId.Ref as string;
    // A template parameter CloudFormation resolves from SSM at each deploy of the fleet: a rebake then moves it.
    const template = JSON.parse(fs.readFileSync(stacks.BakedImageFleetWest.templateFile, 'utf8'));
    expect(template.Parameters[ref]).toEqual(expect.objectContaining({
      Type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      Default: multiRegion.IMAGE_PARAMETER,
    }));
    for (const { resources } of Object.values(stacks)) {
      expect(Object.values(resources).map((resource) => resource.Type)).not.toContain('Custom::CrossRegionExportWriter');
      expect(JSON.stringify(resources)).not.toMatch(/ExportsReader/);
    }
  });
});
