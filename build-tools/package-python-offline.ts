/**
 * `npx projen package:python-offline`: builds the Python wheel and sdist into dist/python without
 * network access, then checks what they carry. The task compiles and bundles first.
 *
 * jsii-pacmak's python target creates a virtualenv and pip-installs setuptools, build and twine, which
 * fails where PyPI is unreachable. Here pacmak only generates the package (`--code-only`), and
 * python3 with the system's setuptools and wheel (Debian: python3-setuptools, python3-wheel) builds
 * the distributions. Override the interpreter with PYTHON_OFFLINE=/path/to/python3.
 */
import { spawnSync, SpawnSyncReturns } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { unshippable } from './shippable';

const ROOT = path.resolve(__dirname, '..');
const PYTHON = process.env.PYTHON_OFFLINE ?? '/usr/bin/python3';
const PACMAK_OUT = path.join(ROOT, '.pacmak');
const PACKAGE_DIR = path.join(PACMAK_OUT, 'python');
const DIST = path.join(ROOT, 'dist', 'python');
const BUNDLE = 'assets/lambda/bake-image/index/index.js';
const MODULE = 'cdk_baked_image';
/** Exported names the Python package must define (class and struct of the public API). */
const PUBLIC_NAMES = ['BakedImage', 'BakedImageProps', 'BuilderAfterBake'];

function fail(message: string): never {
  console.error(`package:python-offline: ${message}`);
  process.exit(1);
}

function run(command: string, args: string[], cwd: string, what: string): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) {
    fail(`${what}: could not run ${command} (${result.error.message})`);
  }
  if (result.status !== 0) {
    fail(`${what} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  }
  return result;
}

// 1. Preconditions: the interpreter with setuptools and wheel, a compiled assembly, the handler bundle.
const probe = spawnSync(PYTHON, ['-c', 'import setuptools, wheel; print(setuptools.__version__, wheel.__version__)'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) {
  fail(`needs ${PYTHON} with setuptools and wheel (Debian: apt-get install python3-setuptools python3-wheel; ` +
    `or set PYTHON_OFFLINE to another python3): ${probe.error?.message ?? probe.stderr.trim()}`);
}
const assemblyFile = path.join(ROOT, '.jsii');
if (!fs.existsSync(assemblyFile)) {
  fail('no .jsii assembly: run `npx projen compile` first (the task does)');
}
if (!fs.existsSync(path.join(ROOT, BUNDLE))) {
  fail(`no handler bundle at ${BUNDLE}: run \`npx projen bundle\` first (the task does)`);
}
const assembly = JSON.parse(fs.readFileSync(assemblyFile, 'utf8')) as { name: string; version: string };
const version = assembly.version;
const distName = assembly.name; // cdk-baked-image

// 2. Generate the Python package, then build the wheel and the sdist with the system's setuptools.
const started = Date.now();
fs.rmSync(PACKAGE_DIR, { recursive: true, force: true });
fs.rmSync(DIST, { recursive: true, force: true });
fs.mkdirSync(DIST, { recursive: true });
run(path.join(ROOT, 'node_modules', '.bin', 'jsii-pacmak'), ['--target', 'python', '--code-only', '-o', PACMAK_OUT], ROOT, 'jsii-pacmak --target python --code-only');
run(PYTHON, ['setup.py', '-q', 'bdist_wheel', '--dist-dir', DIST, 'sdist', '--dist-dir', DIST], PACKAGE_DIR, 'setup.py bdist_wheel sdist');
// setup.py leaves build/ and *.egg-info in the generated package; they are not ours to keep.
fs.rmSync(path.join(PACKAGE_DIR, 'build'), { recursive: true, force: true });

const wheelName = `${distName.replace(/-/g, '_')}-${version}-py3-none-any.whl`;
const sdistName = `${distName}-${version}.tar.gz`;
for (const name of [wheelName, sdistName]) {
  if (!fs.existsSync(path.join(DIST, name))) {
    fail(`expected dist/python/${name}, found: ${fs.readdirSync(DIST).join(', ') || 'nothing'}`);
  }
}

