/**
 * CloudFormation as far as the moto proxy answers it: the two reads the handler makes when it keeps superseded images
 * (DescribeStacks, DescribeStackResource), answered in the query protocol from the stack the tests set, as
 * CloudFormation would answer them during an update (emulated-stack.ts sets it in CloudFormation's order).
 */
import type { HttpResult } from './moto-http';

/** The CloudFormation calls the proxy answers itself. */
export const CLOUDFORMATION_ACTIONS: readonly string[] = ['DescribeStacks', 'DescribeStackResource'];

/** The stack the handler asks about: its status, and its resources (logical id -> physical id). */
export interface StackStatus {
  readonly name: string;
  readonly id: string;
  readonly status: string;
  readonly resources: Record<string, string>;
}

const NAMESPACE = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
const METADATA = '<ResponseMetadata><RequestId>cfn-request</RequestId></ResponseMetadata>';

function xml(text: string, status = 200): HttpResult {
  return { status, headers: { 'content-type': 'text/xml' }, body: Buffer.from(text, 'utf8') };
}

function validationError(message: string): HttpResult {
  return xml(`<ErrorResponse xmlns="${NAMESPACE}"><Error><Type>Sender</Type><Code>ValidationError</Code>`
    + `<Message>${message}</Message></Error><RequestId>cfn-error</RequestId></ErrorResponse>`, 400);
}

/** The stack the tests set, and CloudFormation's answers about it. */
export class EmulatedCloudFormation {
  private stack?: StackStatus;

  /** Sets what DescribeStacks and DescribeStackResource answer. */
  setStack(stack: StackStatus): void {
    this.stack = stack;
  }

  /** The answer to one of {@link CLOUDFORMATION_ACTIONS}. */
  answer(action: string, params: URLSearchParams): HttpResult {
    const stack = this.stack;
    const asked = params.get('StackName');
    if (!stack || (asked !== stack.id && asked !== stack.name)) {
      return validationError(`Stack with id ${asked} does not exist`);
    }
    if (action === 'DescribeStacks') {
      return xml(`<DescribeStacksResponse xmlns="${NAMESPACE}"><DescribeStacksResult><Stacks><member><StackName>${stack.name}</StackName>`
        + `<StackId>${stack.id}</StackId><StackStatus>${stack.status}</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime>`
        + `</member></Stacks></DescribeStacksResult>${METADATA}</DescribeStacksResponse>`);
    }
    const logicalId = params.get('LogicalResourceId') ?? '';
    const physicalId = stack.resources[logicalId];
    if (!physicalId) {
      return validationError(`Resource ${logicalId} does not exist for stack ${stack.name}`);
    }
    return xml(`<DescribeStackResourceResponse xmlns="${NAMESPACE}"><DescribeStackResourceResult><StackResourceDetail>`
      + `<StackName>${stack.name}</StackName><StackId>${stack.id}</StackId><LogicalResourceId>${logicalId}</LogicalResourceId>`
      + `<PhysicalResourceId>${physicalId}</PhysicalResourceId><ResourceType>Custom::BakedImage</ResourceType>`
      + '<LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp><ResourceStatus>UPDATE_COMPLETE</ResourceStatus>'
      + `</StackResourceDetail></DescribeStackResourceResult>${METADATA}</DescribeStackResourceResponse>`);
  }

  /** Forgets the stack (every call answers `ValidationError` until the next {@link setStack}). */
  clear(): void {
    this.stack = undefined;
  }
}
