/**
 * One bake, three regions: a BakedImage in us-east-1, encrypted with a customer managed key and shared
 * with a second account, is copied to us-west-2 and eu-west-1 once it is available. The bake completes
 * when every copy is; a rebake replaces the copies too, and a stack delete removes all of them with
 * their snapshots, in every region.
 *
 * A fleet in us-west-2 launches the us-west-2 copy. The bakery publishes each copy's id to the SSM parameter
 * `imageIdParameterName` of the copy's region (data type aws:ec2:image), and the fleet's stack reads it there when it is
 * deployed (`ec2.MachineImage.fromSsmParameter`): no cross-region reference, which CDK's export writer would refuse to
 * change at the second rebake. Deploy the bakery first; after a rebake, deploy the fleet to roll it to the new copy.
 *
 * Shared images must be encrypted with customer managed keys, in every region: the copies use a key of
 * their own region each (pass their ARNs as context; the defaults are placeholders).
 *
 *   npx cdk synth --app 'npx ts-node --prefer-ts-exts examples/multi-region.ts' \
 *     -c account=111122223333 -c westKeyArn=arn:aws:kms:us-west-2:... -c europeKeyArn=arn:aws:kms:eu-west-1:...
 */
import { App, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { BakedImage } from '../src';

const BAKERY_REGION = 'us-east-1';
const FLEET_REGION = 'us-west-2';
const EUROPE = 'eu-west-1';

/** The parameter the bakery writes in every region it copies to (and holds as a resource in its own). */
export const IMAGE_PARAMETER = '/multi-region-app/image-id';

export class MultiRegionBakeryStack extends Stack {
  public readonly image: BakedImage;

  constructor(scope: Construct, id: string, props: StackProps) {
    super(scope, id, props);
    const account = this.account;
    const keyArn = (name: string, region: string) => String(this.node.tryGetContext(name)
      ?? `arn:aws:kms:${region}:${account}:key/00000000-0000-0000-0000-000000000000`);

    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });
    this.image = new BakedImage(this, 'AppImage', {
      vpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      imageNamePrefix: 'multi-region-app',
      init: ec2.CloudFormationInit.fromElements(
        ec2.InitPackage.yum('nginx'),
        ec2.InitService.enable('nginx', { serviceManager: ec2.ServiceManager.SYSTEMD }),
      ),
      volumeEncryptionKey: new kms.Key(this, 'ImageKey', { enableKeyRotation: true, description: 'Encrypts the baked image' }),
      copies: [
        { region: FLEET_REGION, encryptionKey: kms.Key.fromKeyArn(this, 'WestKey', keyArn('westKeyArn', FLEET_REGION)) },
        { region: EUROPE, encryptionKey: kms.Key.fromKeyArn(this, 'EuropeKey', keyArn('europeKeyArn', EUROPE)) },
      ],
      // Each copy's id, published in its region: what the regional fleets read.
      imageIdParameterName: IMAGE_PARAMETER,
      shareWith: { accounts: [String(this.node.tryGetContext('shareWithAccount') ?? '444455556666')] },
      deprecateAfter: Duration.days(90),
      // Other accounts launch these images: nobody deregisters one by hand while they do. The stack's own
      // Delete lifts the protection first, on the image and on every copy.
      deregistrationProtection: true,
      // Copying to two regions takes longer than capturing: the whole wait may take up to 45 minutes.
      bakeTimeout: Duration.minutes(45),
    });
    for (const region of [FLEET_REGION, EUROPE]) {
      new CfnOutput(this, `ImageId-${region}`, { value: this.image.imageIdForRegion(region), description: `The copy in ${region}` });
    }
  }
}

export interface RegionalFleetStackProps extends StackProps {
  /** The SSM parameter, in this stack's region, that holds the id of the image's copy there. */
  readonly imageParameterName: string;
}

export class RegionalFleetStack extends Stack {
  constructor(scope: Construct, id: string, props: RegionalFleetStackProps) {
    super(scope, id, props);
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });
    new autoscaling.AutoScalingGroup(this, 'Fleet', {
      vpc,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
      // Resolved by CloudFormation when this stack is deployed: a rebake followed by a deploy of this stack moves the fleet.
      machineImage: ec2.MachineImage.fromSsmParameter(props.imageParameterName, { os: ec2.OperatingSystemType.LINUX }),
      requireImdsv2: true,
      minCapacity: 1,
      maxCapacity: 2,
    });
  }
}

/** Builds the example app: the bakery in us-east-1 and a fleet in us-west-2 that launches its copy there. */
export function createApp(outdir?: string, context: Record<string, string> = {}): App {
  const app = new App({
    outdir,
    context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true, ...context },
  });
  const account = String(app.node.tryGetContext('account') ?? '111122223333');
  const bakery = new MultiRegionBakeryStack(app, 'BakedImageBakery', {
    env: { account, region: BAKERY_REGION },
  });
  const fleet = new RegionalFleetStack(app, 'BakedImageFleetWest', {
    env: { account, region: FLEET_REGION },
    imageParameterName: IMAGE_PARAMETER,
  });
  // The parameter exists once the bakery is deployed (`cdk deploy --all` keeps this order).
  fleet.addDependency(bakery);
  return app;
}

if (require.main === module) {
  createApp().synth();
}
