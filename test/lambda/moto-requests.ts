/**
 * What the moto proxy records of each request it answers (Ec2Proxy.requests): what the SDK sent (service, Action or
 * JSON operation, parameters, region, its retry headers) and how the proxy answered it.
 */
import type * as http from 'http';
import { CLOUDFORMATION_ACTIONS } from './moto-cloudformation';
import { jsonTargetOf, parseSdkRequestHeader, regionOf, signedServiceOf } from './moto-http';

/** One request the proxy answered. */
export interface ProxiedRequest {
  /** The service of the SigV4 credential scope (`ec2`, `cloudformation`, `ssm`, ...). */
  readonly service: string;
  /** The query protocol's `Action`, or the JSON protocol's operation (`X-Amz-Target: AmazonSSM.PutParameter` -> `PutParameter`). */
  readonly action: string;
  /** The query parameters (empty for a JSON-protocol request). */
  readonly params: URLSearchParams;
  /** The parsed body of a JSON-protocol request. */
  readonly json?: unknown;
  /** The region the request is signed for (REGION when its Authorization header names none). */
  readonly region: string;
  /** When the request arrived (performance.now(), milliseconds). */
  readonly at: number;
  /** The SDK's `amz-sdk-invocation-id`: one value for all attempts of one SDK call. */
  readonly invocationId?: string;
  /** The SDK's attempt number of this request (`amz-sdk-request: attempt=N; max=M`). */
  readonly attempt?: number;
  /** The SDK's maximum number of attempts for this call (the `max` of `amz-sdk-request`). */
  readonly maxAttempts?: number;
  /** HTTP status of the answer; 0 when the proxy reset the connection instead. */
  status?: number;
  /** Error code of the answer, if it was an error (`ECONNRESET` for a reset connection). */
  errorCode?: string;
  /**
   * Set when a fault was injected: `fault` (answered an error, moto never saw the request) or `response-lost`
   * (moto carried the request out, the client got an error or a reset connection instead of the answer).
   */
  injected?: 'fault' | 'response-lost';
  /** The authorizer's reasons when it denied the request (moto never saw it). */
  denials?: string[];
}

/** Reads a request as the proxy records it: service, Action (or JSON operation), parameters, region, SDK retry headers. */
export function recordOf(request: http.IncomingMessage, body: Buffer, at: number): { record: ProxiedRequest; jsonProtocol: boolean } {
  const target = jsonTargetOf(request);
  const params = target ? new URLSearchParams() : new URLSearchParams(body.toString('utf8'));
  const action = target?.operation ?? params.get('Action') ?? `${request.method} ${request.url}`;
  let json: unknown;
  if (target && body.length > 0) {
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      json = undefined; // the service answers a malformed body itself
    }
  }
  const service = signedServiceOf(request)
    ?? (target ? target.prefix.replace(/^Amazon/, '').toLowerCase() : CLOUDFORMATION_ACTIONS.includes(action) ? 'cloudformation' : 'ec2');
  const sdkRequest = parseSdkRequestHeader(request.headers['amz-sdk-request']);
  const invocationId = request.headers['amz-sdk-invocation-id'];
  const record: ProxiedRequest = {
    service,
    action,
    params,
    ...(target ? { json } : {}),
    region: regionOf(request),
    at,
    invocationId: Array.isArray(invocationId) ? invocationId[0] : invocationId,
    attempt: sdkRequest.attempt,
    maxAttempts: sdkRequest.max,
  };
  return { record, jsonProtocol: target !== undefined };
}
