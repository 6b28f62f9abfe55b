/** EC2 error helpers: what the handlers put into CloudFormation's reason, and how they tell errors apart. */
import { log } from './log';

/** The EC2 error code of an SDK error (`InvalidAMIID.NotFound`), or its name. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null) {
    const { name, Code } = error as { name?: unknown; Code?: unknown };
    if (typeof Code === 'string') {
      return Code;
    }
    if (typeof name === 'string') {
      return name;
    }
  }
  return undefined;
}

/** True for the errors EC2 answers about an image that does not exist (any more). */
export function isImageGone(error: unknown): boolean {
  const code = errorCode(error);
  return code === 'InvalidAMIID.NotFound' || code === 'InvalidAMIID.Unavailable';
}

/**
 * `Code: message`, and how many attempts the SDK made when it retried (throttling, 5xx, lost connections) and gave up:
 * the CloudFormation event then tells a persistent problem from a single failed request.
 */
export function describeError(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const attempts = (error as { $metadata?: { attempts?: unknown } } | null | undefined)?.$metadata?.attempts;
  const retried = typeof attempts === 'number' && attempts > 1 ? ` (after ${attempts} attempts)` : '';
  return (code && code !== 'Error' ? `${code}: ${message}` : message) + retried;
}

/**
 * Puts what the handler was doing in front of an error's message, which is all CloudFormation shows. The error
 * itself is kept (its name, code and $metadata), so callers can still tell one EC2 error from another.
 */
export function withContext(error: unknown, context: string): unknown {
  if (typeof error === 'object' && error !== null && typeof (error as { message?: unknown }).message === 'string') {
    (error as { message: string }).message = `${context} failed: ${describeError(error)}`;
  }
  return error;
}

/**
 * The most bytes (JSON-escaped) of a reason the handlers give CloudFormation. The provider framework sends the
 * reason with the stack id, request id, logical and physical ids, a log group line and, for isComplete, onEvent's
 * Data; CloudFormation refuses a response over 4,096 bytes, and the reason is then lost ("Response object is too
 * long"). 1,500 leaves room for the longest names (test/lambda/framework-response.ts holds every answer to it).
 */
export const MAX_REASON_BYTES = 1500;

/** What the marker of a cut reason costs. */
const CUT = '\n[...]\n';

/**
 * The error to give the provider framework: the message cut to MAX_REASON_BYTES (its start and its end kept), and no
 * stack trace, which the framework would append to the reason (and repeat every line of the message after the first).
 * The full error, stack included, goes to the log first.
 */
export function forCloudFormation(error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  log('request failed', { level: 'error', error: message, stack: error instanceof Error ? error.stack : undefined });
  const answer = new Error(fitReason(message, MAX_REASON_BYTES));
  answer.stack = '';
  return answer;
}

/** The text cut to at most `maxBytes` once JSON-escaped: its first two thirds and its last third, marked where cut. */
export function fitReason(text: string, maxBytes: number): string {
  if (escapedBytes(text) <= maxBytes) {
    return text;
  }
  const chars = Array.from(text);
  const budget = maxBytes - escapedBytes(CUT);
  const take = (from: string[], limit: number): string[] => {
    const kept: string[] = [];
    let used = 0;
    for (const char of from) {
      const size = escapedBytes(char);
      if (used + size > limit) {
        break;
      }
      kept.push(char);
      used += size;
    }
    return kept;
  };
  const head = take(chars, Math.floor((budget * 2) / 3));
  const tail = take([...chars].reverse(), budget - escapedBytes(head.join(''))).reverse();
  return `${head.join('')}${CUT}${tail.join('')}`;
}

/** Bytes of the text inside a JSON string (escapes counted: a newline is 2, a control character 6). */
function escapedBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), 'utf8') - 2;
}
