/**
 * Fault and delay injection for the moto proxy (moto never throttles, never fails an image, never loses an answer and
 * answers at once): EC2 errors instead of moto's answer, answers lost after moto carried the request out, answers
 * rewritten (an image held `pending` or reported `failed`), and gates that hold requests until they have all arrived.
 * Everything here is counted in requests, so that tests are deterministic.
 */
import { escapeXml, filterValues, numberedValues } from './moto-http';

/** Chooses the requests of an Action that something applies to, by their query parameters. */
export type RequestMatcher = (params: URLSearchParams) => boolean;

/** An EC2 error answer: HTTP status and the `<Code>` and `<Message>` of EC2's XML error body. */
export interface Ec2Fault {
  readonly status: number;
  readonly code: string;
  readonly message: string;
}

/** The faults EC2 answers under load, with the HTTP status EC2 uses for each. */
export const EC2_FAULTS = {
  /** Account/Region API rate limit: the SDK classifies it as throttling. */
  throttling: { status: 503, code: 'RequestLimitExceeded', message: 'Request limit exceeded.' },
  internalError: { status: 500, code: 'InternalError', message: 'An internal error has occurred.' },
  unavailable: { status: 503, code: 'Unavailable', message: 'The server is overloaded and can\'t handle the request.' },
} as const satisfies Record<string, Ec2Fault>;

/** How the answer of a request that moto carried out gets lost: an error answer, or the connection reset. */
export type LostResponse = Ec2Fault | 'connection-reset';

/** DescribeImages that looks an image up by name (Filter name=name): the handler's adopt-before-create lookup. */
export const describeImagesByName: RequestMatcher = (params) => numberedValues(params, 'Filter', '.Name').includes('name');

/** DescribeImages by ImageId.N, for the given image or for any. */
export function describeImagesById(imageId?: string): RequestMatcher {
  return (params) => {
    const ids = numberedValues(params, 'ImageId');
    return imageId === undefined ? ids.length > 0 : ids.includes(imageId);
  };
}

/** DescribeImages that looks images of this name up (a `Filter` `name` whose values include it): how the handler finds its copies. */
function describeImagesNamed(name: string): RequestMatcher {
  return (params) => filterValues(params, 'name').includes(name);
}

/** A DescribeImages rewrite: every available image of the answer `pending`. */
function pendingImages(body: string): string {
  return body.replace(/<imageState>available<\/imageState>/g, '<imageState>pending</imageState>');
}

/** A DescribeImages rewrite: every image of the answer `failed`, with this StateReason. */
function failedImages(reason: { code: string; message: string }): (body: string) => string {
  return (body) => body.replace(
    /<imageState>[^<]*<\/imageState>/g,
    `<imageState>failed</imageState><stateReason><code>${escapeXml(reason.code)}</code><message>${escapeXml(reason.message)}</message></stateReason>`,
  );
}

/** Something to do to the next `remaining` requests of `action` that `applies` picks. */
interface Injection<T> {
  readonly action: string;
  readonly applies: RequestMatcher;
  readonly what: T;
  remaining: number;
}

function takeInjection<T>(injections: Array<Injection<T>>, action: string, params: URLSearchParams): T | undefined {
  const injection = injections.find((candidate) => candidate.remaining > 0 && candidate.action === action && candidate.applies(params));
  if (!injection) {
    return undefined;
  }
  injection.remaining--;
  return injection.what;
}

interface Gate {
  readonly count: number;
  readonly waiting: Array<() => void>;
}

/** How long a gate waits for the requests it holds before it lets those that came go (and reports a proxy error). */
const GATE_TIMEOUT_MS = 10_000;

/** The faults, lost answers, rewrites and gates the tests gave the proxy, and what is left of them. */
export class Injections {
  private readonly faults: Array<Injection<Ec2Fault>> = [];
  private readonly lostResponses: Array<Injection<LostResponse>> = [];
  /** Rewrites the bodies of moto's successful answers. */
  private readonly rewrites: Array<Injection<(body: string) => string>> = [];
  private readonly gates = new Map<string, Gate>();

  /** `error` reports a problem of the proxy itself (a gate whose requests did not all arrive). */
  constructor(private readonly error: (message: string) => void) {}

  /**
   * Answers the next `count` requests of `action` that `applies` picks with an EC2 error, without forwarding them
   * to moto: HTTP `fault.status` and EC2's XML error body
   * (`<Response><Errors><Error><Code>...</Code><Message>...</Message></Error></Errors><RequestID>...</RequestID></Response>`).
   */
  failNext(action: string, count: number, fault: Ec2Fault, applies: RequestMatcher = () => true): void {
    this.faults.push({ action, applies, what: fault, remaining: count });
  }

  /**
   * Lets moto carry out the next `count` successful requests of `action` that `applies` picks, then loses the answer:
   * the client gets `how` (an EC2 error) or a reset connection instead. The client cannot know the request took effect.
   */
  loseResponses(action: string, count: number, how: LostResponse, applies: RequestMatcher = () => true): void {
    this.lostResponses.push({ action, applies, what: how, remaining: count });
  }

