/**
 * A two-layer AMI bakery in one stack: a `foundation` image (the OS patched with `dnf -y update` and
 * the agents every instance runs) and an `app` image baked on top of it (nginx and the site), which an
 * Auto Scaling group launches through a launch template with a rolling update.
 *
 * Rebakes cascade down the layers. A BakedImage is an `ec2.IMachineImage`, so the app's builder starts
 * from `Fn::GetAtt [Foundation image, ImageId]`. When the foundation rebakes (its init changed, or a
 * new `foundationVersion`), its new ImageId changes the app builder's ImageId, a property that
 * replaces an EC2 instance: CloudFormation launches a new app builder, whose new instance id makes
 * the app image rebake on the patched foundation, and the launch template then rolls the fleet onto
 * it. An app-only change (its init, or a new `appVersion`) rebakes the app layer alone, reusing the
 * foundation image as it is. Both bakes share the stack's one provider; a cascade runs them one after
 * the other, each within the one-hour limit of a custom resource.
 *
 *   npx cdk synth --app 'npx ts-node --prefer-ts-exts examples/layered-bakery.ts' -c foundationVersion=2026-12 -c appVersion=3
 */
import { App, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { BakedImage } from '../src';

const SYSTEMD = { serviceManager: ec2.ServiceManager.SYSTEMD };

export class LayeredBakeryStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    // Change these to rebake a layer although its config did not change: a monthly patch cycle for
    // the foundation, a release number for the app.
    const foundationVersion = String(this.node.tryGetContext('foundationVersion') ?? '2026-11');
    const appVersion = String(this.node.tryGetContext('appVersion') ?? '1');

    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });

    // Layer 1: what every image of the account starts from.
    const foundation = new BakedImage(this, 'Foundation', {
      vpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      imageNamePrefix: 'bakery-foundation',
      init: ec2.CloudFormationInit.fromConfigSets({
        configSets: { foundation: ['update', 'agents', 'record'] },
        configs: {
          // Commands run after packages within one config, so the update gets a config of its own
          // and runs first. A kernel update takes effect in the reboot before the image is captured.
          update: new ec2.InitConfig([
            ec2.InitCommand.shellCommand('dnf -y update', { key: '10-os-updates' }),
          ]),
          agents: new ec2.InitConfig([
            ec2.InitPackage.yum('amazon-cloudwatch-agent'),
            ec2.InitPackage.yum('amazon-ssm-agent'),
            ec2.InitService.enable('amazon-ssm-agent', SYSTEMD),
          ]),
          record: new ec2.InitConfig([layerRecord('foundation', foundationVersion)]),
        },
      }),
      initOptions: { configSets: ['foundation'], timeout: Duration.minutes(30) },
      rebakeTrigger: foundationVersion,
    });

    // Layer 2: the application, baked on the foundation image. The child rebakes when the parent
    // does: the parent's new ImageId replaces the child's builder (see the comment at the top).
    const app = new BakedImage(this, 'App', {
      vpc,
      machineImage: foundation,
      imageNamePrefix: 'bakery-app',
      init: ec2.CloudFormationInit.fromConfigSets({
        configSets: { app: ['web', 'record'] },
        configs: {
          web: new ec2.InitConfig([
            ec2.InitPackage.yum('nginx'),
            ec2.InitFile.fromString('/usr/share/nginx/html/index.html', '<h1>Baked in two layers by cdk-baked-image</h1>\n'),
            ec2.InitService.enable('nginx', SYSTEMD),
          ]),
          record: new ec2.InitConfig([layerRecord('app', appVersion)]),
        },
      }),
      initOptions: { configSets: ['app'], timeout: Duration.minutes(20) },
      rebakeTrigger: appVersion,
    });

    const launchTemplate = new ec2.LaunchTemplate(this, 'WebTemplate', {
      machineImage: app,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
      requireImdsv2: true,
      securityGroup: new ec2.SecurityGroup(this, 'WebSecurityGroup', { vpc }),
    });
    new autoscaling.AutoScalingGroup(this, 'WebFleet', {
      vpc,
      launchTemplate,
      minCapacity: 2,
      maxCapacity: 4,
      // A rebake of either layer ends in a new app image: the fleet rolls onto it one instance at a
      // time, and the replaced images are deleted once the whole update succeeded.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: 1 }),
    });

    new CfnOutput(this, 'FoundationImageId', { value: foundation.imageId, description: 'The foundation layer' });
    new CfnOutput(this, 'AppImageId', { value: app.imageId, description: 'The app layer, on the foundation' });
  }
}

/**
 * A file that records which layer and version went into the image. Each layer writes its own, so an
 * instance of the app image tells what it is made of: `cat /etc/bakery/*.json`.
 */
function layerRecord(layer: string, version: string): ec2.InitFile {
  return ec2.InitFile.fromObject(`/etc/bakery/${layer}.json`, { layer, version });
}

/**
 * Builds the example app; `outdir` is where the cloud assembly goes, `context` holds
 * `foundationVersion` and `appVersion`, as `cdk synth -c key=value` would.
 */
export function createApp(outdir?: string, context: Record<string, string> = {}): App {
  const app = new App({
    outdir,
    context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true, ...context },
  });
  new LayeredBakeryStack(app, 'BakedImageLayeredBakery');
  return app;
}

if (require.main === module) {
  createApp().synth();
}
