import { awscdk, javascript } from 'projen';

const CDK_VERSION = '2.257.0';
const BAKE_IMAGE_HANDLER = 'lambda/bake-image/index.ts';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-baked-image',
  description:
    'Bake software into an AMI at deploy time from a cfn-init builder instance, and feed it to an Auto Scaling group. Rebaked when its inputs change, cleaned up (snapshots included) with the stack.',
  keywords: ['cdk', 'awscdk', 'aws-cdk', 'ami', 'ec2', 'image', 'bake', 'autoscaling', 'cfn-init', 'golden-image'],
  author: 'cdk-baked-image maintainers',
  authorAddress: 'maintainers@cdk-baked-image.dev',
  repositoryUrl: 'https://github.com/cdk-baked-image/cdk-baked-image.git',
  license: 'Apache-2.0',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  stability: 'experimental',

  // aws-cdk-lib is a peer dependency; the devDependency pin is the peer floor (see CONTRIBUTING.md).
  cdkVersion: CDK_VERSION,
  cdkVersionPinning: false,
  constructsVersion: '10.5.1',
  jsiiVersion: '~6.0.0',

  publishToPypi: {
    distName: 'cdk-baked-image',
    module: 'cdk_baked_image',
  },

  devDeps: [
    '@aws-sdk/client-ec2@^3.1100.0',
    '@types/aws-lambda@^8.10.150',
    '@types/node@^22',
    'typescript@~6.0.3',
    'aws-sdk-client-mock@4.1.0',
    'aws-sdk-client-mock-jest@4.1.0',
    'cdk-nag@^3.0.0',
    '@aws-cdk/integ-runner@2.197.10',
    '@aws-cdk/integ-tests-alpha@2.245.0-alpha.0',
  ],

  // A root tsconfig.dev.json covers src, test, lambda, examples, build-tools and .projenrc.ts.
  tsconfigDevFile: 'tsconfig.dev.json',
  tsconfigDev: {
    compilerOptions: {},
    include: ['src/**/*.ts', 'test/**/*.ts', 'lambda/**/*.ts', 'examples/**/*.ts', 'build-tools/**/*.ts', '.projenrc.ts'],
    exclude: ['node_modules', 'cdk.out'],
  },
  eslintOptions: {
    dirs: ['src'],
    devdirs: ['test', 'lambda', 'examples', 'build-tools'],
    tsconfigPath: './tsconfig.dev.json',
    projectService: false,
  },

  jestOptions: {
    // Snapshots never update themselves during a test run: `npx projen test:update` does that on purpose.
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    jestConfig: {
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      coveragePathIgnorePatterns: ['/node_modules/', '/assets/'],
    },
  },

  gitignore: ['cdk.out/', '/examples/cdk.out/', '.pacmak/'],

  githubOptions: { mergify: false },
  depsUpgrade: false,
  pullRequestTemplate: false,
});

// Sources of the handlers, examples, build tools and CI stay out of the tarball; assets/ (the bundles) ships.
for (const pattern of ['/lambda/', '/examples/', '/build-tools/', '/.ci/', 'cdk.out/', '/tsconfig.dev.json', '/TESTING.md', '/CONTRIBUTING.md']) {
  project.addPackageIgnore(pattern);
}

// npm ci fails on unrs-resolver@1.13.0 (platform packages the registry does not serve): pin the last good release.
project.package.addField('overrides', { 'unrs-resolver': '1.12.2' });

// The provider's handlers live in the top-level lambda/ folder and are bundled into assets/, which ships
// in the npm tarball. @aws-sdk/* stays external: every supported Node.js Lambda runtime ships SDK v3, and the
// handlers use no API newer than the runtime's SDK (snapshots are deleted explicitly, see CONTRIBUTING.md).
const bundle = project.bundler.addBundle(BAKE_IMAGE_HANDLER, {
  platform: 'node',
  target: 'node22',
  externals: ['@aws-sdk/*'],
  sourcemap: false,
  minify: false,
});

// `npx projen test` on its own must find the bundled handler (Code.fromAsset and the moto integration tests load it).
project.testTask.prependSpawn(bundle.bundleTask);

// updateSnapshot NEVER makes projen add a `test:update` task: the one way to change snapshots on purpose.
project.tasks.tryFind('test:update')?.prependSpawn(bundle.bundleTask);

project.addTask('example', {
  description: 'Synthesize the example app (VPC, BakedImage, Auto Scaling group) into cdk.out, lint it with cfn-lint, print what would be deployed',
  steps: [
    { spawn: bundle.bundleTask.name },
    { exec: 'ts-node --project tsconfig.dev.json build-tools/run-example.ts' },
  ],
});

project.synth();
