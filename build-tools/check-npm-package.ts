/**
 * `npx projen package:check`: packs the npm package (`package:js`, after whatever ran before it, such as
 * `package:python-offline`, which leaves `.pacmak/` behind) and fails if the tarball carries anything but
 * what ships (build-tools/shippable.ts).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { unshippable } from './shippable';

const ROOT = path.resolve(__dirname, '..');
const { name, version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const tarball = path.join(ROOT, 'dist', 'js', `${name}@${version}.jsii.tgz`);
if (!fs.existsSync(tarball)) {
  console.error(`package:check: no ${path.relative(ROOT, tarball)}: run \`npx projen package:js\` first (the task does)`);
  process.exit(1);
}
const listing = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
if (listing.status !== 0) {
  console.error(`package:check: tar -tzf ${tarball} failed: ${listing.stderr}`);
  process.exit(1);
}
const entries = listing.stdout.split('\n').filter((entry) => entry !== '' && !entry.endsWith('/'));
const unexpected = unshippable(entries);
if (unexpected.length > 0) {
  console.error(`package:check: the npm package ships ${unexpected.length} file(s) that should stay out of it (add them to the package ignores in .projenrc.ts):\n  ${unexpected.slice(0, 40).join('\n  ')}`);
  process.exit(1);
}
console.log(`package:check: ${path.relative(ROOT, tarball)} holds ${entries.length} files, each of them shippable.`);
