/**
 * Validate before use: a short-lived test instance launched from the available image runs the user's test
 * from its user data and reports every output line and its exit code on the serial console. isComplete
 * reads the console once a poll (GetConsoleOutput), so the test instance needs no role, no agent and no
 * route to any AWS endpoint.
 *
 * The state lives in EC2, not in the handler: the test instance carries the image id and the
 * CloudFormation request id as tags (a retried poll finds it, a retried launch is the same launch by its
 * client token), and an image that passed carries the validation's fingerprint as a tag.
 */
import { createHash } from 'crypto';
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  type Filter,
  GetConsoleOutputCommand,
  type Image,
  type Instance,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Tag as Ec2Tag,
} from '@aws-sdk/client-ec2';
import { ec2, homeRegion } from './clients';
import { describeError, errorCode, withContext } from './errors';
import { deleteImage, type Owner } from './images';
import { log, warn } from './log';
import { ownerTags } from './tags';
import type { IsCompleteRequest } from './types';
import type { BakeProperties, Validation } from '../../src/private/contract';
import { Tag, VALIDATION_REPORT_PREFIX } from '../../src/private/contract';

/** At most this many of the last output lines go into the CloudFormation reason. */
const TAIL_LINES = 20;
/** And at most this many characters (CloudFormation shows a few KB of a reason). */
const TAIL_CHARACTERS = 1500;

/** What the console shows of a validation: its output lines, and its exit code once it finished. */
export interface ValidationReport {
  readonly started: boolean;
  readonly lines: string[];
  readonly exitCode?: number;
}

/** Reads the report lines out of a console output, where kernel and cloud-init lines may come in between. */
export function parseValidationReport(output: string): ValidationReport {
  let started = false;
  let exitCode: number | undefined;
  const lines: string[] = [];
  for (const raw of output.split(/\r?\n/)) {
    const line = raw.replace(/\r/g, '');
    const at = line.indexOf(VALIDATION_REPORT_PREFIX);
    if (at < 0) {
      continue;
    }
    const rest = line.slice(at + VALIDATION_REPORT_PREFIX.length);
    if (rest.startsWith('| ')) {
      lines.push(rest.slice(2));
    } else if (rest === ': begin') {
      started = true;
    } else {
      const exit = /^: exit (\d+)$/.exec(rest);
      if (exit) {
        exitCode = Number(exit[1]);
      }
    }
  }
  return { started, lines, exitCode };
}

/** The last lines of the output, short enough for a CloudFormation reason. */
export function outputTail(lines: string[]): string {
  const tail: string[] = [];
  let length = 0;
  for (const line of lines.slice(-TAIL_LINES).reverse()) {
    const cut = line.length > 200 ? `${line.slice(0, 197)}...` : line;
    if (length + cut.length + 1 > TAIL_CHARACTERS) {
      break;
    }
    tail.unshift(cut);
    length += cut.length + 1;
  }
  return tail.length > 0 ? tail.join('\n') : '(no output)';
}

/**
 * One step of the validation of an available image: 'passed' once it passed (now or before), 'running'
 * while the test instance boots or tests. Throws when it failed or timed out, after terminating the
 * test instance and, for an image that never passed a validation, deleting the image.
 */
export async function validateImage(event: IsCompleteRequest, image: Image, props: BakeProperties): Promise<'passed' | 'running'> {
  const validation = props.validation as Validation;
  const imageId = image.ImageId ?? event.PhysicalResourceId;
  const validated = tagOf(image, Tag.VALIDATED);
  if (validated === validation.fingerprint) {
    return 'passed';
  }
  const instance = await findTestInstance(event, imageId);
  if (!instance?.InstanceId) {
    await launchTestInstance(event, image, validation);
    return 'running';
  }
  const instanceId = instance.InstanceId;
  const fail = async (what: string, report?: ValidationReport): Promise<never> => {
    await terminate(instanceId);
    let outcome: string;
    if (validated !== undefined) {
      // It passed another validation before: it may be in use, and the rollback keeps using it.
      outcome = 'The image passed an earlier validation and stays; the stack rolls back to that validation.';
    } else {
      outcome = await discardImage(event, image, props) ? 'The image is deleted.' : 'The image is deleted with this resource.';
    }
    throw new Error(
      `Validation of image ${imageId} on test instance ${instanceId} ${what}. ` +
      (report ? `Last lines of its output:\n${outputTail(report.lines)}\n` : '') + outcome,
    );
  };

  const state = instance.State?.Name;
  if (state === 'shutting-down' || state === 'terminated' || state === 'stopping' || state === 'stopped') {
    return fail(`ended (${state}: ${instance.StateReason?.Message ?? instance.StateTransitionReason ?? 'no reason given'}) before it reported a result`);
  }
  const report = parseValidationReport(await consoleOutput(instanceId));
  if (report.exitCode === 0) {
    await recordPass(imageId, validation);
    await terminate(instanceId);
    log('validation passed', { imageId, instanceId, outputLines: report.lines.length });
    return 'passed';
  }
  if (report.exitCode !== undefined) {
    return fail(`failed with exit code ${report.exitCode}`, report);
  }
  const elapsedSeconds = (Date.now() - (instance.LaunchTime ? new Date(instance.LaunchTime).getTime() : Date.now())) / 1000;
  if (elapsedSeconds > validation.timeoutSeconds) {
    return fail(
      `did not finish within its timeout (${validation.timeoutSeconds} s; ${report.started ? 'it started' : 'it never started: did the instance boot, and does the image run cloud-init user data?'})`,
      report,
    );
  }
  log('validation running', { imageId, instanceId, state, started: report.started, outputLines: report.lines.length, elapsedSeconds: Math.round(elapsedSeconds) });
  return 'running';
}

