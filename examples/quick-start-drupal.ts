/**
 * The AWS Quick Start's Drupal image, ported to BakedImage: the versions to install are chosen by
 * input, each choice is a named cfn-init config set, memcached is an optional config set, and a
 * `Version` value bakes a new image on demand. An Auto Scaling group launches the image through a
 * launch template and replaces its instances with a rolling update after every rebake.
 *
 * The Quick Start's template parameters are CDK context values here:
 *
 *   phpVersion     '8.2' | '8.3'      (default '8.3')   config set php82 or php83
 *   drupalVersion  '10' | '11'        (default '11')    config set drupal10 or drupal11
 *   memcached      'true' | 'false'   (default 'false') config set memcached, only when 'true'
 *   version        any string         (default '1')     the Quick Start's Version property: change it to rebake
 *
 *   npx cdk synth --app 'npx ts-node --prefer-ts-exts examples/quick-start-drupal.ts' \
 *     -c phpVersion=8.2 -c drupalVersion=10 -c memcached=true -c version=2
 *
 * What is not ported: the database (RDS) and the shared file system (EFS) the Quick Start mounts. They
 * differ per deployment and belong to launch time (see examples/launch-time-config.ts); the image holds
 * the software only. Package names are those of Amazon Linux 2023's repositories.
 */
import { App, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { BakedImage } from '../src';

/** The PHP versions the example can bake (Amazon Linux 2023 ships them as php8.2, php8.3 packages). */
export const PHP_VERSIONS = ['8.2', '8.3'] as const;
export type PhpVersion = typeof PHP_VERSIONS[number];

/** The Drupal major versions the example can bake. */
export const DRUPAL_VERSIONS = ['10', '11'] as const;
export type DrupalVersion = typeof DRUPAL_VERSIONS[number];

/** The release downloaded for each major version: bump it (or `version`) to bake a new image with it. */
const DRUPAL_RELEASES: Record<DrupalVersion, string> = { 10: '10.4.0', 11: '11.1.0' };

/** Drupal 11 requires PHP 8.3; Drupal 10 runs on both. */
const PHP_FOR_DRUPAL: Record<DrupalVersion, readonly PhpVersion[]> = { 10: ['8.2', '8.3'], 11: ['8.3'] };

/** The choices the Quick Start offered as template parameters, read from the CDK context. */
export interface DrupalChoices {
  readonly phpVersion: PhpVersion;
  readonly drupalVersion: DrupalVersion;
  readonly memcached: boolean;
  readonly version: string;
}

/**
 * Reads the choices from the context of `scope`. Every invalid value is reported in one error that
 * names the context key, the value and the allowed values.
 */
export function readDrupalChoices(scope: Construct): DrupalChoices {
  const problems: string[] = [];
  const phpVersion = contextChoice(scope, 'phpVersion', PHP_VERSIONS, '8.3', problems);
  const drupalVersion = contextChoice(scope, 'drupalVersion', DRUPAL_VERSIONS, '11', problems);
  const memcached = contextChoice(scope, 'memcached', ['true', 'false'] as const, 'false', problems) === 'true';
  const version = String(scope.node.tryGetContext('version') ?? '1');
  if (problems.length === 0 && !PHP_FOR_DRUPAL[drupalVersion].includes(phpVersion)) {
    problems.push(`context value drupalVersion '${drupalVersion}' needs phpVersion ${quoteAll(PHP_FOR_DRUPAL[drupalVersion])}, got phpVersion '${phpVersion}'`);
  }
  if (problems.length > 0) {
    throw new Error(`Invalid context for the Quick Start Drupal example:\n  - ${problems.join('\n  - ')}`);
  }
  return { phpVersion, drupalVersion, memcached, version };
}

/**
 * The names of the config sets the builder runs, in order, for these choices: the Quick Start's
 * `install-packageSet-<PhpVersion>`, `drupal` and the optional memcached set, with the web server
 * first and the start and smoke test last.
 */
export function drupalConfigSetNames(choices: DrupalChoices): string[] {
  return [
    'httpd',
    `php${choices.phpVersion.replace('.', '')}`,
    `drupal${choices.drupalVersion}`,
    ...(choices.memcached ? ['memcached'] : []),
    'start',
    'smoketest',
  ];
}

export class QuickStartDrupalStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    const choices = readDrupalChoices(this);
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });

    // The Quick Start had to put every variant into its template, because its parameters were known
    // only at deploy time. A CDK app knows them at synth time, so only the chosen config sets go into
    // the builder's metadata: editing the PHP 8.2 set never rebakes a PHP 8.3 image.
    const names = drupalConfigSetNames(choices);
    const configs: Record<string, ec2.InitConfig> = {};
    for (const name of names) {
      configs[name] = CONFIG_SETS[name](choices);
    }

    const image = new BakedImage(this, 'DrupalImage', {
      vpc,
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      imageNamePrefix: `quick-start-drupal${choices.drupalVersion}-php${choices.phpVersion}`,
      init: ec2.CloudFormationInit.fromConfigSets({
        configSets: Object.fromEntries(names.map((name) => [name, [name]])),
        configs,
      }),
      initOptions: { configSets: names, timeout: Duration.minutes(30) },
      // The Quick Start's `Version: 1` property: any new value bakes a new image from a fresh builder,
      // for example to pick up the PHP patch releases that came out since the last bake.
      rebakeTrigger: choices.version,
    });

    const securityGroup = new ec2.SecurityGroup(this, 'WebSecurityGroup', { vpc });
    securityGroup.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(80), 'HTTP from a load balancer in the VPC');
    const launchTemplate = new ec2.LaunchTemplate(this, 'WebTemplate', {
      machineImage: image,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.SMALL),
      requireImdsv2: true,
      securityGroup,
    });
    new autoscaling.AutoScalingGroup(this, 'WebFleet', {
      vpc,
      launchTemplate,
      minCapacity: 2,
      maxCapacity: 4,
      // A rebake (new choices or a new version) changes the launch template's ImageId: the instances
      // are replaced one at a time, and the old image is deleted once the whole update succeeded.
      updatePolicy: autoscaling.UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: 1 }),
    });

    new CfnOutput(this, 'ImageId', { value: image.imageId, description: `Drupal ${choices.drupalVersion} on PHP ${choices.phpVersion}` });
  }
}

