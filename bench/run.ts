/**
 * The cdk-baked-image benchmark (`npx projen bench`):
 *
 *   npx ts-node --project tsconfig.dev.json bench/run.ts
 *
 * Measures, in one run: synth time and template growth against a plain app, the handler bundle's size and
 * cold load time, the EC2 calls per custom-resource lifecycle (the shipped bundle against moto_server), and
 * a poll cost model read from the synthesized provider, and a launch speed model (the root volume's initialization,
 * from the EBS documentation's figures). Writes bench/RESULTS.md and prints the same text.
 * Needs the handler bundle (npx projen bundle) and moto_server on PATH; no AWS account.
 *
 *   npx ts-node --project tsconfig.dev.json bench/run.ts --launch-only
 *
 * computes the launch model alone (no bundle, no moto_server, nothing measured) and replaces only the "## Launch"
 * section of bench/RESULTS.md, leaving the measured sections as they were.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { countApiCalls } from './api-calls';
import { bakeCost, FRAMEWORK_DEFAULT_INTERVAL_SECONDS, meanDetectionDelay, readProviderSettings } from './cost-model';
import { bundleSize, REPO_ROOT, timeColdLoads } from './handlers';
import { launchModel } from './launch-model';
import { type Environment, type Figures, renderLaunchSection, renderReport, replaceLaunchSection, type SynthFigures, type Target } from './report';
import { usd } from './stats';
import { countByType, resourceBytes, type SynthTiming, timeSynth } from './synth';
import { type BakeImageHandler, MotoHarness } from '../test/lambda/moto-server';

const IMAGE_COUNTS = [1, 5, 20] as const;
const SYNTH_RUNS = 7;
const LOAD_RUNS = 15;
const BAKE_MINUTES = [5, 15, 45] as const;
const SENSITIVITY_INTERVALS = [5, 10, 15, 18, 20, 30, 60] as const;
const RESULTS_FILE = path.join(__dirname, 'RESULTS.md');

// Target thresholds.
const MAX_SYNTH_RATIO = 1.5;
const MAX_RESOURCES_PER_IMAGE = 6;
const MAX_BUNDLE_BYTES = 50 * 1024;
const MAX_COLD_LOAD_MS = 150;
const MAX_BAKE_USD = 0.0015;
const MAX_MEAN_DELAY_SECONDS = 10;

function progress(message: string): void {
  process.stderr.write(`[bench ${process.uptime().toFixed(1)} s] ${message}\n`);
}

function packageVersion(name: string): string {
  const file = path.join(REPO_ROOT, 'node_modules', ...name.split('/'), 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

function environment(): Environment {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: os.totalmem() / 1024 ** 3,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAverageAtStart: os.loadavg()[0],
    versions: Object.fromEntries(['aws-cdk-lib', '@aws-sdk/client-ec2', 'esbuild'].map((name) => [name, packageVersion(name)])),
  };
}

function synthFigures(timings: SynthTiming[]): SynthFigures {
  const at = (n: number) => {
    const timing = timings.find((candidate) => candidate.images === n);
    if (!timing) {
      throw new Error(`no synth timing for N=${n}`);
    }
    return timing;
  };
  const [one, five, twenty] = [at(1), at(5), at(20)];
  const growth = (kind: 'baked' | 'plain') => {
    const count = (timing: SynthTiming) => Object.keys(timing[kind].template.Resources).length;
    const size = (timing: SynthTiming) => timing[kind].templateBytes;
    return {
      resources: (count(twenty) - count(five)) / 15,
      bytes: (size(twenty) - size(five)) / 15,
      resourcesSmall: (count(five) - count(one)) / 4,
      bytesSmall: (size(five) - size(one)) / 4,
    };
  };
  const providerBytes = (timing: SynthTiming) => resourceBytes(timing.baked.template, timing.baked.providerLogicalIds);
  const bakedPerImage = growth('baked');
  const consumerPerImage = one.baked.firstConsumerLogicalIds.length;
  return {
    runs: SYNTH_RUNS,
    timings,
    bakedPerImage,
    plainPerImage: growth('plain'),
    msPerImage: {
      baked: (twenty.bakedMedian - five.bakedMedian) / 15,
      plain: (twenty.plainMedian - five.plainMedian) / 15,
    },
    ownResources: countByType(one.baked.template, one.baked.firstImageLogicalIds),
    consumerPerImage,
    libraryPerImage: { small: bakedPerImage.resourcesSmall - consumerPerImage, large: bakedPerImage.resources - consumerPerImage },
    providerResources: countByType(one.baked.template, one.baked.providerLogicalIds),
    providerResourcesAt: timings.map((timing) => ({
      images: timing.images,
      resources: countByType(timing.baked.template, timing.baked.providerLogicalIds),
    })),
    providerBytes: providerBytes(one),
    providerBytesPerImage: (providerBytes(twenty) - providerBytes(five)) / 15,
  };
}

function evaluateTargets(figures: Omit<Figures, 'targets' | 'runSeconds' | 'loadAverageAtEnd' | 'launch'>): Target[] {
  const { synth, bundle, loads, api, cost } = figures;
  const one = synth.timings.find((timing) => timing.images === 1);
  const ownPerImage = [...synth.ownResources.values()].reduce((a, b) => a + b, 0);
  const libraryPerImage = Math.max(synth.libraryPerImage.small, synth.libraryPerImage.large);
  const fifteen = cost.configured.find((c) => c.bakeMinutes === 15);
  const delay = meanDetectionDelay(cost.settings.intervalSeconds);
  const pollCalls = api.pendingPollCalls;
  return [
    {
      name: `synth with one image <= ${MAX_SYNTH_RATIO}x the plain app`,
      measured: one ? `${one.ratio.toFixed(2)}x (${one.bakedMedian.toFixed(1)} ms vs ${one.plainMedian.toFixed(1)} ms)` : 'not measured',
      met: !!one && one.ratio <= MAX_SYNTH_RATIO,
    },
    {
      name: `<= ${MAX_RESOURCES_PER_IMAGE} resources per extra image`,
      measured: `${synth.libraryPerImage.large.toFixed(2)} from N=5 to N=20 (${synth.libraryPerImage.small.toFixed(2)} from N=1 to N=5): `
        + `${ownPerImage} in each BakedImage, plus whatever the shared provider adds as images accumulate `
        + `(whole baked app ${synth.bakedPerImage.resources.toFixed(2)} per image with the consumer's ${synth.consumerPerImage}; plain app ${synth.plainPerImage.resources.toFixed(2)})`,
      met: libraryPerImage <= MAX_RESOURCES_PER_IMAGE,
    },
    {
      name: `each handler bundle <= ${MAX_BUNDLE_BYTES / 1024} KB with a cold load <= ${MAX_COLD_LOAD_MS} ms`,
      measured: `${(bundle.rawBytes / 1024).toFixed(1)} KB raw (${(bundle.gzipBytes / 1024).toFixed(1)} KB gzip), one bundle for both handlers; `
        + `cold load ${loads.bundleMedian.toFixed(1)} ms with the SDK (SDK alone ${loads.sdkMedian.toFixed(1)} ms, bundle's own ${loads.ownMedian.toFixed(1)} ms)`,
      met: bundle.rawBytes <= MAX_BUNDLE_BYTES && loads.bundleMedian <= MAX_COLD_LOAD_MS,
    },
    {
      name: 'exactly one EC2 call per isComplete poll',
      measured: `${pollCalls.join(', ')} call(s) in ${pollCalls.length} pending polls (DescribeImages); the poll that finds the image available adds StopInstances`,
      met: pollCalls.length > 0 && pollCalls.every((count) => count === 1),
    },
    {
      name: `a 15-minute bake costs <= ${usd(MAX_BAKE_USD)} in Lambda + Step Functions, mean detection delay <= ${MAX_MEAN_DELAY_SECONDS} s`,
      measured: fifteen
        ? `${usd(fifteen.createUsd)} (${fifteen.waiter.polls} polls, ${fifteen.waiter.transitions} transitions), mean delay ${delay.model.toFixed(1)} s `
          + `(${delay.withAttemptTime.toFixed(2)} s counting each attempt's own time)`
        : 'not computed',
      met: !!fifteen && fifteen.createUsd <= MAX_BAKE_USD && delay.model <= MAX_MEAN_DELAY_SECONDS,
    },
  ];
}

async function measureApiCalls(): Promise<Figures['api']> {
  let harness: MotoHarness | undefined;
  const stopOnSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: stopping moto_server`);
    void (harness?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    harness = await MotoHarness.start();
    progress(`moto_server on ${harness.moto.endpoint}, counting proxy on ${harness.proxy.endpoint}`);
    const handler: BakeImageHandler = harness.loadHandler();
    return await countApiCalls(harness, handler);
  } finally {
    await harness?.stop();
    process.removeListener('SIGINT', stopOnSignal);
    process.removeListener('SIGTERM', stopOnSignal);
    progress('moto_server stopped');
  }
}

async function main(): Promise<void> {
  const env = environment();
  const bundle = bundleSize();
  progress(`handler bundle ${bundle.file}: ${bundle.rawBytes} B`);

  // First: it fails fast on a stale bundle or a missing moto_server, and moto is stopped before the timings.
  progress('EC2 API calls against moto_server');
  const api = await measureApiCalls();

  progress(`synth: N = ${IMAGE_COUNTS.join(', ')}, ${SYNTH_RUNS} runs each of baked and plain (and provider-only at N=1) after a warm-up`);
  const synth = synthFigures(timeSynth(IMAGE_COUNTS, SYNTH_RUNS, 1));

  const oneImage = synth.timings.find((timing) => timing.images === 1);
  if (!oneImage) {
    throw new Error('no one-image template');
  }
  const settings = readProviderSettings(oneImage.baked.template);
  const totalTimeoutSeconds = settings.intervalSeconds * settings.maxAttempts;
  const cost = {
    settings,
    totalTimeoutSeconds,
    configured: BAKE_MINUTES.map((minutes) => bakeCost(settings, minutes)),
    frameworkDefault: BAKE_MINUTES.map((minutes) => bakeCost(settings, minutes, FRAMEWORK_DEFAULT_INTERVAL_SECONDS,
      totalTimeoutSeconds / FRAMEWORK_DEFAULT_INTERVAL_SECONDS)),
    sensitivity: SENSITIVITY_INTERVALS.map((interval) => ({
      cost: bakeCost(settings, 15, interval, Math.floor(totalTimeoutSeconds / interval)),
      totalTimeoutDivides: totalTimeoutSeconds % interval === 0,
    })),
  };

  progress(`cold loads: ${LOAD_RUNS} fresh node processes each for the bundle, @aws-sdk/client-ec2 alone, and the SDK-bundled variant`);
  const loads = timeColdLoads(LOAD_RUNS);

  const measured = { env, synth, bundle, loads, loadRuns: LOAD_RUNS, api, cost };
  const targets = evaluateTargets(measured);
  const report = renderReport({ ...measured, launch: launchModel(), targets, runSeconds: process.uptime(), loadAverageAtEnd: os.loadavg()[0] });
  fs.writeFileSync(RESULTS_FILE, report);
  process.stdout.write(report);
  progress(`wrote ${path.relative(REPO_ROOT, RESULTS_FILE)}`);
  for (const target of targets) {
    progress(`${target.met ? 'MET   ' : 'MISSED'} ${target.name}: ${target.measured}`);
  }
}

/** The launch model alone: modelled, not measured, so the measured sections of RESULTS.md stay as they were. */
function launchOnly(): void {
  const section = renderLaunchSection(launchModel());
  const previous = fs.existsSync(RESULTS_FILE) ? fs.readFileSync(RESULTS_FILE, 'utf8') : '';
  fs.writeFileSync(RESULTS_FILE, replaceLaunchSection(previous, section));
  process.stdout.write(section);
  progress(`replaced the launch section of ${path.relative(REPO_ROOT, RESULTS_FILE)}`);
}

(process.argv.includes('--launch-only') ? Promise.resolve().then(launchOnly) : main()).catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack || error.message : String(error)}\n`);
  process.exit(1);
});
