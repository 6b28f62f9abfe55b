import { Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { validationError } from './private/errors';

/**
 * Options of an image validation.
 */
export interface ImageValidationOptions {
  /**
   * How long the validation may run, from the test instance's launch (its boot included). On timeout the
   * bake fails, the test instance is terminated and the image is deleted. At most `bakeTimeout`.
   *
   * @default Duration.minutes(10)
   */
  readonly timeout?: Duration;

  /**
   * The test instance's type. Its output is read from the serial console, which EC2 updates as it is
   * written only on Nitro instance types: use one.
   *
   * @default - the builder's instance type
   */
  readonly instanceType?: ec2.InstanceType;
}

/**
 * A test an image must pass before the bake completes: once the image is available, a short-lived test
 * instance is launched from it in the builder's subnet and security group, runs the test as root from its
 * user data, and reports its output and exit code on its serial console, which the handler reads. Exit 0
 * completes the bake; anything else, or no result within the timeout, fails it with the tail of the
 * output, and the image is deleted. The test instance is terminated in every case.
 *
 * Linux images only (the test runs from cloud-init user data, which every instance launched from a
 * sanitized image runs). The output reaches CloudFormation events and the handler's log: print no secret.
 */
export class ImageValidation {
  /**
   * Run these shell commands in order; the first that fails fails the validation.
   *
   * @example
   * ImageValidation.fromCommands([
   *   'systemctl is-active nginx',
   *   'curl -fsS http://localhost/ | grep -q "Baked"',
   * ]);
   */
  public static fromCommands(commands: string[], options: ImageValidationOptions = {}): ImageValidation {
    if (commands.length === 0) {
      throw validationError('ImageValidationNoCommands', 'ImageValidation.fromCommands needs at least one command');
    }
    return new ImageValidation(['set -e', ...commands].join('\n'), options);
  }

  /**
   * Run this bash script; its exit code is the result.
   */
  public static fromScript(script: string, options: ImageValidationOptions = {}): ImageValidation {
    if (script.trim() === '') {
      throw validationError('ImageValidationNoScript', 'ImageValidation.fromScript needs a script');
    }
    return new ImageValidation(script, options);
  }

  /** The bash script the test instance runs. */
  public readonly script: string;

  /** How long the validation may run, from the test instance's launch. */
  public readonly timeout: Duration;

  /** The test instance's type; undefined: the builder's. */
  public readonly instanceType?: ec2.InstanceType;

  private constructor(script: string, options: ImageValidationOptions) {
    this.script = script;
    this.timeout = options.timeout ?? Duration.minutes(10);
    this.instanceType = options.instanceType;
  }
}