const SYSTEMD = { serviceManager: ec2.ServiceManager.SYSTEMD };

/** Apache serves Drupal's own .htaccess rules; PHP runs in php-fpm (its package wires it into httpd). */
const DRUPAL_VHOST = `<VirtualHost *:80>
  DocumentRoot /var/www/drupal
  <Directory /var/www/drupal>
    AllowOverride All
    Require all granted
  </Directory>
</VirtualHost>
`;

/** Every config set the example knows, by name, as the Quick Start's template defined them. */
const CONFIG_SETS: Record<string, (choices: DrupalChoices) => ec2.InitConfig> = {
  httpd: () => new ec2.InitConfig([
    ec2.InitPackage.yum('httpd'),
    ec2.InitFile.fromString('/etc/httpd/conf.d/drupal.conf', DRUPAL_VHOST),
  ]),
  php82: () => phpConfig('8.2'),
  php83: () => phpConfig('8.3'),
  drupal10: () => drupalConfig('10'),
  drupal11: () => drupalConfig('11'),
  // Optional, like the Quick Start's memcached-drupal-<version> set: a local memcached and the PHP
  // extension the Drupal memcache module uses. For a cache shared by the fleet, point the module at
  // an ElastiCache cluster at launch time instead, as the Quick Start did.
  memcached: (choices) => new ec2.InitConfig([
    ...['memcached', 'libmemcached-awesome-devel', 'zlib-devel', 'gcc', 'make', 'php-pear', `php${choices.phpVersion}-devel`]
      .map((name) => ec2.InitPackage.yum(name)),
    // cfn-init writes files before it runs commands: the ini is in place before the extension is
    // built, which is fine because php-fpm starts only in the `start` config set.
    ec2.InitFile.fromString('/etc/php.d/50-memcached.ini', 'extension=memcached.so\n'),
    ec2.InitCommand.shellCommand("printf '\\n' | pecl install memcached", {
      key: '10-pecl-memcached',
      testCmd: '! php -m 2>/dev/null | grep -qx memcached',
    }),
    ec2.InitService.enable('memcached', SYSTEMD),
  ]),
  // Started only now, with everything in place: no restart handles needed.
  start: () => new ec2.InitConfig([
    ec2.InitService.enable('php-fpm', SYSTEMD),
    ec2.InitService.enable('httpd', SYSTEMD),
  ]),
  // A test of the image before the Auto Scaling group uses it: the bake fails unless Drupal's
  // installer answers (it needs no database to render its first page).
  smoketest: () => new ec2.InitConfig([
    ec2.InitCommand.shellCommand('curl --fail --silent --show-error --location --retry 5 --retry-connrefused --output /dev/null http://127.0.0.1/core/install.php', {
      key: '10-installer-answers',
    }),
  ]),
};