  /** Faults injected with {@link failNext} or {@link loseResponses} that no request has used yet, by Action. */
  unusedFaults(): Record<string, number> {
    const unused: Record<string, number> = {};
    for (const injection of [...this.faults, ...this.lostResponses]) {
      if (injection.remaining > 0) {
        unused[injection.action] = (unused[injection.action] ?? 0) + injection.remaining;
      }
    }
    return unused;
  }

  /** Drops every fault injected with {@link failNext} or {@link loseResponses}. */
  clearFaults(): void {
    this.faults.length = 0;
    this.lostResponses.length = 0;
  }

  /** Rewrites the bodies of the next `times` successful responses to `action` whose request `applies`. */
  rewriteResponses(action: string, times: number, rewrite: (body: string) => string, applies: RequestMatcher = () => true): void {
    this.rewrites.push({ action, applies, what: rewrite, remaining: times });
  }

  /** How many responses the rewrites given so far ({@link rewriteResponses}, {@link holdPending}, {@link failImage}, ...) have yet to rewrite. */
  unusedRewrites(): number {
    return this.rewrites.reduce((sum, rewrite) => sum + rewrite.remaining, 0);
  }

  /**
   * Reports the image as `pending` to the next `polls` DescribeImages requests that ask for it by id (in any region).
   * Lookups by name are left alone: see {@link holdPendingByName}.
   */
  holdPending(imageId: string, polls: number): void {
    this.rewriteResponses('DescribeImages', polls, pendingImages, describeImagesById(imageId));
  }

  /**
   * Reports the images of this name as `pending` to the next `polls` DescribeImages requests that look them up by
   * name (a `Filter` `name` whose values include it, in any region): how the handler finds its copies.
   */
  holdPendingByName(name: string, polls: number): void {
    this.rewriteResponses('DescribeImages', polls, pendingImages, describeImagesNamed(name));
  }

  /**
   * Reports the image as `failed` with this StateReason to the next `polls` DescribeImages requests that ask for it by id
   * (in any region). Lookups by name are left alone: see {@link failImageByName}.
   */
  failImage(imageId: string, polls: number, reason: { code: string; message: string }): void {
    this.rewriteResponses('DescribeImages', polls, failedImages(reason), describeImagesById(imageId));
  }

  /**
   * Reports the images of this name as `failed` with this StateReason to the next `polls` DescribeImages requests that
   * look them up by name (a `Filter` `name` whose values include it, in any region): how the handler finds its copies.
   */
  failImageByName(name: string, polls: number, reason: { code: string; message: string }): void {
    this.rewriteResponses('DescribeImages', polls, failedImages(reason), describeImagesNamed(name));
  }

  /**
   * Holds the next `count` requests with this Action until all of them have arrived, then lets them go
   * (CreateImage and CopyImage still one at a time per region): two invocations race deterministically.
   */
  gate(action: string, count: number): void {
    this.gates.set(action, { count, waiting: [] });
  }

  /** Waits at the gate of this Action, if there is one, until the gate opens. */
  async passGate(action: string): Promise<void> {
    const gate = this.gates.get(action);
    if (!gate) {
      return;
    }
    if (gate.waiting.length + 1 >= gate.count) {
      this.gates.delete(action);
      gate.waiting.splice(0).forEach((release) => release());
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      gate.waiting.push(resolve);
      timer = setTimeout(() => {
        this.error(`gate for ${action}: only ${gate.waiting.length} of ${gate.count} requests arrived within ${GATE_TIMEOUT_MS / 1000} s`);
        this.gates.delete(action);
        gate.waiting.splice(0).forEach((release) => release());
      }, GATE_TIMEOUT_MS);
    });
    clearTimeout(timer);
  }

  /** The error to answer instead of forwarding this request, if a fault of {@link failNext} applies (used up by this). */
  takeFault(action: string, params: URLSearchParams): Ec2Fault | undefined {
    return takeInjection(this.faults, action, params);
  }

  /** How to lose the successful answer to this request, if {@link loseResponses} applies (used up by this). */
  takeLostResponse(action: string, params: URLSearchParams): LostResponse | undefined {
    return takeInjection(this.lostResponses, action, params);
  }

  /** The body of a successful answer to this request after every rewrite that applies (each used up by one answer). */
  rewrite(action: string, params: URLSearchParams, body: string): string {
    let text = body;
    for (const rewrite of this.rewrites) {
      if (rewrite.remaining > 0 && rewrite.action === action && rewrite.applies(params)) {
        rewrite.remaining--;
        text = rewrite.what(text);
      }
    }
    return text;
  }

  /** Lets every request a gate holds go. */
  releaseGates(): void {
    for (const gate of this.gates.values()) {
      gate.waiting.splice(0).forEach((release) => release());
    }
  }

  /** Forgets every rewrite, gate and fault (requests still held by a gate stay held until its timeout). */
  clear(): void {
    this.rewrites.length = 0;
    this.gates.clear();
    this.clearFaults();
  }
}
