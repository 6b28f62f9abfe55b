import {
  concurrentInitializations,
  duration,
  EBS_DOCUMENTED,
  fsrCost,
  fsrCredits,
  fsrOptimizingMinutes,
  LAUNCH_ASSUMPTIONS,
  launchModel,
  provisionedRateSeconds,
  provisionedRateSecondsRange,
  provisionedRateUsd,
} from '../bench/launch-model';
import { LAUNCH_HEADING, renderLaunchSection, replaceLaunchSection } from '../bench/report';

describe('the provisioned rate model', () => {
  test('gives the EBS docs\' own example: 10 GiB at 300 MiB/s is initialized in 34.1 s', () => {
    expect(provisionedRateSeconds(10, 300)).toBeCloseTo(34.13, 2);
  });

  test('divides the snapshot data by the rate: 8 GiB takes 81.92 s at 100 MiB/s and 27.31 s at 300', () => {
    expect(provisionedRateSeconds(8, 100)).toBeCloseTo(81.92, 2);
    expect(provisionedRateSeconds(8, 300)).toBeCloseTo(27.31, 2);
    expect(provisionedRateSeconds(100, 200)).toBeCloseTo(512, 6);
  });

  test('spans ±10% of the rate: from size / (1.1 × rate) to size / (0.9 × rate)', () => {
    const range = provisionedRateSecondsRange(8, 100);
    expect(range.fastest).toBeCloseTo(8192 / 110, 6);
    expect(range.slowest).toBeCloseTo(8192 / 90, 6);
  });

  test('prices a launch at price × snapshot GiB × rate: $0.0096 for 8 GiB at 100 MiB/s with the assumed price', () => {
    expect(LAUNCH_ASSUMPTIONS.provisionedRateUsdPerGiBPerMiBs).toBe(0.000012);
    expect(provisionedRateUsd(8, 100)).toBeCloseTo(0.0096, 10);
    expect(provisionedRateUsd(30, 300)).toBeCloseTo(0.108, 10);
    // The third-party figure the assumption comes from: $0.0036 per GB at 300 MiB/s.
    expect(provisionedRateUsd(1, 300)).toBeCloseTo(0.0036, 10);
    expect(provisionedRateUsd(10, 100, 0.00002)).toBeCloseTo(0.02, 10);
  });

  test('allows 50 concurrent initializations per Region at 100 MiB/s, 25 at 200 and 16 at 300 (5,000 MiB/s)', () => {
    expect([100, 200, 300].map(concurrentInitializations)).toEqual([50, 25, 16]);
  });

  test('refuses a rate EBS does not accept', () => {
    expect(() => provisionedRateSeconds(8, 99)).toThrow(/from 100 to 300, got 99/);
    expect(() => provisionedRateUsd(8, 301)).toThrow(/got 301/);
    expect(() => concurrentInitializations(150.5)).toThrow(/whole number/);
  });
});

describe('the fast snapshot restore model', () => {
  test('gives the docs\' credit examples: 128 GiB fills 8 per hour into a bucket of 8; 4 TiB one every 4 hours into a bucket of 1', () => {
    expect(fsrCredits(128)).toEqual({ bucket: 8, refillPerHour: 8 });
    expect(fsrCredits(4096)).toEqual({ bucket: 1, refillPerHour: 0.25 });
    expect(fsrCredits(100)).toEqual({ bucket: 10, refillPerHour: 10 });
  });

  test('caps the bucket and the refill at 10 for small snapshots, and keeps a bucket of at least 1 for huge ones', () => {
    expect(fsrCredits(8)).toEqual({ bucket: 10, refillPerHour: 10 });
    expect(fsrCredits(16 * 1024)).toEqual({ bucket: 1, refillPerHour: 1 / 16 });
  });

  test('bills $0.75 per AZ-hour: the docs\' $540 for 30 days, $0.075 per launch at 10 launches an hour, $1.80 at 10 a day', () => {
    const cost = fsrCost(8, 10);
    expect(cost.usdPerAzHour).toBe(0.75);
    expect(cost.usdPerAzMonth).toBeCloseTo(540, 10);
    expect(cost.usdPerLaunchAtCreditLimit).toBeCloseTo(0.075, 10);
    expect(cost.usdPerLaunchAtLaunchCount).toBeCloseTo(1.8, 10);
    // A 4 TiB snapshot refills a credit every 4 hours: each launch then carries 4 hours of the price.
    expect(fsrCost(4096, 10).usdPerLaunchAtCreditLimit).toBeCloseTo(3, 10);
  });

  test('optimizes for 60 minutes per TiB', () => {
    expect(fsrOptimizingMinutes(1024)).toBe(60);
    expect(fsrOptimizingMinutes(8)).toBeCloseTo(0.46875, 10);
  });

  test('refuses a snapshot or a launch count that is not positive', () => {
    expect(() => fsrCredits(0)).toThrow(/positive/);
    expect(() => fsrCost(8, 0)).toThrow(/positive/);
  });
});

