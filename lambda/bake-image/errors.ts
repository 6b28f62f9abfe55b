/** EC2 error helpers: what the handlers put into CloudFormation's reason, and how they tell errors apart. */

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
