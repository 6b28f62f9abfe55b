/**
 * Structured JSON logs: one object a line, ids and states as fields. Never pass a whole event: the
 * ResponseURL it may carry is a pre-signed URL that must not reach the logs.
 */
export function log(message: string, fields: Record<string, unknown> = {}): void {
  // eslint-disable-next-line no-console
  console.log(JSON.stringify({ level: 'info', message, ...fields }));
}

export function warn(message: string, fields: Record<string, unknown> = {}): void {
  // eslint-disable-next-line no-console
  console.warn(JSON.stringify({ level: 'warn', message, ...fields }));
}
