/**
 * Renders the benchmark figures as Markdown (bench/RESULTS.md, and the same text on stdout).
 */
import type { ApiCallResults, Phase } from './api-calls';
import { PENDING_POLLS } from './api-calls';
import {
  ASSUMED_BILLED_MS,
  type BakeCost,
  FRAMEWORK_DEFAULT_INTERVAL_SECONDS,
  type FunctionSettings,
  meanDetectionDelay,
  PRICES,
  type ProviderSettings,
  SEED_FIGURE,
} from './cost-model';
import type { BundleSize, LoadTiming } from './handlers';
import { duration, EBS_DOCUMENTED, LAUNCH_SOURCES, type LaunchModel } from './launch-model';
import { bytes, ms, usd } from './stats';
import type { SynthTiming } from './synth';

export interface Environment {
  readonly date: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  /** 1-minute load average when the run started: other work on the machine makes the timings noisier. */
  readonly loadAverageAtStart: number;
  readonly versions: Record<string, string>;
}

export interface SynthFigures {
  readonly runs: number;
  readonly timings: SynthTiming[];
  /** Resources and bytes per extra image, from N=5 vs N=20 (and N=1 vs N=5, to show linearity). */
  readonly bakedPerImage: { resources: number; bytes: number; resourcesSmall: number; bytesSmall: number };
  readonly plainPerImage: { resources: number; bytes: number; resourcesSmall: number; bytesSmall: number };
  /** Median synth time per extra image, N=5 vs N=20. */
  readonly msPerImage: { baked: number; plain: number };
  /** Resources the BakedImage construct itself defines (the first image, by construct path). */
  readonly ownResources: Map<string, number>;
  /** Resources the consumer declares per image (launch template, its security group, the ASG). */
  readonly consumerPerImage: number;
  /** Template growth per extra image that the library causes: baked growth minus the consumer's resources. */
  readonly libraryPerImage: { small: number; large: number };
  readonly providerResources: Map<string, number>;
  /** Resources under the provider construct at each N (it grows when the shared role's policy overflows). */
  readonly providerResourcesAt: Array<{ images: number; resources: Map<string, number> }>;
  readonly providerBytes: number;
  /** Byte growth of the provider's resources per extra image (IAM statements scoped per image). */
  readonly providerBytesPerImage: number;
}

export interface CostFigures {
  readonly settings: ProviderSettings;
  readonly configured: BakeCost[];
  readonly frameworkDefault: BakeCost[];
  /** 15-minute bake at other intervals, with totalTimeout left as configured where it still divides. */
  readonly sensitivity: Array<{ cost: BakeCost; totalTimeoutDivides: boolean }>;
  readonly totalTimeoutSeconds: number;
}

export interface Target {
  readonly name: string;
  readonly measured: string;
  readonly met: boolean;
}

export interface Figures {
  readonly env: Environment;
  readonly runSeconds: number;
  readonly loadAverageAtEnd: number;
  readonly synth: SynthFigures;
  readonly bundle: BundleSize;
  readonly loads: LoadTiming;
  readonly loadRuns: number;
  readonly api: ApiCallResults;
  readonly cost: CostFigures;
  /** Modelled from the EBS documentation, not measured (bench/launch-model.ts). */
  readonly launch: LaunchModel;
  readonly targets: Target[];
}

const COMMAND = 'npx ts-node --project tsconfig.dev.json bench/run.ts';

