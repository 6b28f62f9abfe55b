/**
 * Integration test: a VPC, a BakedImage with nginx baked in, and an Auto Scaling group launching it.
 * After deployment the assertion asks EC2 for the baked image: it must be `available` and carry the
 * managed-by tag the handler sets on every image it makes.
 *
 *   npx projen integ:verify    # synthesize and compare with the committed snapshot (no AWS access)
 *   npx projen integ:update    # rewrite the snapshot without deploying (the runner calls that "not recommended")
 *   npx integ-runner --language typescript --update-on-failed   # deploy, assert, destroy (needs an AWS account)
 *
 * The snapshot in integ.web-fleet.ts.snapshot/ has not been deployed: see TESTING.md.
 */
import { ExpectedResult, IntegTest, Match } from '@aws-cdk/integ-tests-alpha';
import { App, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { BakedImage } from '../src';
import { MANAGED_BY_VALUE, Tag } from '../src/private/contract';

const app = new App({
  // No stack traces in the snapshot's metadata files: they hold absolute paths of the checkout and line
  // numbers, so the committed snapshot would change with every clone and every edit of this file.
  stackTraces: false,
  postCliContext: {
    'aws:cdk:disable-creation-stack-traces': true,
    // Without this flag the Auto Scaling group synthesizes a LaunchConfiguration, which AWS accounts
    // created since 2024-10-01 cannot create. postCliContext: the runner's context cannot turn it off.
    '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true,
  },
});
const stack = new Stack(app, 'BakedImageIntegWebFleet');

// The builder needs a route out (packages, the CloudFormation endpoint): one NAT gateway.
const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });

const image = new BakedImage(stack, 'WebImage', {
  vpc,
  machineImage: ec2.MachineImage.latestAmazonLinux2023(),
  imageNamePrefix: 'integ-web-fleet',
  init: ec2.CloudFormationInit.fromElements(
    ec2.InitPackage.yum('nginx'),
    ec2.InitService.enable('nginx'),
  ),
});

new autoscaling.AutoScalingGroup(stack, 'WebFleet', {
  vpc,
  instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
  machineImage: image,
  minCapacity: 1,
  maxCapacity: 1,
  requireImdsv2: true,
  updatePolicy: autoscaling.UpdatePolicy.rollingUpdate(),
});

const integ = new IntegTest(app, 'BakedImageWebFleetTest', {
  testCases: [stack],
  // Asset hashes (the handler bundle) are left out of the snapshot comparison: the templates must match.
  diffAssets: false,
  // A change of the image inputs replaces the builder by design (a fresh builder bakes the new image).
  allowDestroy: ['AWS::EC2::Instance'],
});

// The custom resource returns the image id only once the image is available; ask EC2 what it holds.
integ.assertions
  .awsApiCall('EC2', 'describeImages', { ImageIds: [image.imageId] })
  .expect(ExpectedResult.objectLike({
    Images: [
      Match.objectLike({
        ImageId: image.imageId,
        State: 'available',
        Tags: Match.arrayWith([{ Key: Tag.MANAGED_BY, Value: MANAGED_BY_VALUE }]),
      }),
    ],
  }));
