/**
 * The resources of an emulated stack (emulated-stack.ts) in moto, and what a template's intrinsics resolve to for
 * them: the builders (launched in moto with the template's tags, terminated when the stack drops them), the security
 * groups (created in moto), a subnet of moto's, the custom resources' physical ids and attributes, and stand-ins for
 * everything else.
 */
import { CreateSecurityGroupCommand, CreateTagsCommand, DescribeSubnetsCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { handlerPolicies, type IntrinsicEnv, type PolicyDocument, resolveIntrinsics } from './iam-simulator';
import { MOTO_STACK_ID, MOTO_STACK_NAME, REGION } from './moto-http';
import type { MotoHarness } from './moto-server';
import { ACCOUNT, keyIdOf, type StackTemplate } from './stack-template';

/** What CloudFormation holds for a custom resource. */
export interface CustomResourceState {
  readonly physicalId: string;
  readonly properties: Record<string, unknown>;
  readonly data: Record<string, string>;
}

/** The resources of the stack that intrinsics can name, as one template has them. */
export interface DeployedResources {
  /** Custom::BakedImage logical id -> what CloudFormation holds for it. */
  readonly images: Map<string, CustomResourceState>;
  /** AWS::EC2::Instance logical id -> moto instance id. */
  readonly instances: Map<string, string>;
}

/** The stack's builders, security groups and subnet in moto, and intrinsics resolved against them. */
export class StackResources {
  private readonly securityGroups = new Map<string, string>();
  private subnetId?: string;

  constructor(private readonly harness: MotoHarness) {}

  /** The handler role's policies of a template, intrinsics resolved (before any custom resource exists). */
  async policiesOf(template: StackTemplate): Promise<PolicyDocument[]> {
    return handlerPolicies(template, this.env(template, { images: new Map(), instances: new Map() }));
  }

  /** Creates in moto the security groups of the template and picks a subnet, once: what validation's properties name. */
  async prepareNetwork(template: StackTemplate): Promise<void> {
    if (!this.subnetId) {
      const subnets = await this.harness.ec2.send(new DescribeSubnetsCommand({}));
      this.subnetId = subnets.Subnets?.[0]?.SubnetId;
    }
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type === 'AWS::EC2::SecurityGroup' && !this.securityGroups.has(logicalId)) {
        const group = await this.harness.ec2.send(new CreateSecurityGroupCommand({ GroupName: `${logicalId}-${Date.now()}`, Description: logicalId }));
        this.securityGroups.set(logicalId, group.GroupId ?? '');
      }
    }
  }

  /** Launches, in moto, each builder of the template not launched yet, with the tags the template gives it. */
  async launchBuilders(template: StackTemplate, instances: Map<string, string>): Promise<void> {
    const deployed: DeployedResources = { images: new Map(), instances };
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type !== 'AWS::EC2::Instance' || instances.has(logicalId)) {
        continue;
      }
      const tags = resolveIntrinsics(resource.Properties?.Tags ?? [], this.env(template, deployed)) as Array<{ Key: string; Value: string }>;
      const instanceId = await this.harness.launchBuilder();
      if (tags.length > 0) {
        await this.harness.ec2.send(new CreateTagsCommand({ Resources: [instanceId], Tags: tags }));
      }
      instances.set(logicalId, instanceId);
    }
  }

  /** Terminates the builders of `before` that `after` no longer has. */
  async terminateGone(before: Map<string, string>, after: Map<string, string>): Promise<void> {
    const kept = new Set(after.values());
    const gone = [...before.values()].filter((instanceId) => !kept.has(instanceId));
    if (gone.length > 0) {
      await this.harness.ec2.send(new TerminateInstancesCommand({ InstanceIds: gone }));
    }
  }

  /** The custom resource's properties as CloudFormation hands them to the provider: intrinsics resolved. */
  resolve(template: StackTemplate, logicalId: string, deployed: DeployedResources): Record<string, unknown> {
    return resolveIntrinsics(template.Resources[logicalId].Properties ?? {}, this.env(template, deployed)) as Record<string, unknown>;
  }

  private env(template: StackTemplate, deployed: DeployedResources): IntrinsicEnv {
    return {
      partition: 'aws',
      region: REGION,
      account: ACCOUNT,
      stackId: MOTO_STACK_ID,
      stackName: MOTO_STACK_NAME,
      ref: (logicalId) => this.physicalIdOf(template, deployed, logicalId),
      getAtt: (logicalId, attribute) => this.attributeOf(template, deployed, logicalId, attribute),
    };
  }

  private physicalIdOf(template: StackTemplate, deployed: DeployedResources, logicalId: string): string {
    const type = template.Resources[logicalId]?.Type;
    switch (type) {
      case 'AWS::EC2::Instance':
        return deployed.instances.get(logicalId) ?? `i-${logicalId.toLowerCase()}-not-launched`;
      case 'AWS::EC2::Subnet':
        return this.subnetId ?? 'subnet-not-prepared';
      case 'Custom::BakedImage':
        return deployed.images.get(logicalId)?.physicalId ?? `${logicalId}-not-created`;
      default:
        return `${logicalId}-physical-id`;
    }
  }

  private attributeOf(template: StackTemplate, deployed: DeployedResources, logicalId: string, attribute: string): string {
    const type = template.Resources[logicalId]?.Type;
    if (type === 'Custom::BakedImage') {
      return deployed.images.get(logicalId)?.data[attribute] ?? `${logicalId}.${attribute}-not-created`;
    }
    if (type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId') {
      return this.securityGroups.get(logicalId) ?? `sg-${logicalId.toLowerCase()}-not-created`;
    }
    if (type === 'AWS::KMS::Key' && attribute === 'Arn') {
      return `arn:aws:kms:${REGION}:${ACCOUNT}:key/${keyIdOf(logicalId)}`;
    }
    return `${logicalId}.${attribute}`;
  }
}