function phpConfig(version: PhpVersion): ec2.InitConfig {
  const extensions = ['', '-fpm', '-cli', '-gd', '-intl', '-mbstring', '-mysqlnd', '-opcache', '-xml'];
  return new ec2.InitConfig([
    ...extensions.map((suffix) => ec2.InitPackage.yum(`php${version}${suffix}`)),
    ec2.InitFile.fromString('/etc/php.d/90-drupal.ini', 'memory_limit = 256M\nupload_max_filesize = 64M\npost_max_size = 64M\n'),
  ]);
}

function drupalConfig(version: DrupalVersion): ec2.InitConfig {
  const release = DRUPAL_RELEASES[version];
  const site = '/var/www/drupal/sites/default';
  return new ec2.InitConfig([
    // The big download the Quick Start wanted out of every scale-out: fetched once, at bake time.
    ec2.InitSource.fromUrl('/var/www', `https://ftp.drupal.org/files/projects/drupal-${release}.tar.gz`),
    ec2.InitCommand.shellCommand(`mv /var/www/drupal-${release} /var/www/drupal`, { key: '10-install', testCmd: 'test ! -e /var/www/drupal' }),
    ec2.InitCommand.shellCommand(`install -d -o apache -g apache -m 0775 ${site}/files`, { key: '20-files-directory' }),
    ec2.InitCommand.shellCommand(`cp -n ${site}/default.settings.php ${site}/settings.php && chown apache:apache ${site}/settings.php`, {
      key: '30-settings',
    }),
    ec2.InitFile.fromString('/etc/drupal-release', `${release}\n`),
  ]);
}

/** A context value that must be one of `allowed`; a problem is recorded (and the fallback returned) if not. */
function contextChoice<T extends string>(scope: Construct, key: string, allowed: readonly T[], fallback: T, problems: string[]): T {
  const raw: unknown = scope.node.tryGetContext(key);
  const value = raw === undefined ? fallback : String(raw);
  if (!(allowed as readonly string[]).includes(value)) {
    problems.push(`context value ${key} must be one of ${quoteAll(allowed)}, got '${value}' (for example: cdk synth -c ${key}=${fallback})`);
    return fallback;
  }
  return value as T;
}

function quoteAll(values: readonly string[]): string {
  return values.map((value) => `'${value}'`).join(', ');
}

/**
 * Builds the example app; `outdir` is where the cloud assembly goes, `context` holds the choices
 * (phpVersion, drupalVersion, memcached, version), as `cdk synth -c key=value` would.
 */
export function createApp(outdir?: string, context: Record<string, string> = {}): App {
  const app = new App({
    outdir,
    context: { '@aws-cdk/aws-autoscaling:generateLaunchTemplateInsteadOfLaunchConfig': true, ...context },
  });
  new QuickStartDrupalStack(app, 'BakedImageQuickStartDrupal');
  return app;
}

if (require.main === module) {
  createApp().synth();
}
