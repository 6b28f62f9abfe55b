/**
 * Deadlines of one CloudFormation request. onEvent records when its work started (Attr.REQUEST_STARTED_AT in its
 * Data); the provider framework hands that Data to every isComplete of the request. Each wait counts from there:
 * never from the image's creation, which may be long before (an Update that adds validation or a copy region to an
 * old image, a rollback that re-runs an old validation).
 */
import { Attr } from '../../src/private/contract';

/**
 * How long an image, a copy or a test instance may stay invisible to Describe calls after the request made it.
 * EC2 is eventually consistent ("Eventual consistency in the Amazon EC2 API"): a resource just created may answer
 * NotFound for a while. Past this, it is taken as gone.
 */
export const NOT_VISIBLE_GRACE_SECONDS = 300;

/**
 * How long a Delete retries snapshots that EC2 still reports in use (`InvalidSnapshot.InUse`) after their image was
 * deregistered, before it fails naming them.
 */
export const SNAPSHOT_RELEASE_SECONDS = 600;

/** The Data onEvent adds to every answer: when this request's work started. */
export function startData(now: Date = new Date()): Record<string, string> {
  return { [Attr.REQUEST_STARTED_AT]: now.toISOString() };
}

/** Seconds since onEvent started this request's work; undefined for a request started without the record. */
export function secondsSinceStart(event: { readonly Data?: Record<string, string> }): number | undefined {
  const started = Date.parse(event.Data?.[Attr.REQUEST_STARTED_AT] ?? '');
  return Number.isNaN(started) ? undefined : (Date.now() - started) / 1000;
}
