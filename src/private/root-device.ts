import { Annotations, Token } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { validationError } from './errors';
import { RootVolume } from './root-volume';

/**
 * The device name of the builder's root volume, and so of the image's: `rootDeviceName` when given, else
 * `/dev/sda1` for Windows and `/dev/xvda` for Linux.
 */
export function rootDeviceNameFor(osType: ec2.OperatingSystemType, rootDeviceName?: string): string {
  return rootDeviceName ?? (osType === ec2.OperatingSystemType.WINDOWS ? '/dev/sda1' : '/dev/xvda');
}

/** A launch template's block devices with the image's root volume mapped, and where that mapping is. */
export interface RootVolumeMapping {
  /** The block devices to hand to `ec2.LaunchTemplate`. */
  readonly blockDevices?: ec2.BlockDevice[];
  /** The index of the root volume's mapping among them; undefined when it cannot be told apart. */
  readonly index?: number;
}

/**
 * The block devices of a launch template whose root volume gets a volume initialization rate: the user's own
 * mapping of the root device name when there is one (the rate goes onto it), else the user's mappings plus a
 * gp3 root volume, deleted on termination, without size or encryption (the image's snapshot gives both).
 * Never two mappings for one device name: device names that are tokens cannot be compared, and the user's
 * mappings are then left as they are (no index).
 *
 * @param scope the scope of the launch template, for errors
 * @param templatePath the path the launch template gets, for messages
 */
export function mapRootVolume(
  scope: Construct,
  templatePath: string,
  rootDeviceName: string,
  blockDevices: ec2.BlockDevice[] | undefined,
): RootVolumeMapping {
  const given = blockDevices ?? [];
  if (given.length > 0 && [rootDeviceName, ...given.map((device) => device.deviceName)].some((name) => Token.isUnresolved(name))) {
    return { blockDevices };
  }
  const index = given.findIndex((device) => device.deviceName === rootDeviceName);
  if (index < 0) {
    const root: ec2.BlockDevice = {
      deviceName: rootDeviceName,
      volume: new RootVolume({ volumeType: ec2.EbsDeviceVolumeType.GP3, deleteOnTermination: true }),
    };
    return { blockDevices: [...given, root], index: given.length };
  }
  const own = given[index];
  if (own.mappingEnabled === false || own.volume.ebsDevice === undefined) {
    throw validationError('BakedImageRootVolumeInitialization',
      `${templatePath}: blockDevices maps the image's root device ${rootDeviceName} to `
      + `${own.mappingEnabled === false ? 'no device' : `the instance store volume ${own.volume.virtualName}`}, which a volume initialization `
      + 'rate cannot apply to. Map it to an EBS volume, or set rootVolumeInitialization: VolumeInitialization.lazy().', scope);
  }
  return { blockDevices, index };
}

/**
 * Sets the volume initialization rate on the template's mapping at `index` of {@link mapRootVolume} (aws-cdk-lib's
 * `BlockDevice` cannot express it), or warns that it could not when there is no index.
 */
export function setVolumeInitializationRate(template: ec2.LaunchTemplate, index: number | undefined, rateMiBs: number): void {
  if (index === undefined) {
    Annotations.of(template).addWarningV2('cdk-baked-image:rootVolumeInitializationSkipped',
      'A device name of blockDevices, or the image\'s root device name, is a token: the root volume\'s mapping cannot be told apart, so '
      + `no volume initialization rate (${rateMiBs} MiB/s) was set. Set VolumeInitializationRate on your root volume's mapping yourself `
      + '(see Launch speed in the README), or set rootVolumeInitialization: VolumeInitialization.lazy() to silence this.');
    return;
  }
  const resource = template.node.defaultChild as ec2.CfnLaunchTemplate;
  resource.addPropertyOverride(`LaunchTemplateData.BlockDeviceMappings.${index}.Ebs.VolumeInitializationRate`, rateMiBs);
}
