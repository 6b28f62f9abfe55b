import { Annotations, Aws, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { sharesWithAnyone } from './contract';
import type { ImageSharing } from '../baked-image-props';

/**
 * Who may use the image's KMS keys, and for what: the provider to copy and test the image, principals and
 * accounts to launch it. `kms:CreateGrant` always goes into a statement of its own, only for grants to AWS
 * resources (`kms:GrantIsForAWSResource`), as the EBS encryption docs recommend: EBS makes those grants.
 */

/** The KMS actions the provider needs on the source and destination keys to copy an encrypted image, or to test it. */
export const COPY_KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:CreateGrant'];

/** The KMS actions a principal or account needs on the key of an image to launch instances from it. */
export const LAUNCH_KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:ReEncrypt*', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:CreateGrant'];

/** The KMS actions the Auto Scaling service-linked role needs on the key of the image its groups launch. */
export const AUTO_SCALING_KEY_ACTIONS = ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:DescribeKey', 'kms:CreateGrant'];

const GRANTS_FOR_AWS_RESOURCES = { Bool: { 'kms:GrantIsForAWSResource': true } };

/** Grants a principal of this app the use of a key, in its own policy (and the key's, where CDK puts it). */
export function grantKeyUse(key: kms.IKey, grantee: iam.IGrantable, actions: string[]): iam.Grant {
  const grant = key.grant(grantee, ...actions.filter((action) => action !== 'kms:CreateGrant'));
  if (!actions.includes('kms:CreateGrant')) {
    return grant;
  }
  return grant.combine(iam.Grant.addToPrincipal({
    grantee,
    actions: ['kms:CreateGrant'],
    resourceArns: [key.keyArn],
    conditions: GRANTS_FOR_AWS_RESOURCES,
  }));
}

/**
 * Lets principals outside this app use a key defined in it, through two statements of its key policy: `sid`
 * for the actions, `grantsSid` for kms:CreateGrant, only for AWS resources.
 */
function grantInKeyPolicy(key: kms.Key, principal: iam.IPrincipal, sid: string, actions: string[], grantsSid = `${sid}Grants`): iam.Grant {
  const statement = (statementSid: string, grantActions: string[], conditions?: Record<string, Record<string, unknown>>) =>
    iam.Grant.addToPrincipalOrResource({
      grantee: principal,
      actions: grantActions,
      resourceArns: [key.keyArn],
      resourceSelfArns: ['*'],
      // The key itself, but each statement named, and the CreateGrant one conditioned.
      resource: Object.assign(Object.create(key) as kms.Key, {
        addToResourcePolicy: (added: iam.PolicyStatement) => {
          added.sid = statementSid;
          Object.entries(conditions ?? {}).forEach(([operator, condition]) => added.addCondition(operator, condition));
          return key.addToResourcePolicy(added);
        },
      }),
    });
  const grant = statement(sid, actions.filter((action) => action !== 'kms:CreateGrant'));
  return actions.includes('kms:CreateGrant') ? grant.combine(statement(grantsSid, ['kms:CreateGrant'], GRANTS_FOR_AWS_RESOURCES)) : grant;
}

/** What the key policy of an imported key must allow, for a warning that says it. */
function needs(actions: string[]): string {
  return `${actions.filter((action) => action !== 'kms:CreateGrant').join(', ')}, and kms:CreateGrant with kms:GrantIsForAWSResource true`;
}

/**
 * Lets the accounts and organizations the image is shared with use its key, when the key is defined in this
 * app. Organizational units cannot be named in a key policy by their ARN: they get a warning.
 */
export function shareKey(scope: Construct, sharing: ImageSharing, key: kms.IKey): void {
  if (!sharesWithAnyone(sharing)) {
    return;
  }
  if (!(key instanceof kms.Key)) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:shareImportedKey',
      `shareWith with an imported volumeEncryptionKey: its key policy must let the listed accounts use it (${needs(LAUNCH_KEY_ACTIONS)}), or they cannot launch the image.`);
    return;
  }
  const accounts = sharing.accounts ?? [];
  if (accounts.length > 0) {
    grantInKeyPolicy(key, new iam.CompositePrincipal(...accounts.map((account) => new iam.AccountPrincipal(account))), 'LaunchSharedBakedImageAccounts', LAUNCH_KEY_ACTIONS);
  }
  // One statement per organization: each principal carries its own aws:PrincipalOrgID condition.
  (sharing.organizationArns ?? []).forEach((arn, index) => {
    grantInKeyPolicy(key, new iam.OrganizationPrincipal(arn.split('/').pop()!), `LaunchSharedBakedImageOrganization${index + 1}`, LAUNCH_KEY_ACTIONS);
  });
  if ((sharing.organizationalUnitArns ?? []).length > 0) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:shareOuKey',
      'shareWith.organizationalUnitArns: a key policy cannot name organizational units by ARN. Let them use volumeEncryptionKey with an aws:PrincipalOrgPaths condition, or they cannot launch the image.');
  }
}

/** Warns that the copies' keys, which the app does not own, must let the accounts of the sharing use them. */
export function warnSharedCopyKeys(scope: Construct): void {
  Annotations.of(scope).addWarningV2('cdk-baked-image:shareCopyKeys',
    `shareWith with copies encrypted by their own keys: the key policy of each copy's key must let the listed accounts use it (${needs(LAUNCH_KEY_ACTIONS)}), or they cannot launch the copies.`);
}

/**
 * Lets this account's Auto Scaling service-linked role use the image's key, in the key's policy; an imported
 * key gets a warning that says what to add, and no grant.
 */
export function grantKeyToAutoScaling(scope: Construct, key: kms.IKey): iam.Grant {
  const role = new iam.ArnPrincipal(
    `arn:${Aws.PARTITION}:iam::${Stack.of(scope).account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`);
  if (!(key instanceof kms.Key)) {
    Annotations.of(scope).addWarningV2('cdk-baked-image:autoScalingImportedKey',
      `grantLaunchToAutoScaling with an imported volumeEncryptionKey: add to its key policy a statement allowing the role AWSServiceRoleForAutoScaling ${needs(AUTO_SCALING_KEY_ACTIONS)}.`);
    return iam.Grant.drop(role, 'launch the image with an imported key, whose policy this app cannot change');
  }
  return grantInKeyPolicy(key, role, 'AutoScalingLaunchesBakedImage', AUTO_SCALING_KEY_ACTIONS, 'AutoScalingAttachesBakedImageVolumes');
}
