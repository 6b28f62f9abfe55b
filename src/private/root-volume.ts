import * as ec2 from 'aws-cdk-lib/aws-ec2';

/**
 * An EBS root volume whose size may be left to the base image's snapshot (`BlockDeviceVolume.ebs`
 * insists on a size; CloudFormation does not).
 */
export class RootVolume extends ec2.BlockDeviceVolume {
  constructor(props: ec2.EbsDeviceProps) {
    super(props);
  }
}