/**
 * Terminates the test instances of an image that are still there: when its bake fails for another reason
 * (bakeTimeout), and in the Delete of a bake abandoned while testing.
 */
export async function terminateTestInstances(owner: Owner, imageId: string): Promise<void> {
  const running = await testInstances(owner, imageId, [{ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }]);
  for (const instance of running) {
    if (instance.InstanceId) {
      await terminate(instance.InstanceId);
    }
  }
}

/** The test instance of this image and request, newest first (a terminated one too: it tells how the test ended). */
async function findTestInstance(event: IsCompleteRequest, imageId: string): Promise<Instance | undefined> {
  const instances = await testInstances(event, imageId, [{ Name: `tag:${Tag.VALIDATION_REQUEST}`, Values: [event.RequestId] }]);
  return instances.sort((a, b) => new Date(b.LaunchTime ?? 0).getTime() - new Date(a.LaunchTime ?? 0).getTime())[0];
}

/** The test instances of an image of this resource (by their tags), narrowed by more filters. */
async function testInstances(owner: Owner, imageId: string, filters: Filter[]): Promise<Instance[]> {
  try {
    const response = await ec2.send(new DescribeInstancesCommand({
      Filters: [
        { Name: `tag:${Tag.VALIDATES}`, Values: [imageId] },
        { Name: `tag:${Tag.STACK_ID}`, Values: [owner.StackId] },
        { Name: `tag:${Tag.LOGICAL_ID}`, Values: [owner.LogicalResourceId] },
        ...filters,
      ],
    }));
    return (response.Reservations ?? []).flatMap((reservation) => reservation.Instances ?? []);
  } catch (error) {
    throw withContext(error, `DescribeInstances for the test instances of image ${imageId}`);
  }
}

async function launchTestInstance(event: IsCompleteRequest, image: Image, validation: Validation): Promise<void> {
  const imageId = image.ImageId ?? '';
  const tags: Ec2Tag[] = [
    { Key: 'Name', Value: `${image.Name ?? imageId} validation` },
    ...ownerTags(event),
    { Key: Tag.VALIDATES, Value: imageId },
    { Key: Tag.VALIDATION_REQUEST, Value: event.RequestId },
  ];
  try {
    const response = await ec2.send(new RunInstancesCommand({
      ImageId: imageId,
      InstanceType: validation.instanceType as never,
      MinCount: 1,
      MaxCount: 1,
      SubnetId: validation.subnetId,
      SecurityGroupIds: validation.securityGroupIds,
      UserData: Buffer.from(validation.userData, 'utf8').toString('base64'),
      // The test schedules its own shutdown as a backstop: shutting down then terminates the instance.
      InstanceInitiatedShutdownBehavior: 'terminate',
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      // One launch per image, validation and request, however often a lost answer is retried.
      ClientToken: createHash('sha256').update(`${event.RequestId}/${imageId}/${validation.fingerprint}`).digest('hex').slice(0, 64),
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
    }));
    log('test instance launched', { imageId, instanceId: response.Instances?.[0]?.InstanceId, instanceType: validation.instanceType });
  } catch (error) {
    throw new Error(`RunInstances of the test instance for image ${imageId} failed: ${describeError(error)}`);
  }
}

async function consoleOutput(instanceId: string): Promise<string> {
  try {
    const response = await ec2.send(new GetConsoleOutputCommand({ InstanceId: instanceId, Latest: true }));
    return response.Output ? Buffer.from(response.Output, 'base64').toString('utf8') : '';
  } catch (error) {
    throw withContext(error, `GetConsoleOutput for test instance ${instanceId}`);
  }
}

async function recordPass(imageId: string, validation: Validation): Promise<void> {
  try {
    await ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: [{ Key: Tag.VALIDATED, Value: validation.fingerprint }] }));
  } catch (error) {
    throw withContext(error, `CreateTags (${Tag.VALIDATED}) for image ${imageId}`);
  }
}

async function terminate(instanceId: string): Promise<void> {
  try {
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
    log('test instance terminating', { instanceId });
  } catch (error) {
    if (errorCode(error) === 'InvalidInstanceID.NotFound') {
      return;
    }
    warn('could not terminate the test instance: it shuts itself down after its timeout', { instanceId, error: describeError(error) });
  }
}

/** Deletes an image that failed its first validation: nothing ever used it. True when it was deleted. */
async function discardImage(event: IsCompleteRequest, image: Image, props: BakeProperties): Promise<boolean> {
  try {
    await deleteImage(homeRegion(), event, image.ImageId, image.Name ?? '', props.deregistrationProtection, { image });
    return true;
  } catch (error) {
    warn('could not delete the image that failed validation: the Delete of this resource removes it', { imageId: image.ImageId, error: describeError(error) });
    return false;
  }
}

function tagOf(image: Image, key: string): string | undefined {
  return image.Tags?.find((tag) => tag.Key === key)?.Value;
}
