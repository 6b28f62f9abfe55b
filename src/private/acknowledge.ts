import { Aspects, Token, Validations } from 'aws-cdk-lib';
import { CfnInstance } from 'aws-cdk-lib/aws-ec2';
import { IConstruct } from 'constructs';

/**
 * Acknowledges one validation finding (a cdk-nag rule, or one finding of it) on a construct and its
 * children, with the reason the finding does not apply.
 *
 * `Validations.acknowledge` rejects ids with more than one `::`, which cdk-nag's finding ids for ARNs
 * contain (`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:...]`). For those the acknowledgement is
 * recorded in the same construct metadata `Validations` writes and validation plugins read
 * (`Validations.ACKNOWLEDGED_RULES_METADATA_KEY`: an object of rule id to reason).
 */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (id.split('::').length <= 2) {
    Validations.of(scope).acknowledge({ id, reason });
    return;
  }
  const key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY;
  const previous = scope.node.metadata.filter((entry) => entry.type === key).pop()?.data ?? {};
  scope.node.addMetadata(key, { ...previous, [id]: reason });
}

/**
 * cdk-nag 3.0's EC26 rule (EBS volumes encrypted) throws, instead of evaluating, for every instance without a
 * launch template once its stack holds any launch template (an Auto Scaling group's, for one): a rule error that
 * blocks a user who runs `AwsSolutionsChecks`. At synth, once every volume of the instance is known, this
 * acknowledges EC26 on it if and only if every block device maps an encrypted EBS volume: a volume made
 * unencrypted later still fails the rule.
 */
export function acknowledgeEncryptedVolumes(instance: CfnInstance): void {
  Aspects.of(instance).add({
    visit(node: IConstruct) {
      if (node !== instance || Token.isUnresolved(instance.blockDeviceMappings)) {
        return;
      }
      const mappings = (instance.blockDeviceMappings ?? []) as CfnInstance.BlockDeviceMappingProperty[];
      const encrypted = mappings.length > 0 && mappings.every((mapping) => {
        const ebs = mapping.ebs as CfnInstance.EbsProperty | undefined;
        return ebs !== undefined && !Token.isUnresolved(ebs) && ebs.encrypted === true;
      });
      if (encrypted) {
        acknowledge(instance, 'AwsSolutions-EC26',
          'Every EBS volume of the builder is encrypted (checked at synth). cdk-nag 3.0 cannot evaluate EC26 on an instance without a launch template once the stack holds one, and reports a rule error instead.');
      }
    },
  });
}
