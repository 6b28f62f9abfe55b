/**
 * Bake time vs launch time, the split the seeds describe: what is heavy and the same everywhere (nginx,
 * the application and its service unit) is baked into the image once; what differs per environment
 * or is only known on the live instance is applied at launch, by the Auto Scaling group's own cfn-init
 * configuration. One image serves every environment.
 *
 *   environment  'dev' | 'staging' | 'prod'  (default 'dev')  written to /etc/app/environment at launch
 *
 *   npx cdk synth --app 'npx ts-node --prefer-ts-exts examples/launch-time-config.ts' -c environment=prod
 *
 * Changing `environment` changes the launch template's user data (it carries the fingerprint of the
 * launch-time config), so the group rolls its instances, but it bakes no new image: the builder and
 * the image stay as they are. Secrets belong to neither phase's files: read them on the instance
 * (Secrets Manager, SSM Parameter Store) with the instance role.
 *
 * Notes for aws-cdk-lib 2.257: an Auto Scaling group with `init` requires `signals` (it throws without
 * them), and a launch template that defines a role and exposes user data: `image.newLaunchTemplate()`
 * gives both. The group adds the cfn-init call to the template's user data and the permissions to its
 * role. No launch configuration is involved: accounts created since 2024-10-01 cannot create them.
 */
import { App, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { BakedImage } from '../src';

/** The environments one image can be launched into. */
export const ENVIRONMENTS = ['dev', 'staging', 'prod'] as const;
export type Environment = typeof ENVIRONMENTS[number];

const SYSTEMD = { serviceManager: ec2.ServiceManager.SYSTEMD };

/** The service reads its settings from here; the file exists only on instances, never in the image. */
const ENVIRONMENT_FILE = '/etc/app/environment';

export class LaunchTimeConfigStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    const environment = readEnvironment(this);
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });

    // Bake time: packages, code and the service unit. The app service is installed but not enabled:
    // it starts once an instance knows its environment.
    const image = new BakedImage(this, 'AppImage', {
      vpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      imageNamePrefix: 'launch-time-config-app',
      init: ec2.CloudFormationInit.fromConfigSets({
        configSets: { bake: ['nginx', 'app'] },
        configs: {
          nginx: new ec2.InitConfig([
            ec2.InitPackage.yum('nginx'),
            // The packaged nginx.conf has a server of its own on port 80: replace it with one that
            // only loads conf.d, where the app's proxy lives.
            ec2.InitFile.fromString('/etc/nginx/nginx.conf', NGINX_CONF),
            ec2.InitFile.fromString('/etc/nginx/conf.d/app.conf', APP_PROXY_CONF),
            ec2.InitService.enable('nginx', SYSTEMD),
          ]),
          app: new ec2.InitConfig([
            ec2.InitFile.fromString('/opt/app/server.py', APP_SERVER, { mode: '000755' }),
            ec2.InitService.systemdConfigFile('app', {
              description: 'The example app, configured at launch through ' + ENVIRONMENT_FILE,
              command: '/usr/bin/python3 /opt/app/server.py',
              user: 'nobody',
              group: 'nobody',
              environmentFiles: [ENVIRONMENT_FILE],
            }),
          ]),
        },
      }),
      initOptions: { configSets: ['bake'], timeout: Duration.minutes(20) },
    });

    // Launch time: every instance the group starts runs this config, from the group's own metadata.
    const restartApp = new ec2.InitServiceRestartHandle();
    const launchInit = ec2.CloudFormationInit.fromConfigSets({
      configSets: { launch: ['environment'] },
      configs: {
        environment: new ec2.InitConfig([
          ec2.InitFile.fromString(ENVIRONMENT_FILE, [
            `APP_ENVIRONMENT=${environment}`,
            `APP_LOG_LEVEL=${environment === 'prod' ? 'info' : 'debug'}`,
            '',
          ].join('\n'), { serviceRestartHandles: [restartApp] }),
          ec2.InitService.enable('app', { ...SYSTEMD, serviceRestartHandle: restartApp }),
        ]),
      },
    });

    // The image's launch template: the image, IMDSv2, user data the group's init can extend, and an
    // instance role that cfn-init and cfn-signal use at launch.
    const launchTemplate = image.newLaunchTemplate(this, 'AppTemplate', {
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
      securityGroup: new ec2.SecurityGroup(this, 'AppSecurityGroup', { vpc }),
    });
    new autoscaling.AutoScalingGroup(this, 'AppFleet', {
      vpc,
      launchTemplate,
      minCapacity: 2,
      maxCapacity: 4,
      init: launchInit,
      initOptions: { configSets: ['launch'] },
      // An instance counts only once its launch-time config succeeded and it signalled. Launch-time
      // work is small (the heavy part is baked), so a few minutes are plenty.
      signals: autoscaling.Signals.waitForAll({ timeout: Duration.minutes(10) }),
      // A rebake or a new environment replaces one instance at a time, each waiting for its signal.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: 1 }),
    });

    new CfnOutput(this, 'ImageId', { value: image.imageId, description: 'One image for every environment' });
  }
}

/** Reads the `environment` context value; throws naming the key, the value and the allowed values. */
export function readEnvironment(scope: Construct): Environment {
  const raw: unknown = scope.node.tryGetContext('environment');
  const value = raw === undefined ? 'dev' : String(raw);
  if (!(ENVIRONMENTS as readonly string[]).includes(value)) {
    throw new Error(`Invalid context for the launch-time-config example: context value environment must be one of ${ENVIRONMENTS.map((e) => `'${e}'`).join(', ')}, got '${value}' (for example: cdk synth -c environment=staging)`);
  }
  return value as Environment;
}

const NGINX_CONF = `user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;
include /usr/share/nginx/modules/*.conf;

events {
  worker_connections 1024;
}

http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /var/log/nginx/access.log;
  sendfile on;
  include /etc/nginx/conf.d/*.conf;
}
`;

const APP_PROXY_CONF = `server {
  listen 80 default_server;
  listen [::]:80 default_server;
  location / {
    proxy_pass http://127.0.0.1:8080;
  }
}
`;

/** A stand-in for the application: answers with the environment it was launched into. */
const APP_SERVER = `#!/usr/bin/python3
import http.server
import os

BODY = ('environment=%s\\n' % os.environ.get('APP_ENVIRONMENT', 'unset')).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)


http.server.ThreadingHTTPServer(('127.0.0.1', 8080), Handler).serve_forever()
`;

/**
 * Builds the example app; `outdir` is where the cloud assembly goes, `context` holds `environment`,
 * as `cdk synth -c environment=prod` would.
 */
export function createApp(outdir?: string, context: Record<string, string> = {}): App {
  const app = new App({
    outdir,
    context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true, ...context },
  });
  new LaunchTimeConfigStack(app, 'BakedImageLaunchTimeConfig');
  return app;
}

if (require.main === module) {
  createApp().synth();
}