describe('the launch table', () => {
  test('has a row per root volume size with every rate, in order', () => {
    const model = launchModel();
    expect(model.rows.map((row) => row.volumeGiB)).toEqual([8, 30, 100]);
    expect(model.rows[1].provisioned.map((p) => [p.rateMiBs, Math.round(p.seconds * 10) / 10, Math.round(p.usd * 1e6) / 1e6]))
      .toEqual([[100, 307.2, 0.036], [200, 153.6, 0.072], [300, 102.4, 0.108]]);
    expect(model.concurrency).toEqual([{ rateMiBs: 100, volumes: 50 }, { rateMiBs: 200, volumes: 25 }, { rateMiBs: 300, volumes: 16 }]);
  });

  test('renders one table, side by side, with the assumptions and sources under it', () => {
    const section = renderLaunchSection(launchModel());
    expect(section.startsWith(`${LAUNCH_HEADING}\n`)).toBe(true);
    const rows = section.split('\n').filter((line) => line.startsWith('| '));
    expect(rows).toHaveLength(2 + 3);
    expect(rows[0]).toContain('| lazy (EBS and newLaunchTemplate default) | 100 MiB/s | 200 MiB/s | 300 MiB/s | fast snapshot restore |');
    expect(rows[2]).toContain('| 8 GiB | unpredictable (no rate in the EBS docs) · no charge | 1 min 22 s (1 min 14 s–1 min 31 s) · $0.0096 |');
    expect(rows[4]).toContain('| 100 GiB |');
    expect(rows[4]).toContain('17 min 4 s');
    expect(section).toContain('Assumptions');
    expect(section).toContain(`$${LAUNCH_ASSUMPTIONS.provisionedRateUsdPerGiBPerMiBs} per GiB of snapshot data per MiB/s`);
    expect(section).toContain('https://docs.aws.amazon.com/ebs/latest/userguide/initalize-volume.html');
    expect(section).toContain('https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/amazon-ebs.html');
    expect(section).toContain(`${EBS_DOCUMENTED.regionRateQuotaMiBs.toLocaleString('en-US')} MiB/s: 50 at 100 MiB/s`);
  });

  test('formats durations in whole seconds', () => {
    expect(duration(27.3)).toBe('27 s');
    expect(duration(81.92)).toBe('1 min 22 s');
    expect(duration(1024)).toBe('17 min 4 s');
  });
});

describe('replacing the launch section of RESULTS.md', () => {
  const measured = '# results\n\n## 4. Poll cost model\n\nmeasured\n\n## Notes\n\n- a note\n';

  test('puts a new section before the notes, leaving the measured sections as they are', () => {
    expect(replaceLaunchSection(measured, '## Launch\n\nmodel\n'))
      .toBe('# results\n\n## 4. Poll cost model\n\nmeasured\n\n## Launch\n\nmodel\n\n## Notes\n\n- a note\n');
  });

  test('replaces an existing section, and only it', () => {
    const once = replaceLaunchSection(measured, '## Launch\n\nold\n');
    expect(replaceLaunchSection(once, '## Launch\n\nnew\n'))
      .toBe('# results\n\n## 4. Poll cost model\n\nmeasured\n\n## Launch\n\nnew\n\n## Notes\n\n- a note\n');
  });
});