function table(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function typeList(counts: Map<string, number>): string {
  return [...counts.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([type, count]) => `${count} ${type}`).join(', ');
}

function fnLine(role: string, fn: FunctionSettings): Array<string | number> {
  return [role, `\`${fn.logicalId}\``, fn.handler, `${fn.memoryMb} MB`, fn.architecture, fn.defaulted ? 'Lambda default (not set in the template)' : 'set in the template'];
}

function phaseRows(phases: Phase[]): Array<Array<string | number>> {
  return phases.map((phase) => [phase.name, phase.actions.length, phase.actions.join(' → ') || '(none)', ms(phase.ms)]);
}

function calls(phases: Phase[]): number {
  return phases.reduce((sum, phase) => sum + phase.actions.length, 0);
}

export function renderReport(f: Figures): string {
  const out: string[] = [];
  const { env, synth, bundle, loads, api, cost } = f;
  const s = cost.settings;

  out.push('# cdk-baked-image benchmark results', '');
  out.push(`Written by \`${COMMAND}\` (\`npx projen bench\`) on ${env.date}; the run took ${f.runSeconds.toFixed(1)} s `
    + '(process uptime, ts-node compilation included). Do not edit by hand: run the benchmark again.', '');

  out.push('## Machine and versions', '');
  out.push(table(['what', 'value'], [
    ['CPU', env.cpuModel],
    ['cores', env.cores],
    ['memory', `${env.memoryGiB.toFixed(1)} GiB`],
    ['node', env.node],
    ['platform', env.platform],
    ['1-minute load average, start / end of the run', `${env.loadAverageAtStart.toFixed(2)} / ${f.loadAverageAtEnd.toFixed(2)} (noise: other work on the machine)`],
    ...Object.entries(env.versions).map(([name, version]) => [name, version]),
  ]), '');

  out.push('## Targets', '');
  out.push(table(['target', 'measured', 'verdict'], f.targets.map((target) => [target.name, target.measured, target.met ? 'MET' : 'MISSED'])), '');

  // 1. Synth
  out.push('## 1. Synth', '');
  out.push('An app of one stack: a VPC (2 AZs, 1 NAT gateway) and N images, each feeding an Auto Scaling group through a launch '
    + 'template with its own security group. **baked**: N `BakedImage`s (cfn-init: a yum package, a file, a service) on a fixed '
    + 'AMI (`ec2.MachineImage.genericLinux`). **plain**: N `ec2.Instance`s without cfn-init and the launch templates on the same '
    + 'fixed AMI. Timed in-process from `new App()` to the end of `app.synth()` (assets staged, templates written), after one '
    + `warm-up synth of every variant; ${synth.runs} runs each, the variants interleaved (the order rotates every round).`, '');
  out.push(table(['N', 'baked median', 'plain median', 'baked / plain', 'baked runs (ms)', 'plain runs (ms)'],
    synth.timings.map((timing) => [
      timing.images, ms(timing.bakedMedian), ms(timing.plainMedian), `${timing.ratio.toFixed(2)}x`,
      timing.bakedMs.map((value) => value.toFixed(0)).join(', '), timing.plainMs.map((value) => value.toFixed(0)).join(', '),
    ])), '');
  const withProvider = synth.timings.find((timing) => timing.providerMedian !== undefined);
  if (withProvider?.providerMedian !== undefined && withProvider.providerMs) {
    const providerCost = withProvider.providerMedian - withProvider.plainMedian;
    const bakedExtra = withProvider.bakedMedian - withProvider.plainMedian;
    out.push(`Where the baked app's extra time goes at N=${withProvider.images}: the plain app plus the provider alone `
      + `(\`BakeProvider.getOrCreate\`, no BakedImage) takes ${ms(withProvider.providerMedian)} `
      + `(runs ${withProvider.providerMs.map((value) => value.toFixed(0)).join(', ')}), so the per-stack provider accounts for `
      + `${ms(providerCost)} of the baked app's extra ${ms(bakedExtra)} over the plain app `
      + `(${bakedExtra > 0 ? Math.round((100 * providerCost) / bakedExtra) : 0}%).`, '');
  }
  out.push(table(['N', 'baked resources', 'baked template', 'plain resources', 'plain template'],
    synth.timings.map((timing) => [
      timing.images, Object.keys(timing.baked.template.Resources).length, bytes(timing.baked.templateBytes),
      Object.keys(timing.plain.template.Resources).length, bytes(timing.plain.templateBytes),
    ])), '');
  const bp = synth.bakedPerImage;
  const pp = synth.plainPerImage;
  out.push('Per extra image (N=5 → N=20; N=1 → N=5 in brackets, equal when growth is linear):', '');
  out.push(table(['app', 'resources per extra image', 'template bytes per extra image'], [
    ['baked (BakedImage + launch template + security group + ASG)', `${bp.resources.toFixed(2)} (${bp.resourcesSmall.toFixed(2)})`, `${bp.bytes.toFixed(0)} (${bp.bytesSmall.toFixed(0)})`],
    ['plain (Instance + launch template + security group + ASG)', `${pp.resources.toFixed(2)} (${pp.resourcesSmall.toFixed(2)})`, `${pp.bytes.toFixed(0)} (${pp.bytesSmall.toFixed(0)})`],
    ['baked − plain', `${(bp.resources - pp.resources).toFixed(2)} (${(bp.resourcesSmall - pp.resourcesSmall).toFixed(2)})`,
      `${(bp.bytes - pp.bytes).toFixed(0)} (${(bp.bytesSmall - pp.bytesSmall).toFixed(0)})`],
  ]), '');
  const ownCount = [...synth.ownResources.values()].reduce((a, b) => a + b, 0);
  const lp = synth.libraryPerImage;
  out.push(`- Attributable to the library (baked growth minus the ${synth.consumerPerImage} resources the consumer declares per image): `
    + `**${lp.large.toFixed(2)} resources per extra image** from N=5 to N=20 (${lp.small.toFixed(2)} from N=1 to N=5).`);
  out.push(`- The \`BakedImage\` construct itself defines **${ownCount} resources** per image: ${typeList(synth.ownResources)}.`);
  out.push(`- The shared provider grows too: ${synth.providerResourcesAt.map(({ images, resources }) => `N=${images}: ${[...resources.values()].reduce((a, b) => a + b, 0)} resources`).join(', ')}. `
    + `Each image adds ${synth.providerBytesPerImage.toFixed(0)} bytes to the handlers' role policy (the statements are scoped by the stack's tag, not per image); `
    + 'were the policy to outgrow what IAM allows inline, the CDK would move statements into overflow `AWS::IAM::ManagedPolicy` resources '
    + `(N=${synth.providerResourcesAt[synth.providerResourcesAt.length - 1].images}: ${typeList(synth.providerResourcesAt[synth.providerResourcesAt.length - 1].resources)}).`);
  const providerCount = [...synth.providerResources.values()].reduce((a, b) => a + b, 0);
  out.push(`- Per-stack fixed cost, the provider (\`CdkBakedImageProvider\`, created once per stack) at N=1: **${providerCount} resources**, `
    + `${bytes(synth.providerBytes)} of template: ${typeList(synth.providerResources)}.`);
  out.push(`- Synth time per extra image (medians, N=5 → N=20): baked ${ms(synth.msPerImage.baked)}, plain ${ms(synth.msPerImage.plain)}.`, '');

  // 2. Handlers
  out.push('## 2. Handlers', '');
  out.push(`One bundle, \`${bundle.file}\`, serves both handlers (exports ${bundle.exports.map((name) => `\`${name}\``).join(' and ')}; `
    + 'the two Lambda functions share one asset). `@aws-sdk/*` is external: Lambda\'s Node.js runtime provides it.', '');
  out.push(table(['figure', 'value'], [
    ['bundle size, raw', bytes(bundle.rawBytes)],
    ['bundle size, gzip (zlib level 9)', bytes(bundle.gzipBytes)],
    [`cold load of the bundle (median of ${f.loadRuns})`, ms(loads.bundleMedian)],
    [`cold load of \`@aws-sdk/client-ec2\` alone (median of ${f.loadRuns})`, ms(loads.sdkMedian)],
    ['the bundle\'s own cost (bundle − SDK)', ms(loads.ownMedian)],
    ['for comparison, not shipped: SDK bundled in (tree-shaken, minified), size raw / gzip',
      `${bytes(loads.sdkBundled.rawBytes)} / ${bytes(loads.sdkBundled.gzipBytes)}`],
    [`for comparison, not shipped: SDK bundled in, cold load (median of ${f.loadRuns})`, ms(loads.sdkBundled.median)],
  ]), '');
  out.push('Each load is a fresh `node -e "const t=process.hrtime.bigint(); require(...); console.log(...)"` (only `require` is timed, '
    + 'not node\'s start), the three rotating, after one warm-up of each. In Lambda the SDK comes from the runtime, so the '
    + 'init phase pays about the first figure, of which the bundle\'s own code is the third. Local node is '
    + `${process.version}, Lambda's is 24; the child processes run with NODE_NO_WARNINGS. Runs (ms): bundle ${loads.bundleMs.map((v) => v.toFixed(0)).join(', ')}; `
    + `SDK ${loads.sdkMs.map((v) => v.toFixed(0)).join(', ')}; SDK bundled in ${loads.sdkBundled.ms.map((v) => v.toFixed(0)).join(', ')}.`, '');

  // 3. API calls
  out.push('## 3. EC2 API calls', '');
  out.push('The shipped bundle driven in-process with the requests the provider framework sends, against moto_server behind the '
    + 'counting proxy of `test/lambda/moto-server.ts` (moto\'s images are available at once: the proxy holds the image `pending` for '
    + `the first ${PENDING_POLLS} polls). Times are localhost round trips to moto, not EC2's.`, '');
  out.push(`Lifecycle create → isComplete (pending ×${PENDING_POLLS}, then available) → delete: **${calls(api.lifecycle)} EC2 calls**.`, '');
  out.push(table(['phase', 'EC2 calls', 'actions', 'time'], phaseRows(api.lifecycle)), '');
  out.push(`Replace (an Update with a new builder) and the Delete of the old image: **${calls(api.replace)} EC2 calls**.`, '');
  out.push(table(['phase', 'EC2 calls', 'actions', 'time'], phaseRows(api.replace)), '');
  out.push(`EC2 calls per pending isComplete poll: ${api.pendingPollCalls.join(', ')} (median poll ${ms(api.pendingPollMedianMs)} against moto). `
    + `Proxy errors: ${api.proxyErrors.length === 0 ? 'none' : api.proxyErrors.join('; ')}.`, '');

  // 4. Cost model
  out.push('## 4. Poll cost model', '');
  out.push(`Read from the synthesized template of the one-image baked app. The waiter state machine \`${s.stateMachineLogicalId}\`: `
    + `StartAt \`${s.startAt}\`; states ${Object.entries(s.states).map(([name, state]) => `\`${name}\` (${state.Type}${state.End ? ', End' : ''})`).join(', ')}. `
    + `The waiter task retries on every error with IntervalSeconds **${s.intervalSeconds}**, MaxAttempts **${s.maxAttempts}**, BackoffRate ${s.backoffRate} `
    + `(so totalTimeout = ${s.intervalSeconds} × ${s.maxAttempts} = ${cost.totalTimeoutSeconds / 60} min).`, '');
  out.push(table(['function', 'logical id', 'handler', 'MemorySize', 'architecture', 'source'], [
    fnLine('user isComplete', s.userIsComplete),
    fnLine('framework isComplete (the waiter task)', s.frameworkIsComplete),
    fnLine('user onEvent', s.userOnEvent),
    fnLine('framework onEvent', s.frameworkOnEvent),
  ]), '');
  out.push('How a poll is counted: the framework\'s isComplete function (invoked by the waiter task) invokes the user isComplete '
    + 'synchronously and throws when it answers `IsComplete: false`; the Retry runs it again after IntervalSeconds. So every poll is '
    + '**two Lambda invocations** and every poll after the first is one **retry**, which Step Functions bills as a state transition. '
    + 'The first poll runs right after onEvent; a bake of T seconds takes ceil(T / interval) + 1 polls. State transitions per execution '
    + '(conservative): 1 to enter the task from the start + 1 per retry + 1 for the End; the lower bound leaves out the End. A Delete also '
    + 'starts the waiter: its first poll answers true (2 invocations, 2 transitions).', '');
  out.push(`Prices (us-east-1, as of ${PRICES.asOf}, ${PRICES.sources}): Lambda arm64 $${PRICES.lambdaArm64PerGbSecond} per GB-s, `
    + `x86_64 $${PRICES.lambdaX86PerGbSecond} per GB-s, $0.20 per 1M requests; Step Functions standard $0.025 per 1,000 state transitions. `
    + `Assumed billed durations (not measurable without AWS): user isComplete ${ASSUMED_BILLED_MS.userIsCompletePoll} ms per poll `
    + `(one DescribeImages; ${ms(api.pendingPollMedianMs)} against local moto), user onEvent ${ASSUMED_BILLED_MS.userOnEventCreate} ms for a Create `
    + `and ${ASSUMED_BILLED_MS.userOnEventDelete} ms for a Delete, each framework function +${ASSUMED_BILLED_MS.frameworkOverhead} ms over the `
    + 'user function it waits for. Free tiers are not applied.', '');
  const costRows = (label: string, costs: BakeCost[]) => costs.map((c) => [
    `${c.bakeMinutes} min`, label, c.waiter.polls, c.waiter.lambdaInvocations,
    `${c.waiter.transitions} (${c.waiter.transitionsLowerBound})`, usd(c.waiter.lambdaUsd), usd(c.waiter.sfnUsd),
    usd(c.createUsd), usd(c.cycleUsd), c.waiter.fitsMaxAttempts ? 'yes' : 'NO: times out',
  ]);
  out.push(table(
    ['bake', 'query interval', 'isComplete polls', 'Lambda invocations (polls ×2)', 'state transitions (lower bound)',
      'polls: Lambda', 'polls: Step Functions', 'Create (onEvent + polls)', 'Create + Delete cycle', 'within MaxAttempts'],
    [...costRows(`${s.intervalSeconds} s (configured)`, cost.configured), ...costRows(`${FRAMEWORK_DEFAULT_INTERVAL_SECONDS} s (framework default)`, cost.frameworkDefault)],
  ), '');
  out.push(`The seed blog (AWS DevOps blog, AMIManager; ${SEED_FIGURE.context}): "${SEED_FIGURE.quote}" That is `
    + `${usd(SEED_FIGURE.usdPerCycle)} per create/delete cycle, Lambda only (its function waited inside one invocation, no Step Functions). `
    + `Its own inputs give ${usd(SEED_FIGURE.recomputedUsd)} (128 MB × 29.5 s); $0.000988 matches about 2 GB × 29.5 s. Our 15-minute cycle: `
    + `${usd(cost.configured.find((c) => c.bakeMinutes === 15)?.cycleUsd ?? NaN)}, of which Step Functions is most: the price of not `
    + 'sleeping inside a Lambda function and of surviving the one-hour custom-resource ceiling with a durable waiter.', '');
  const delay = meanDetectionDelay(s.intervalSeconds);
  const delayDefault = meanDetectionDelay(FRAMEWORK_DEFAULT_INTERVAL_SECONDS);
  out.push(`Mean delay between "image available" and "stack continues": **${delay.model.toFixed(1)} s** (half the query interval; `
    + `${delayDefault.model.toFixed(1)} s at the framework default). The image turns available at a moment unrelated to the poll grid, `
    + 'so the wait for the next poll is uniform between 0 and one period: its mean is half a period. The period is slightly longer '
    + 'than IntervalSeconds because Step Functions waits IntervalSeconds after an attempt has failed, not between attempt starts: with '
    + `a ${ASSUMED_BILLED_MS.userIsCompletePoll + ASSUMED_BILLED_MS.frameworkOverhead} ms attempt the mean is ${delay.withAttemptTime.toFixed(2)} s. `
    + 'After the poll that sees the image, the same invocation stops the builder (one more EC2 call) and the framework PUTs the '
    + 'response to CloudFormation\'s pre-signed URL; CloudFormation then moves on to the dependent resources (seconds, not modelled).', '');
  out.push(`Sensitivity, 15-minute bake (totalTimeout kept at ${cost.totalTimeoutSeconds / 60} min where the interval divides it; `
    + 'the framework requires totalTimeout to be an exact multiple of the interval):', '');
  out.push(table(['query interval', 'polls', 'state transitions', 'Create cost', 'mean delay (model / with attempt time)', `divides ${cost.totalTimeoutSeconds / 60} min`],
    cost.sensitivity.map(({ cost: c, totalTimeoutDivides }) => {
      const d = meanDetectionDelay(c.waiter.intervalSeconds);
      return [`${c.waiter.intervalSeconds} s`, c.waiter.polls, c.waiter.transitions, usd(c.createUsd), `${d.model.toFixed(1)} s / ${d.withAttemptTime.toFixed(2)} s`,
        totalTimeoutDivides ? 'yes' : 'no'];
    })), '');

  out.push(renderLaunchSection(f.launch));

  out.push('## Notes', '');
  out.push('- Synth times are noisy on 2 cores; each ratio is of medians of interleaved runs, so slow periods hit both apps.');
  out.push('- The API-call counts come from moto 5.2.1 behind the harness proxy; real EC2 answers the same actions. The SDK client '
    + '(maxAttempts 6) adds calls only under throttling or transient errors.');
  return `${out.join('\n')}\n`;
}

/** The heading of the launch section, which `bench/run.ts --launch-only` looks for. */
export const LAUNCH_HEADING = '## Launch';

/** Dollars per launch: four decimals, enough for a hundredth of a cent. */
function perLaunch(value: number): string {
  return `$${value.toFixed(4)}`;
}

/** Credits and counts: whole numbers as such, fractions with two decimals. */
function credits(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

/**
 * The "## Launch" section: one table of the modelled time to a fully initialized root volume and the price per
 * launch, lazy loading, each provisioned rate and fast snapshot restore side by side, then the assumptions and
 * sources. Written by the full run and by `bench/run.ts --launch-only`, which replaces only this section.
 */
export function renderLaunchSection(model: LaunchModel): string {
  const out: string[] = [];
  const a = model.assumptions;
  const launchesPerDay = model.rows[0]?.fsr.cost.launchesPerAzPerDay ?? a.fsrLaunchesPerAzPerDay;
  out.push(LAUNCH_HEADING, '');
  out.push('**Modelled from the EBS documentation, not measured**: how long the root volume of an instance launched from the '
    + 'image takes to be fully initialized (every block loaded from Amazon S3, full performance), and what that costs per '
    + 'launch. Each cell: time to full initialization (the range EBS promises for 99% of the time) · price per launch.', '');
  out.push(table(
    ['root volume (snapshot data)', 'lazy (EBS and newLaunchTemplate default)', ...model.ratesMiBs.map((rate) => `${rate} MiB/s`),
      'fast snapshot restore', 'fast snapshot restore credits, per AZ'],
    model.rows.map((row) => [
      `${row.volumeGiB} GiB`,
      'unpredictable (no rate in the EBS docs) · no charge',
      ...row.provisioned.map((p) => `${duration(p.seconds)} (${duration(p.fastest)}–${duration(p.slowest)}) · ${perLaunch(p.usd)}`),
      `at creation, while a credit is left · $${row.fsr.cost.usdPerAzHour.toFixed(2)} per AZ-hour: ${perLaunch(row.fsr.cost.usdPerLaunchAtCreditLimit)} `
        + `per launch at ${credits(row.fsr.credits.refillPerHour)} launches per AZ-hour, ${perLaunch(row.fsr.cost.usdPerLaunchAtLaunchCount)} at ${launchesPerDay} per AZ-day`,
      `bucket ${credits(row.fsr.credits.bucket)}, refills ${credits(row.fsr.credits.refillPerHour)} per hour (from 0 when enabled); `
        + `optimizing ${row.fsr.optimizingMinutes.toFixed(1)} min first`,
    ]),
  ), '');
  out.push('How each column is modelled:', '');
  out.push('- **lazy**: blocks come from S3 as they are first read, and in the background at a rate that "fluctuates throughout '
    + 'the initialization process, which could make completion times unpredictable"; the EBS docs give no figure, so none is modelled. '
    + 'No initialization charge.');
  out.push(`- **provisioned rate**: time = snapshot data / rate (the docs' example: 10 GiB at 300 MiB/s, 34.1 s), within ±${EBS_DOCUMENTED.rateAccuracy * 100}% `
    + 'of the rate 99% of the time; price = Region price × snapshot data GiB × rate MiB/s, billed once when the volume is active, '
    + 'also for a volume deleted before it is initialized; failed requests are not billed. Concurrent initializations of a Region share '
    + `${EBS_DOCUMENTED.regionRateQuotaMiBs.toLocaleString('en-US')} MiB/s: ${model.concurrency.map((c) => `${c.volumes} at ${c.rateMiBs} MiB/s`).join(', ')}; `
    + 'a request beyond the quota, or one EBS lacks the capacity for, **fails** (a failed launch, which lazy loading never causes).');
  out.push('- **fast snapshot restore**: volumes are fully initialized at creation while the snapshot\'s credit bucket in that AZ has a credit; '
    + 'without one, a volume is created without it (lazy). It is billed per snapshot and AZ for every minute it is enabled '
    + `(one-hour minimum), launches or not: $${EBS_DOCUMENTED.fsrUsdPerAzHour.toFixed(2)} per AZ-hour, $${(EBS_DOCUMENTED.fsrUsdPerAzHour * 720).toFixed(0)} per AZ for 30 days. `
    + 'Per launch it is that hourly price shared over the launches: the lowest at one launch per credit refilled. It is enabled per '
    + 'snapshot, so every rebake\'s new snapshot starts again with an empty bucket and an optimizing phase. A volume with a provisioned '
    + 'rate is initialized at that rate instead of by fast snapshot restore.');
  out.push('');
  out.push('Assumptions (not in the documents readable from this machine):', '');
  out.push(`- Provisioned rate price: **$${a.provisionedRateUsdPerGiBPerMiBs} per GiB of snapshot data per MiB/s** (us-east-1), so `
    + `$${(a.provisionedRateUsdPerGiBPerMiBs * EBS_DOCUMENTED.minRateMiBs).toFixed(4)} per GiB at ${EBS_DOCUMENTED.minRateMiBs} MiB/s. `
    + `The EBS pricing page (${LAUNCH_SOURCES.ebsPricing}) could not be read here; the figure is third-party write-ups' $0.0036 per GB at 300 MiB/s `
    + 'divided by 300, with the docs\' formula linear in the rate. One of them quotes $0.0024 per GB for every rate from 100 to 200 MiB/s: '
    + 'were that right, 100 MiB/s would cost twice the figures above. Check the pricing page for your Region.');
  out.push('- Snapshot data = the whole root volume: the upper bound of time and price. Both grow with the snapshot\'s data '
    + '(FullSnapshotSizeInBytes), not the volume\'s size, and an image\'s snapshot holds only the blocks written.');
  out.push(`- Fast snapshot restore per launch at **${launchesPerDay} launches per AZ and day**: a stated launch count, yours will differ.`);
  out.push('');
  out.push('Sources:', '');
  out.push(`- Initialize Amazon EBS volumes (rate range, time, accuracy, quota, billing): ${LAUNCH_SOURCES.initialization}`);
  out.push(`- Fast snapshot restore (full performance at creation, optimizing 60 min per TiB, billing, the $540 example): ${LAUNCH_SOURCES.fastSnapshotRestore}`);
  out.push(`- Volume creation credits (bucket MAX(1, MIN(10, 1024 ÷ snapshot GiB)), refill MIN(10, 1024 ÷ snapshot GiB) per hour): ${LAUNCH_SOURCES.creationCredits}`);
  out.push(`- How AWS Pricing Works, Amazon EBS ($0.75 per fast snapshot restore DSU-hour per AZ, us-east-1): ${LAUNCH_SOURCES.pricingWhitepaper}`);
  out.push(`- AWS::EC2::LaunchTemplate Ebs VolumeInitializationRate (what newLaunchTemplate sets): ${LAUNCH_SOURCES.cloudFormation}`);
  out.push('');
  return `${out.join('\n')}\n`;
}

/**
 * A report with its launch section replaced by `section` (or put before "## Notes", or at the end, when it has none),
 * the measured sections left as they are.
 */
export function replaceLaunchSection(report: string, section: string): string {
  const lines = report.split('\n');
  const start = lines.indexOf(LAUNCH_HEADING);
  const sectionLines = section.replace(/\n+$/, '').split('\n');
  if (start >= 0) {
    const next = lines.findIndex((line, index) => index > start && line.startsWith('## '));
    const end = next >= 0 ? next : lines.length;
    return [...lines.slice(0, start), ...sectionLines, '', ...lines.slice(end)].join('\n');
  }
  const notes = lines.indexOf('## Notes');
  if (notes >= 0) {
    return [...lines.slice(0, notes), ...sectionLines, '', ...lines.slice(notes)].join('\n');
  }
  return `${report.replace(/\n+$/, '')}\n\n${sectionLines.join('\n')}\n`;
}