// 3. Read the archives with python's zipfile and tarfile (no unzip or node zip reader needed).
const INSPECT = `
import hashlib, io, json, sys, tarfile, zipfile
wheel_path, sdist_path, module = sys.argv[1:4]
out = {"wheel": {}, "sdist": [], "tarballs": {}, "init": "", "init_compiles": False, "metadata": ""}
with zipfile.ZipFile(wheel_path) as wheel:
    for info in wheel.infolist():
        out["wheel"][info.filename] = info.file_size
    init = wheel.read(module + "/__init__.py").decode("utf-8") if module + "/__init__.py" in out["wheel"] else ""
    out["init"] = init
    try:
        compile(init, module + "/__init__.py", "exec")
        out["init_compiles"] = bool(init)
    except SyntaxError as e:
        out["init_error"] = str(e)
    for name in out["wheel"]:
        if name.endswith(".dist-info/METADATA"):
            out["metadata"] = wheel.read(name).decode("utf-8")
        if name.startswith(module + "/_jsii/") and name.endswith(".jsii.tgz"):
            members = {}
            with tarfile.open(fileobj=io.BytesIO(wheel.read(name)), mode="r:gz") as tgz:
                for member in tgz.getmembers():
                    if member.isfile():
                        members[member.name] = hashlib.sha256(tgz.extractfile(member).read()).hexdigest()
            out["tarballs"][name] = members
with tarfile.open(sdist_path, mode="r:gz") as sdist:
    out["sdist"] = [m.name for m in sdist.getmembers() if m.isfile()]
json.dump(out, sys.stdout)
`;
interface Inspection {
  wheel: Record<string, number>;
  sdist: string[];
  tarballs: Record<string, Record<string, string>>;
  init: string;
  init_compiles: boolean;
  init_error?: string;
  metadata: string;
}
const inspected = run(PYTHON, ['-c', INSPECT, path.join(DIST, wheelName), path.join(DIST, sdistName), MODULE], ROOT, 'reading the wheel');
const found = JSON.parse(inspected.stdout) as Inspection;

// 4. Check them, collect every problem, fail once.
const problems: string[] = [];
const jsiiTarball = `${MODULE}/_jsii/${distName}@${version}.jsii.tgz`;
for (const entry of [`${MODULE}/__init__.py`, `${MODULE}/py.typed`, `${MODULE}/_jsii/__init__.py`, jsiiTarball]) {
  if (!(entry in found.wheel)) {
    problems.push(`the wheel lacks ${entry}`);
  }
}
if (!found.init_compiles) {
  problems.push(`${MODULE}/__init__.py does not compile: ${found.init_error ?? 'empty'}`);
}
for (const name of PUBLIC_NAMES) {
  if (!new RegExp(`^class ${name}\\b`, 'm').test(found.init)) {
    problems.push(`${MODULE}/__init__.py defines no class ${name}`);
  }
  if (!new RegExp(`__all__ = \\[[^\\]]*"${name}"`, 's').test(found.init)) {
    problems.push(`${MODULE}/__init__.py does not export ${name} in __all__`);
  }
}
for (const line of [`Name: ${distName}`, `Version: ${version}`, 'Requires-Dist: aws-cdk-lib', 'Requires-Dist: constructs', 'Requires-Dist: jsii', 'Classifier: Typing :: Typed']) {
  if (!found.metadata.split('\n').some((l) => l.startsWith(line))) {
    problems.push(`the wheel's METADATA has no line starting with '${line}'`);
  }
}
const tarball = found.tarballs[jsiiTarball] ?? {};
for (const entry of ['package/.jsii', 'package/package.json', 'package/lib/index.js', 'package/lib/index.d.ts', `package/${BUNDLE}`]) {
  if (!(entry in tarball)) {
    problems.push(`the jsii tarball ${jsiiTarball} lacks ${entry}`);
  }
}
const bundleHash = crypto.createHash('sha256').update(fs.readFileSync(path.join(ROOT, BUNDLE))).digest('hex');
if (tarball[`package/${BUNDLE}`] && tarball[`package/${BUNDLE}`] !== bundleHash) {
  problems.push(`the jsii tarball carries a different ${BUNDLE} than the one just bundled`);
}
const unexpected = unshippable(Object.keys(tarball));
if (unexpected.length > 0) {
  problems.push(`the jsii tarball (the npm package) ships files that should stay out of it (add them to the package ignores in .projenrc.ts):\n    ${unexpected.join('\n    ')}`);
}
const sdistRoot = `${distName}-${version}`;
for (const entry of ['setup.py', 'pyproject.toml', `src/${MODULE}/__init__.py`, `src/${MODULE}/py.typed`, `src/${jsiiTarball}`]) {
  if (!found.sdist.includes(`${sdistRoot}/${entry}`)) {
    problems.push(`the sdist lacks ${sdistRoot}/${entry}`);
  }
}

// 5. Report.
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1).padStart(7)} KB`;
console.log(`\ndist/python (${((Date.now() - started) / 1000).toFixed(1)} s):`);
for (const name of fs.readdirSync(DIST).sort()) {
  console.log(`  ${kb(fs.statSync(path.join(DIST, name)).size)}  ${name}`);
}
console.log(`\n${wheelName}:`);
for (const [name, size] of Object.entries(found.wheel)) {
  console.log(`  ${kb(size)}  ${name}`);
}
console.log(`\n${jsiiTarball}: ${Object.keys(tarball).length} files, ${BUNDLE} ${tarball[`package/${BUNDLE}`] ? 'present' : 'MISSING'}`);
if (problems.length > 0) {
  fail(`${problems.length} problem${problems.length === 1 ? '' : 's'} with the Python distributions:\n  - ${problems.join('\n  - ')}`);
}
console.log(`\nPython wheel and sdist checked: ${PUBLIC_NAMES.join(', ')}, py.typed, the jsii assembly and the handler bundle are in.`);
