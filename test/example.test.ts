import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { createApp } from '../examples/web-fleet';

describe('the built-in example', () => {
  let outdir: string;
  let templateFile: string;
  let template: any;

  beforeAll(() => {
    outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'baked-image-example-'));
    const assembly = createApp(outdir).synth();
    templateFile = path.join(outdir, assembly.stacks[0].templateFile);
    template = JSON.parse(fs.readFileSync(templateFile, 'utf8'));
  });

  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  test('passes cfn-lint with zero errors', () => {
    const lint = spawnSync('cfn-lint', ['--non-zero-exit-code', 'error', '--', templateFile], { encoding: 'utf8' });
    if (lint.error) {
      throw new Error(`cfn-lint is required for this test (pip install cfn-lint): ${lint.error.message}`);
    }
    const errors = `${lint.stdout}`.split('\n').filter((line) => /^E\d+/.test(line));
    expect(errors).toEqual([]);
    expect(lint.status).toBe(0);
  });

  test('feeds the Auto Scaling group through a launch template with a rolling update policy', () => {
    const resources = Object.entries<any>(template.Resources);
    const [bakeId] = resources.find(([, r]) => r.Type === 'Custom::BakedImage')!;
    const [, launchTemplate] = resources.find(([, r]) => r.Type === 'AWS::EC2::LaunchTemplate')!;
    const [, asg] = resources.find(([, r]) => r.Type === 'AWS::AutoScaling::AutoScalingGroup')!;

    expect(launchTemplate.Properties.LaunchTemplateData.ImageId).toEqual({ 'Fn::GetAtt': [bakeId, 'ImageId'] });
    expect(asg.Properties.LaunchTemplate).toBeDefined();
    expect(asg.UpdatePolicy.AutoScalingRollingUpdate).toEqual(expect.objectContaining({ MaxBatchSize: 2, MinInstancesInService: 1 }));
    expect(resources.filter(([, r]) => r.Type === 'AWS::AutoScaling::LaunchConfiguration')).toHaveLength(0);
  });

  test('tests the image on a fresh instance before the fleet sees it: nginx active and serving the baked page', () => {
    const [, bake] = Object.entries<any>(template.Resources).find(([, r]) => r.Type === 'Custom::BakedImage')!;
    expect(bake.Properties.ValidationUserData).toContain('systemctl is-active nginx\ncurl -fsS http://localhost/ | grep -q "Baked by cdk-baked-image"\n');
    expect(bake.Properties.ValidationTimeoutSeconds).toBe('300');
  });
});
