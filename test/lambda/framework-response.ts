/**
 * The response the CDK provider framework sends to CloudFormation for a handler's answer, rebuilt from its code
 * (aws-cdk-lib custom-resources/lib/provider-framework/runtime: framework.ts invokeUserFunction, cfn-response.ts
 * safeHandler and submitResponse), so that tests can hold every answer to CloudFormation's limit: "The total size of
 * the response body can't exceed 4096 bytes" (CloudFormation User Guide, "Custom resource response objects"). Over
 * it, CloudFormation fails the resource with "Response object is too long." and the reason is lost.
 *
 * - The Lambda runtime reports a thrown error as `errorMessage` and `trace` (the error's `stack`, split in lines).
 * - The framework rethrows `<errorMessage>\n\nLogs: /aws/lambda/<function name>\n` with the trace's lines 2 and on
 *   appended (lines 2.. of a multi-line message appear twice), and sends that whole stack as `Reason`.
 * - A failed onEvent's body has no `Data`; a failed isComplete's has onEvent's `Data`; a success has both merged.
 *
 * Names are taken at their longest (a 64-character function name, a 229-character stack id in aws-us-gov, a
 * 255-character logical id): what fits here fits in every stack.
 */
import type { OnEventRequest } from '../../lambda/bake-image/types';

export const MAX_FRAMEWORK_RESPONSE_BYTES = 4096;

const LONGEST_FUNCTION_NAME = 'f'.repeat(64);
const LONGEST_STACK_ID = `arn:aws-us-gov:cloudformation:us-gov-west-1:123456789012:stack/${'s'.repeat(128)}/11111111-2222-3333-4444-555555555555`;
const LONGEST_LOGICAL_ID = 255;
const CREATE_FAILED_MARKER = 'AWSCDK::CustomResourceProviderFramework::CREATE_FAILED';

/** How a request ended: the handler's answer, or the error it threw (in onEvent, or in an isComplete). */
export interface HandlerOutcome {
  readonly outcome: 'SUCCESS' | 'FAILED';
  readonly physicalId?: string;
  /** Success: onEvent's and isComplete's Data merged. Failure in isComplete: onEvent's Data. Failure in onEvent: none. */
  readonly data?: Record<string, string>;
  readonly error?: unknown;
}

/** The bytes of the body the framework would send to CloudFormation for this outcome. */
export function frameworkResponseBytes(event: OnEventRequest, outcome: HandlerOutcome): number {
  const body = {
    Status: outcome.outcome,
    Reason: outcome.outcome === 'FAILED' ? failureReason(outcome.error) : outcome.outcome,
    StackId: LONGEST_STACK_ID.length > event.StackId.length ? LONGEST_STACK_ID : event.StackId,
    RequestId: event.RequestId,
    PhysicalResourceId: outcome.physicalId || event.PhysicalResourceId || CREATE_FAILED_MARKER,
    LogicalResourceId: event.LogicalResourceId.padEnd(LONGEST_LOGICAL_ID, 'L'),
    Data: outcome.data && Object.keys(outcome.data).length > 0 ? outcome.data : undefined,
  };
  return Buffer.byteLength(JSON.stringify(body), 'utf8');
}

/** The Reason the framework builds from an error the handler threw. */
export function failureReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const trace = error instanceof Error && typeof error.stack === 'string' ? error.stack.split('\n') : [];
  const wrapped = [message, '', `Logs: /aws/lambda/${LONGEST_FUNCTION_NAME}`, ''].join('\n');
  return trace.length > 0 ? [wrapped, ...trace.slice(1)].join('\n') : wrapped;
}
