/**
 * What a new user trips on, each caught at synth with a message that says what to do.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App, Errors, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ts from 'typescript';
import * as library from '../src';
import { BakedImage, BakedImageProps, ImageValidation } from '../src';
import { removeTemporaryAssembliesAfterAll } from './support/temporary-assemblies';
import { thrownBy } from './support/thrown';

removeTemporaryAssembliesAfterAll();

const BASE_AMI = 'ami-0123456789abcdef0';

function newStack(app = new App(), id = 'TestStack', region = 'us-east-1'): { stack: Stack; vpc: ec2.Vpc } {
  const stack = new Stack(app, id, { env: { account: '123456789012', region } });
  return { stack, vpc: new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 1 }) };
}

function bake(stack: Stack, vpc: ec2.IVpc, id: string, props: Partial<BakedImageProps> = {}): BakedImage {
  return new BakedImage(stack, id, {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ [stack.region]: BASE_AMI }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    ...props,
  });
}

describe('a BakedImage made from JavaScript without its required props', () => {
  test('says vpc is required, not that vpcSubnets selects nothing', () => {
    const { stack } = newStack();
    const error = thrownBy(() => new BakedImage(stack, 'Image', {
      machineImage: ec2.MachineImage.genericLinux({ 'us-east-1': BASE_AMI }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    } as unknown as BakedImageProps));
    expect(error.message).toMatch(/^vpc is required \(BakedImage TestStack\/Image\)$/);
    expect(error.message).not.toMatch(/vpcSubnets/);
  });

  test('names every missing prop at once', () => {
    const { stack } = newStack();
    const error = thrownBy(() => new BakedImage(stack, 'Image', {} as unknown as BakedImageProps));
    expect(error.message).toMatch(/vpc is required, machineImage is required, init is required/);
  });
});

describe('errors', () => {
  test('are aws-cdk validation errors with a stable name and the construct path', () => {
    const { stack, vpc } = newStack();
    const error = thrownBy(() => bake(stack, vpc, 'Image', { imageDescription: 'x'.repeat(256) }));
    expect(Errors.isValidationError(error)).toBe(true);
    expect(error.name).toBe('BakedImageInvalidProps');
    expect((error as unknown as { constructPath: string }).constructPath).toBe('TestStack/Image');
  });

  test('of missing props and of the validation helpers are validation errors too', () => {
    const { stack } = newStack();
    expect(Errors.isValidationError(thrownBy(() => new BakedImage(stack, 'Image', {} as unknown as BakedImageProps)))).toBe(true);
    expect(Errors.isValidationError(thrownBy(() => ImageValidation.fromCommands([])))).toBe(true);
  });
});

describe('a Windows base image', () => {
  test('warns at synth that the image is captured without Sysprep, and what to do', () => {
    const { stack, vpc } = newStack();
    new BakedImage(stack, 'Image', {
      vpc,
      machineImage: ec2.MachineImage.genericWindows({ 'us-east-1': BASE_AMI }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('echo baked')),
    });
    Annotations.fromStack(stack).hasWarning('/TestStack/Image',
      Match.stringLikeRegexp('base image is Windows.*without Sysprep.*not supported for production.*Windows in the README'));
  });

  test('gets no such warning for a Linux base image', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Image');
    Annotations.fromStack(stack).hasNoWarning('/TestStack/Image', Match.stringLikeRegexp('Windows'));
  });
});

describe('two BakedImages with the same imageIdParameterName', () => {
  test('fail at synth in one stack, naming the other one', () => {
    const { stack, vpc } = newStack();
    bake(stack, vpc, 'Web', { imageIdParameterName: '/fleet/ami' });
    expect(() => bake(stack, vpc, 'Worker', { imageIdParameterName: '/fleet/ami' }))
      .toThrow(/imageIdParameterName '\/fleet\/ami' is already the parameter of TestStack\/Web in the same account and region/);
  });

  test('fail at synth in two stacks of the same account and region', () => {
    const app = new App();
    const one = newStack(app, 'One');
    const two = newStack(app, 'Two');
    bake(one.stack, one.vpc, 'Web', { imageIdParameterName: '/fleet/ami' });
    expect(() => bake(two.stack, two.vpc, 'Web', { imageIdParameterName: '/fleet/ami' })).toThrow(/already the parameter of One\/Web/);
  });

  test('are fine in two regions, and different names are fine in one stack', () => {
    const app = new App();
    const east = newStack(app, 'East', 'us-east-1');
    const west = newStack(app, 'West', 'us-west-2');
    bake(east.stack, east.vpc, 'Web', { imageIdParameterName: '/fleet/ami' });
    expect(() => bake(west.stack, west.vpc, 'Web', { imageIdParameterName: '/fleet/ami' })).not.toThrow();
    expect(() => bake(east.stack, east.vpc, 'Worker', { imageIdParameterName: '/fleet/worker-ami' })).not.toThrow();
  });
});

describe("the README's first example", () => {
  /** The first TypeScript block of the README, compiled and run in a stack of an app made without `cdk init`'s feature flags. */
  function synthesizeFirstExample(): Template {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const snippet = /```ts[^\n]*\n([\s\S]*?)```/.exec(readme)![1];
    const imports = snippet.split('\n').filter((line) => line.startsWith('import '));
    const body = snippet.split('\n').filter((line) => !line.startsWith('import ')).join('\n');
    const source = `${imports.join('\n')}\nexport function build(this: any, vpc: any) {\n${body}\n}`;
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020 } }).outputText;
    const exported: { build?: (vpc: ec2.IVpc) => void } = {};
    // The snippet's own imports: aws-cdk-lib modules, and this library under its package name.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const load = (name: string) => (name === 'cdk-baked-image' ? library : require(name));
    new Function('require', 'exports', js)(load, exported);
    const app = new App({ context: {} });
    const { stack, vpc } = newStack(app);
    exported.build!.call(stack, vpc);
    return Template.fromStack(stack);
  }

  test('makes a launch template, not a launch configuration, in an app without feature flags', () => {
    const template = synthesizeFirstExample();
    template.resourceCountIs('AWS::AutoScaling::LaunchConfiguration', 0);
    template.resourceCountIs('AWS::EC2::LaunchTemplate', 1);
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
      LaunchTemplate: Match.objectLike({ LaunchTemplateId: Match.anyValue() }),
    });
    template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
      LaunchTemplateData: Match.objectLike({ MetadataOptions: { HttpTokens: 'required' } }),
    });
  });
});
