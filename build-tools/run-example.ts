/**
 * `npx projen example`: synthesizes examples/web-fleet.ts into cdk.out, lints every template with
 * cfn-lint (errors fail the run), and prints what would be deployed.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { createApp } from '../examples/web-fleet';

const outdir = path.resolve(process.argv[2] ?? 'cdk.out');
fs.rmSync(outdir, { recursive: true, force: true });
const assembly = createApp(outdir).synth();

const templates = assembly.stacks.map((stack) => path.join(outdir, stack.templateFile));
const lint = spawnSync('cfn-lint', ['--non-zero-exit-code', 'error', '--', ...templates], { encoding: 'utf8' });
if (lint.error) {
  console.error(`cfn-lint could not run (${lint.error.message}). Install it with: pip install cfn-lint`);
  process.exit(1);
}
const findings = `${lint.stdout}${lint.stderr}`.trim();
if (lint.status !== 0) {
  console.error(`cfn-lint found errors:\n${findings}`);
  process.exit(1);
}

for (const stack of assembly.stacks) {
  const resources: Record<string, { Type: string }> = stack.template.Resources ?? {};
  const byType = new Map<string, number>();
  for (const resource of Object.values(resources)) {
    byType.set(resource.Type, (byType.get(resource.Type) ?? 0) + 1);
  }
  console.log(`\nStack ${stack.stackName}: ${Object.keys(resources).length} resources would be deployed`);
  for (const [type, count] of [...byType.entries()].sort()) {
    console.log(`  ${String(count).padStart(3)}  ${type}`);
  }
  const bake = Object.entries(resources).filter(([, r]) => r.Type === 'Custom::BakedImage' || r.Type === 'AWS::EC2::Instance');
  console.log('  The bake:');
  for (const [logicalId, resource] of bake) {
    console.log(`       ${resource.Type.padEnd(22)} ${logicalId}`);
  }
  console.log(`  Template: ${path.relative(process.cwd(), path.join(outdir, stack.templateFile))}`);
}
const warnings = findings.split('\n').filter((line) => /^W\d+/.test(line)).length;
console.log(`\ncfn-lint: 0 errors, ${warnings} warnings (${templates.length} template${templates.length === 1 ? '' : 's'})`);
