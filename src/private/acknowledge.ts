import { Validations } from 'aws-cdk-lib';
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
