/**
 * The built-in example: a VPC, a BakedImage with nginx baked in and tested on a fresh instance before
 * use, and an Auto Scaling group that launches it through a launch template and replaces its instances
 * with a rolling update whenever the image is rebaked.
 *
 *   npx projen example        # synthesize into cdk.out, lint with cfn-lint, list the resources
 *   npx cdk deploy --app 'npx ts-node --prefer-ts-exts examples/web-fleet.ts'   # with an AWS account
 */
import { App, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { BakedImage, ImageValidation } from '../src';

export class WebFleetStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });

    // Bake time: the slow, heavy part (packages, content) goes into the image once.
    const image = new BakedImage(this, 'WebImage', {
      vpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      imageNamePrefix: 'web-fleet',
      init: ec2.CloudFormationInit.fromConfigSets({
        configSets: { bake: ['packages', 'content'] },
        configs: {
          packages: new ec2.InitConfig([
            ec2.InitPackage.yum('nginx'),
            ec2.InitService.enable('nginx', { serviceManager: ec2.ServiceManager.SYSTEMD }),
          ]),
          content: new ec2.InitConfig([
            ec2.InitFile.fromString('/usr/share/nginx/html/index.html', '<h1>Baked by cdk-baked-image</h1>\n'),
          ]),
        },
      }),
      initOptions: { configSets: ['bake'], timeout: Duration.minutes(20) },
      rebakeTrigger: '2026-11-22',
      // Other stacks and tools (instance refresh, launch templates) can resolve the current image here.
      imageIdParameterName: '/baked-image-web-fleet/image-id',
      // Rollback insurance: the two images before the current one stay until a third rebake.
      keepSupersededImages: 2,
      // Old images drop out of default listings after half a year.
      deprecateAfter: Duration.days(180),
      // The fleet only ever sees an image that served the page on a fresh instance.
      validation: ImageValidation.fromCommands([
        'systemctl is-active nginx',
        'curl -fsS http://localhost/ | grep -q "Baked by cdk-baked-image"',
      ], { timeout: Duration.minutes(5) }),
    });

    // Launch time: the Auto Scaling group starts from the baked image, so instances serve in seconds.
    const launchTemplate = new ec2.LaunchTemplate(this, 'WebTemplate', {
      machineImage: image,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
      requireImdsv2: true,
      securityGroup: new ec2.SecurityGroup(this, 'WebSecurityGroup', { vpc }),
    });
    new autoscaling.AutoScalingGroup(this, 'WebFleet', {
      vpc,
      launchTemplate,
      minCapacity: 2,
      maxCapacity: 4,
      // A rebake changes the launch template's ImageId: instances are replaced two at a time, and the
      // old image is deleted only after the whole update succeeded.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 2, minInstancesInService: 1 }),
    });

    new CfnOutput(this, 'ImageId', { value: image.imageId, description: 'The baked AMI' });
  }
}

/** Builds the example app; `outdir` is where the cloud assembly goes. */
export function createApp(outdir?: string): App {
  const app = new App({
    outdir,
    context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true },
  });
  new WebFleetStack(app, 'BakedImageWebFleet');
  return app;
}

if (require.main === module) {
  createApp().synth();
}
