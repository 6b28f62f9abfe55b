/**
 * The request and response shapes of the CDK provider framework (custom_resources.Provider) as our
 * handlers see them. The framework invokes onEvent once per CloudFormation event, then isComplete
 * every query interval until it answers IsComplete: true, throws, or the provider's totalTimeout passes.
 */
export type RequestType = 'Create' | 'Update' | 'Delete';

export interface OnEventRequest {
  readonly RequestType: RequestType;
  readonly RequestId: string;
  readonly StackId: string;
  readonly LogicalResourceId: string;
  readonly ResourceType: string;
  readonly ResourceProperties: Record<string, unknown>;
  /** Present for Update and Delete. */
  readonly PhysicalResourceId?: string;
  /** Present for Update. */
  readonly OldResourceProperties?: Record<string, unknown>;
  /** Pre-signed URL; never logged. */
  readonly ResponseURL?: string;
}

export interface OnEventResponse {
  readonly PhysicalResourceId?: string;
  readonly Data?: Record<string, string>;
}

export interface IsCompleteRequest extends OnEventRequest {
  /** The PhysicalResourceId onEvent returned (or the request's own, if it returned none). */
  readonly PhysicalResourceId: string;
  readonly Data?: Record<string, string>;
}

export interface IsCompleteResponse {
  readonly IsComplete: boolean;
  readonly Data?: Record<string, string>;
}
