/**
 * The IAM policy every handler integration test is held to: the handler role's policy that the construct synthesizes
 * for a stack whose image uses every feature (copies to us-west-2 and eu-west-1 with a key there, validation, sharing
 * with a customer managed key, kept superseded images, deprecation, deregistration protection, fast snapshot restore),
 * resolved for the moto
 * world: the tests' stack id, moto's default subnet and security group (where the tests launch test instances).
 *
 * Requests the handler bundle signs (with HANDLER_ACCESS_KEY_ID) are authorized against it by the IAM simulator, as AWS
 * would; the tests' own setup and assertions (other keys) are not. A denial fails the request as AWS would
 * (`UnauthorizedOperation`) and the test (moto-suite.ts checks that none happened).
 */
import { DescribeSecurityGroupsCommand, DescribeSubnetsCommand } from '@aws-sdk/client-ec2';
import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { type Ec2Lookup, handlerPolicies, IamSimulator, type PolicyDocument } from './iam-simulator';
import type { Authorization, AuthorizationRequest, Authorizer } from './moto-access';
import { HANDLER_ACCESS_KEY_ID, MOTO_STACK_ID, MOTO_STACK_NAME } from './moto-http';
import type { MotoHarness } from './moto-server';
import { ACCOUNT, synthesize, type StackTemplate } from './stack-template';
import { BakedImage, ImageValidation } from '../../src';

const HOME = 'us-east-1';
const EUROPE_KEY = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const WEST_KEY = 'arn:aws:kms:us-west-2:123456789012:key/5678abcd-12ab-34cd-56ef-1234567890ab';

let fullFeatured: StackTemplate | undefined;

/** The template of a stack whose image uses every feature (synthesized once per test file). */
function fullFeaturedTemplate(): StackTemplate {
  fullFeatured ??= synthesize((stack) => {
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 1 });
    new BakedImage(stack, 'Image', {
      vpc,
      machineImage: ec2.MachineImage.genericLinux({ [HOME]: 'ami-0123456789abcdef0' }),
      init: ec2.CloudFormationInit.fromElements(ec2.InitCommand.shellCommand('true')),
      volumeEncryptionKey: new kms.Key(stack, 'ImageKey'),
      shareWith: { accounts: ['111122223333'] },
      copies: [
        { region: 'us-west-2', encryptionKey: kms.Key.fromKeyArn(stack, 'WestKey', WEST_KEY) },
        { region: 'eu-west-1', encryptionKey: kms.Key.fromKeyArn(stack, 'EuropeKey', EUROPE_KEY) },
      ],
      validation: ImageValidation.fromCommands(['true'], { timeout: Duration.minutes(5) }),
      keepSupersededImages: 2,
      deprecateAfter: Duration.days(180),
      deregistrationProtection: true,
      fastSnapshotRestoreZones: ['us-east-1a', 'us-east-1b'],
    });
  });
  return fullFeatured;
}

/** The IAM simulator of the handler role of the tests' stack, with these policies. */
export function handlerRoleSimulator(policies: PolicyDocument[]): IamSimulator {
  return new IamSimulator(policies, { account: ACCOUNT, principalArn: `arn:aws:iam::${ACCOUNT}:role/${MOTO_STACK_NAME}-HandlerRole` });
}

/**
 * Decides every request as IAM would for the handler role with these policies, the resources' tags and owners looked
 * up in moto (`lookup`, the proxy's). Wrap it in {@link onlyHandlerRequests} to let the tests' own requests through.
 */
export function policyAuthorizer(policies: PolicyDocument[], lookup: Ec2Lookup): Authorizer {
  const simulator = handlerRoleSimulator(policies);
  return async (request) => {
    const decision = await simulator.authorizeRequest({ ...request, account: ACCOUNT, partition: 'aws' }, lookup);
    return { allowed: decision.allowed, denials: decision.denials };
  };
}

/** Lets through every request but the handler's (the tests' own calls are not the handler role's). */
export function onlyHandlerRequests(authorize: Authorizer): Authorizer {
  return async (request: AuthorizationRequest): Promise<Authorization> =>
    (request.accessKeyId === HANDLER_ACCESS_KEY_ID ? authorize(request) : { allowed: true, denials: [] });
}

/**
 * The authorizer of the full-featured handler policy, resolved against moto's current default subnet and security
 * group (they change with every moto reset), for the stack of this id (the one the tests' events name).
 */
export async function handlerPolicyAuthorizer(harness: MotoHarness, stackId: string = MOTO_STACK_ID): Promise<Authorizer> {
  const template = fullFeaturedTemplate();
  const subnets = await harness.ec2.send(new DescribeSubnetsCommand({}));
  const groups = await harness.ec2.send(new DescribeSecurityGroupsCommand({ Filters: [{ Name: 'group-name', Values: ['default'] }] }));
  const subnetId = subnets.Subnets?.[0]?.SubnetId ?? 'subnet-none';
  const groupId = groups.SecurityGroups?.[0]?.GroupId ?? 'sg-none';
  const policies = handlerPolicies(template, {
    partition: 'aws',
    region: HOME,
    account: ACCOUNT,
    stackId,
    stackName: stackId.split('/')[1] ?? MOTO_STACK_NAME,
    ref: (logicalId) => (template.Resources[logicalId]?.Type === 'AWS::EC2::Subnet' ? subnetId : `${logicalId}-physical-id`),
    getAtt: (logicalId, attribute) => {
      const type = template.Resources[logicalId]?.Type;
      if (type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId') {
        return groupId;
      }
      if (type === 'AWS::KMS::Key' && attribute === 'Arn') {
        return `arn:aws:kms:${HOME}:${ACCOUNT}:key/${logicalId}`;
      }
      return `${logicalId}.${attribute}`;
    },
  });
  return onlyHandlerRequests(policyAuthorizer(policies, harness.proxy.lookup));
}
