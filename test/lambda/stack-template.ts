/**
 * Templates synthesized by the real construct, as the emulated CloudFormation (emulated-stack.ts) and the handler
 * policy (handler-policy.ts) read them: synthesis into a temporary cloud assembly removed at once, and the order
 * CloudFormation gives the custom resources.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { MOTO_STACK_NAME, REGION } from './moto-http';
import { BakedImage, type BakedImageProps } from '../../src';

export const ACCOUNT = '123456789012';

/** One resource of a template. */
export interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly DependsOn?: string | string[];
}

/** A synthesized CloudFormation template (the parts the emulation reads). */
export interface StackTemplate {
  readonly Resources: Record<string, TemplateResource>;
}

/**
 * Synthesizes a stack of this account and region, as `define` builds it, and returns its template. The cloud assembly
 * goes to a temporary directory that is removed at once.
 */
export function synthesize(define: (stack: Stack) => void): StackTemplate {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'baked-image-stack-'));
  try {
    const app = new App({ outdir });
    const stack = new Stack(app, MOTO_STACK_NAME, { env: { account: ACCOUNT, region: REGION } });
    define(stack);
    const assembly = app.synth();
    return JSON.parse(fs.readFileSync(path.join(outdir, assembly.getStackByName(stack.stackName).templateFile), 'utf8')) as StackTemplate;
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** A stack with these BakedImages (construct id -> props) in one VPC, built from a fixed AMI id. */
export function imagesTemplate(images: Record<string, Partial<BakedImageProps>>): StackTemplate {
  return synthesize((stack) => {
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 1 });
    for (const [id, props] of Object.entries(images)) {
      new BakedImage(stack, id, {
        vpc,
        machineImage: ec2.MachineImage.genericLinux({ [REGION]: 'ami-0123456789abcdef0' }),
        init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand(`echo ${id}`)),
        ...props,
      });
    }
  });
}

/** A stable key id for a key's logical id. */
export function keyIdOf(logicalId: string): string {
  const hex = Buffer.from(logicalId).toString('hex').padEnd(32, '0').slice(0, 32);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

export function sameProperties(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(sortKeys);
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]));
  }
  return value;
}

/** The template's custom resources, each after those it references (Ref, Fn::GetAtt, DependsOn). */
export function customResourcesInOrder(template: StackTemplate): string[] {
  const custom = Object.keys(template.Resources).filter((id) => template.Resources[id].Type === 'Custom::BakedImage');
  const ordered: string[] = [];
  const visiting = new Set<string>();
  const visit = (id: string) => {
    if (ordered.includes(id) || visiting.has(id)) {
      return;
    }
    visiting.add(id);
    const resource = template.Resources[id];
    const dependsOn = [resource.DependsOn ?? []].flat();
    for (const other of custom) {
      const referenced = dependsOn.includes(other) || references(resource.Properties, other) || dependsOnThroughBuilder(template, resource, other);
      if (other !== id && referenced) {
        visit(other);
      }
    }
    ordered.push(id);
  };
  custom.forEach(visit);
  return ordered;
}

/** A layered image: its builder's properties reference another image's custom resource. */
function dependsOnThroughBuilder(template: StackTemplate, resource: TemplateResource, other: string): boolean {
  const instanceRef = (resource.Properties?.InstanceId as { Ref?: string } | undefined)?.Ref;
  const builder = instanceRef ? template.Resources[instanceRef] : undefined;
  return builder ? references(builder.Properties, other) : false;
}

function references(value: unknown, logicalId: string): boolean {
  return JSON.stringify(value ?? {}).includes(`"${logicalId}"`);
}
