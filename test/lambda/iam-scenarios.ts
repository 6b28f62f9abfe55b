/**
 * Test fixtures for the IAM simulator (iam-simulator.ts): a synthesized BakedImage stack with its handler policy
 * resolved against fake physical ids, an in-memory {@link Ec2Lookup}, and {@link DEFECT_SCENARIOS}: what AWS would
 * decide for requests that the policy synthesized at commit 7fad8a7 gets wrong. The test suite does not run them (they
 * fail against that policy); the engineer who fixes a defect turns its scenario into a test.
 */
import { createHash } from 'crypto';
import { App, type CfnResource, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { authorizationCheck } from './iam-requests';
import {
  type ApiRequest, type CfnTemplate, type Decision, type Ec2Lookup, handlerPolicies, IamSimulator, keyPolicies,
  type PolicyDocument, resolveIntrinsics, type ResourceFacts, type IntrinsicEnv,
} from './iam-simulator';
import { BakedImage, type BakedImageProps, ImageValidation } from '../../src';
import { Tag } from '../../src/private/contract';

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
export const STACK_ID = `arn:aws:cloudformation:${REGION}:${ACCOUNT}:stack/TestStack/0a1b2c3d-4e5f-6789-abcd-ef0123456789`;
export const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/TestStack-CdkBakedImageProviderHandlerRole`;

const ID_PREFIXES: Record<string, string> = {
  'AWS::EC2::Subnet': 'subnet-',
  'AWS::EC2::SecurityGroup': 'sg-',
  'AWS::EC2::Instance': 'i-',
  'AWS::EC2::VPC': 'vpc-',
};

function hex(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 17);
}

/** Fake physical ids and attributes for the resources of a template: `subnet-<hex>`, `sg-<hex>`, ARNs. */
export function fakeEnv(template: CfnTemplate): IntrinsicEnv {
  const typeOf = (id: string) => template.Resources?.[id]?.Type;
  const physicalId = (id: string) => {
    const type = typeOf(id);
    if (!type) {
      return undefined;
    }
    const prefix = ID_PREFIXES[type];
    return prefix ? `${prefix}${hex(id)}` : `${id.toLowerCase()}-${hex(id).slice(0, 8)}`;
  };
  return {
    partition: 'aws',
    region: REGION,
    account: ACCOUNT,
    stackName: 'TestStack',
    stackId: STACK_ID,
    ref: physicalId,
    getAtt: (id, attribute) => {
      const type = typeOf(id);
      if (!type) {
        return undefined;
      }
      if (attribute === 'Arn') {
        const [, service, kind] = type.split('::');
        return `arn:aws:${service.toLowerCase()}:${REGION}:${ACCOUNT}:${kind.toLowerCase()}/${physicalId(id)}`;
      }
      return attribute === 'GroupId' ? physicalId(id) : `${physicalId(id)}.${attribute}`;
    },
  };
}

/** A synthesized stack with BakedImages, its handler policy resolved, and a simulator for it. */
export interface Fixture {
  readonly template: CfnTemplate;
  readonly env: IntrinsicEnv;
  readonly policies: PolicyDocument[];
  readonly simulator: IamSimulator;
  /** The logical ids of the Custom::BakedImage resources, by construct id. */
  readonly imageLogicalIds: Record<string, string>;
  /** The builder instances' resolved ids and tags, by construct id. */
  readonly builders: Record<string, { readonly instanceId: string; readonly tags: Record<string, string> }>;
  /** The ARN of a KMS key of the stack, by construct id. */
  keyArn(id: string): string;
}

/** Props of one BakedImage, made in its stack (keys and validations are constructs of the stack). */
export type ImageProps = (stack: Stack) => Partial<BakedImageProps>;

/** Synthesizes TestStack with a VPC and one BakedImage per entry of `images` (construct id to props). */
export function bakedImageFixture(images: Record<string, ImageProps>): Fixture {
  const app = new App();
  const stack = new Stack(app, 'TestStack', { env: { account: ACCOUNT, region: REGION } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const constructs = Object.entries(images).map(([id, props]) => new BakedImage(stack, id, {
    vpc,
    machineImage: ec2.MachineImage.genericLinux({ [REGION]: 'ami-0123456789abcdef0' }),
    init: ec2.CloudFormationInit.fromElements(ec2.InitPackage.yum('nginx')),
    imageNamePrefix: id.toLowerCase(),
    ...props(stack),
  }));
  const template = Template.fromStack(stack).toJSON() as CfnTemplate;
  const env = fakeEnv(template);
  const policies = handlerPolicies(template, env);
  const logicalIdOf = (child: unknown): string => stack.resolve((child as CfnResource).logicalId);
  const childOfType = (image: BakedImage, type: string) => image.node.findAll().find((c) => (c as CfnResource).cfnResourceType === type);
  const keyPolicyByArn = Object.fromEntries(Object.entries(keyPolicies(template, env)).map(([id, doc]) => [env.getAtt!(id, 'Arn')!, doc]));
  const builders = Object.fromEntries(constructs.map((image) => {
    const instanceId = logicalIdOf(childOfType(image, 'AWS::EC2::Instance'));
    const tags = resolveTags(template.Resources?.[instanceId]?.Properties?.Tags, env);
    return [image.node.id, { instanceId: env.ref!(instanceId)!, tags }];
  }));
  return {
    template,
    env,
    policies,
    builders,
    simulator: new IamSimulator(policies, { principalArn: ROLE_ARN, account: ACCOUNT, resourcePolicies: keyPolicyByArn }),
    imageLogicalIds: Object.fromEntries(constructs.map((image) => [image.node.id,
      logicalIdOf(childOfType(image, 'Custom::BakedImage'))])),
    keyArn: (id) => env.getAtt!(logicalIdOf((stack.node.findChild(id) as kms.Key).node.defaultChild), 'Arn')!,
  };
}

function resolveTags(tags: unknown, env: IntrinsicEnv): Record<string, string> {
  const resolved = (resolveIntrinsics(tags ?? [], env) as Array<{ Key: string; Value: string }>);
  return Object.fromEntries(resolved.map((tag) => [tag.Key, tag.Value]));
}

/** An in-memory {@link Ec2Lookup}: `add(region, type, id, facts)`. */
export class FakeLookup implements Ec2Lookup {
  private readonly resources = new Map<string, ResourceFacts>();

  add(region: string, type: string, id: string, facts: ResourceFacts): this {
    this.resources.set(`${region}/${type}/${id}`, facts);
    return this;
  }

  async describe(region: string, type: string, id: string): Promise<ResourceFacts | undefined> {
    return this.resources.get(`${region}/${type}/${id}`);
  }
}

/** An EC2 query request, signed for `region`. */
export function ec2Request(action: string, params: Record<string, string>, region = REGION): ApiRequest {
  return { service: 'ec2', action, params: new URLSearchParams(params), region, account: ACCOUNT, partition: 'aws' };
}

/** TagSpecification.N query parameters for these resource types, each with these tags. */
export function tagSpecifications(tags: Record<string, string>, ...types: string[]): Record<string, string> {
  return Object.fromEntries(types.flatMap((type, i) => [
    [`TagSpecification.${i + 1}.ResourceType`, type],
    ...Object.entries(tags).flatMap(([key, value], j) => [
      [`TagSpecification.${i + 1}.Tag.${j + 1}.Key`, key],
      [`TagSpecification.${i + 1}.Tag.${j + 1}.Value`, value],
    ]),
  ]));
}

/** The tags the handlers give an image of the BakedImage with this logical id (the ones its policy scopes by). */
export function ownTags(logicalId: string): Record<string, string> {
  return { [Tag.MANAGED_BY]: 'cdk-baked-image', [Tag.STACK_ID]: STACK_ID, [Tag.LOGICAL_ID]: logicalId };
}

/** A request AWS decides one way and the current synthesized policy the other. */
export interface DefectScenario {
  /** The behaviour, as a test name. */
  readonly name: string;
  /** What is wrong in the product (src/private/handler-permissions.ts, src/private/key-policies.ts). */
  readonly defect: string;
  /** AWS's decision with a correct policy. */
  readonly expected: 'allowed' | 'denied';
  decide(): Promise<Decision>;
}

/** Deletes an image and its snapshot as the handlers do, under the policy of `fixture`. */
async function deleteImage(fixture: Fixture, region: string, logicalId: string): Promise<Decision> {
  const lookup = new FakeLookup()
    .add(region, 'image', 'ami-0feed', { tags: ownTags(logicalId), owner: ACCOUNT })
    .add(region, 'snapshot', 'snap-0feed', { tags: ownTags(logicalId), owner: ACCOUNT });
  const decisions = [
    await fixture.simulator.authorizeRequest(ec2Request('DeregisterImage', { ImageId: 'ami-0feed' }, region), lookup),
    await fixture.simulator.authorizeRequest(ec2Request('DeleteSnapshot', { SnapshotId: 'snap-0feed' }, region), lookup),
  ];
  return { allowed: decisions.every((d) => d.allowed), denials: decisions.flatMap((d) => d.denials), undone: [] };
}

export const DEFECT_SCENARIOS: DefectScenario[] = [
  {
    name: 'CopyImage of the stack\'s own image to a copy region is allowed',
    defect: 'CopyOwnImages scopes the source image by aws:ResourceTag, which CopyImage does not supply for its source ' +
      'image (the reference lists aws:RequestTag/*, aws:TagKeys, ec2:ImageID and ec2:Owner only): every copy is denied. ' +
      'Scope it by ec2:Owner (the stack\'s account) and the source region instead.',
    expected: 'allowed',
    decide: async () => {
      const fixture = bakedImageFixture({ Image: () => ({ copies: [{ region: 'us-west-2' }] }) });
      const tags = ownTags(fixture.imageLogicalIds.Image);
      const lookup = new FakeLookup().add(REGION, 'image', 'ami-0source', { tags, owner: ACCOUNT });
      return fixture.simulator.authorizeRequest(ec2Request('CopyImage', {
        SourceImageId: 'ami-0source',
        SourceRegion: REGION,
        Name: 'image',
        Encrypted: 'true',
        ...tagSpecifications(tags, 'image', 'snapshot'),
      }, 'us-west-2'), lookup);
    },
  },
  {
    name: 'kms:CreateGrant on the volume key is denied unless the grant is for an AWS resource',
    defect: 'COPY_KEY_ACTIONS grants kms:CreateGrant on the image and copy keys (with validation or copies) with no ' +
      'kms:GrantIsForAWSResource condition: the handlers\' role may hand out grants on the key itself. EBS and EC2 create ' +
      'their grants with it true.',
    expected: 'denied',
    decide: async () => {
      const fixture = bakedImageFixture({
        Image: (stack) => ({ volumeEncryptionKey: new kms.Key(stack, 'Key'), validation: ImageValidation.fromScript('true') }),
      });
      const check = await authorizationCheck('kms:CreateGrant', 'key', fixture.keyArn('Key'), {
        'aws:RequestedRegion': REGION, 'kms:GrantIsForAWSResource': 'false', 'kms:CallerAccount': ACCOUNT,
      }, 'a grant the role creates itself');
      return fixture.simulator.authorize([check]);
    },
  },
  {
    name: 'the copies in a region dropped from copies can still be deleted',
    defect: 'ShareAndDeleteOwnImagesAndSnapshots lists the copy regions: an update that drops a region removes it from ' +
      'the policy before the handler\'s Update deletes the copies there (deleteCopies for the dropped regions), which is ' +
      'then denied and leaves them behind. Scope destruction by tags only, in every region.',
    expected: 'allowed',
    decide: async () => {
      const updated = bakedImageFixture({ Image: () => ({ copies: [{ region: 'us-west-2' }] }) });
      return deleteImage(updated, 'eu-west-1', updated.imageLogicalIds.Image);
    },
  },
  {
    name: 'the image of a BakedImage removed from the stack can still be deleted',
    defect: 'The destructive statements list the logical ids of the stack\'s BakedImages: removing (or moving) one ' +
      'updates the policy first, and CloudFormation deletes the removed custom resource in the cleanup phase, under the ' +
      'new policy, which denies DeregisterImage and DeleteSnapshot on its images. Scope by the stack id tag only.',
    expected: 'allowed',
    decide: async () => {
      const before = bakedImageFixture({ First: () => ({}), Second: () => ({}) });
      const after = bakedImageFixture({ First: () => ({}) });
      return deleteImage(after, REGION, before.imageLogicalIds.Second);
    },
  },
];
