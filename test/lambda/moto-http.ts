/**
 * The low-level pieces of the moto test harness (see moto-server.ts): the test constants, EC2 clients, HTTP, what the
 * proxy's emulations need of it (MotoBackend), the AWS query and JSON protocols as the SDK sends them, and EC2's XML
 * answers as the proxy reads and rewrites them.
 */
import * as http from 'http';
import * as net from 'net';
import { EC2Client } from '@aws-sdk/client-ec2';

/** The region a request without a SigV4 credential scope is for. */
export const REGION = 'us-east-1';

/** The account moto puts every resource the tests create in (moto's default account). */
export const MOTO_ACCOUNT_ID = '123456789012';

/** moto checks no signature: static test credentials. */
export const ACCESS_KEY_ID = 'testing';
/**
 * The access key the handler bundle signs with in the tests: it stands for the handler's role, so an authorizer can
 * tell the handler's requests (held to its policy) from the tests' own setup and assertions (not held to it).
 */
export const HANDLER_ACCESS_KEY_ID = 'bake-handler-role';

/** The stack the handler's requests come from in the moto tests (CloudFormation's StackId of their events). */
export const MOTO_STACK_NAME = 'MotoStack';
export const MOTO_STACK_ID = `arn:aws:cloudformation:us-east-1:123456789012:stack/${MOTO_STACK_NAME}/11111111-2222-3333-4444-555555555555`;
/** The tag the construct gives every builder, which lets the handlers image, stop and terminate it. */
export const STACK_ID_TAG = 'cdk-baked-image:stack-id';
export const SECRET_ACCESS_KEY = 'testing';

/**
 * An EC2 client for the given endpoint and region (moto's backend of that region): static test credentials, no retries
 * (a failure is a failure).
 */
export function ec2ClientFor(endpoint: string, region: string = REGION): EC2Client {
  return new EC2Client({
    region,
    endpoint,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY },
    maxAttempts: 1,
  });
}

/** EC2 clients for one endpoint, one per region, made when first asked for (see {@link ec2ClientFor}). */
export class RegionalEc2Clients {
  private readonly clients = new Map<string, EC2Client>();

  constructor(private readonly endpoint: string) {}

  /** The client of this region. */
  in(region: string): EC2Client {
    let client = this.clients.get(region);
    if (!client) {
      client = ec2ClientFor(this.endpoint, region);
      this.clients.set(region, client);
    }
    return client;
  }

  /** Destroys every client made so far (later calls of {@link in} make new ones). */
  destroy(): void {
    for (const client of this.clients.values()) {
      client.destroy();
    }
    this.clients.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------------------

export interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export function readBody(stream: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

export function httpRequest(options: http.RequestOptions, body?: Buffer): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = http.request(options, (response) => {
      readBody(response).then(
        (data) => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: data }),
        reject,
      );
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('Could not find a free port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `attempt=2; max=6` -> { attempt: 2, max: 6 } */
export function parseSdkRequestHeader(value: string | string[] | undefined): { attempt?: number; max?: number } {
  const text = firstHeader(value);
  const attempt = /attempt=(\d+)/.exec(text ?? '')?.[1];
  const max = /max=(\d+)/.exec(text ?? '')?.[1];
  return { attempt: attempt ? Number(attempt) : undefined, max: max ? Number(max) : undefined };
}

/**
 * What the proxy's emulation of an AWS API needs of the proxy: moto behind it, and the proxy's clock. Side calls go
 * straight to moto: they are neither recorded nor authorized, and see no injected fault.
 */
export interface MotoBackend {
  /** Forwards a request to moto with this body (the request's own, or a rewritten one): moto's answer. */
  forward(request: http.IncomingMessage, body: Buffer): Promise<HttpResult>;
  /** Direct client to moto's backend of this region, for side calls. */
  motoIn(region: string): EC2Client;
  /** The proxy's clock (epoch milliseconds), which tests can move forward. */
  now(): number;
}

// ---------------------------------------------------------------------------------------------------------
// What a request is: service, region, Action, parameters
// ---------------------------------------------------------------------------------------------------------

/** `Credential=AKID/20261122/us-west-2/ec2/aws4_request` of a SigV4 `Authorization` header: region and service. */
function credentialScope(request: http.IncomingMessage): { accessKeyId?: string; region?: string; service?: string } {
  const authorization = firstHeader(request.headers.authorization);
  const match = /Credential=([^/,\s]+)\/\d{8}\/([^/,\s]+)\/([^/,\s]+)\//.exec(authorization ?? '');
  return match ? { accessKeyId: match[1], region: match[2], service: match[3] } : {};
}

/** The access key a request is signed with: the handler's ({@link HANDLER_ACCESS_KEY_ID}) or a test's own. */
export function accessKeyOf(request: http.IncomingMessage): string | undefined {
  return credentialScope(request).accessKeyId;
}

/**
 * The region a request is signed for: every client talks to the same endpoint, so the region is only in the SigV4
 * `Authorization` header (`Credential=AKID/20261122/us-west-2/ec2/aws4_request`). REGION when there is none.
 */
export function regionOf(request: http.IncomingMessage): string {
  return credentialScope(request).region ?? REGION;
}

/** The service a request is signed for (the credential scope's `ec2`, `cloudformation`, `ssm`, ...), if it names one. */
export function signedServiceOf(request: http.IncomingMessage): string | undefined {
  return credentialScope(request).service;
}

/**
 * The JSON protocol's operation: `X-Amz-Target: AmazonSSM.PutParameter` -> `PutParameter`. Undefined for a
 * query-protocol request (EC2, CloudFormation), whose Action is in its form body.
 */
export function jsonTargetOf(request: http.IncomingMessage): { prefix: string; operation: string } | undefined {
  const target = firstHeader(request.headers['x-amz-target']);
  const match = /^([^.]+)\.(.+)$/.exec(target ?? '');
  return match ? { prefix: match[1], operation: match[2] } : undefined;
}

/** Values of numbered query parameters: `prefix.1.suffix`, `prefix.2.suffix`, ... */
export function numberedValues(params: URLSearchParams, prefix: string, suffix = ''): string[] {
  const values: Array<[number, string]> = [];
  const pattern = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)${suffix.replace(/\./g, '\\.')}$`);
  for (const [key, value] of params) {
    const match = pattern.exec(key);
    if (match) {
      values.push([Number(match[1]), value]);
    }
  }
  return values.sort((a, b) => a[0] - b[0]).map(([, value]) => value);
}

/** Values of the `Filter.N` whose `Filter.N.Name` is `name`: `Filter.N.Value.1`, `Filter.N.Value.2`, ... */
export function filterValues(params: URLSearchParams, name: string): string[] {
  const values: string[] = [];
  for (const [key, value] of params) {
    const match = /^Filter\.(\d+)\.Name$/.exec(key);
    if (match && value === name) {
      values.push(...numberedValues(params, `Filter.${match[1]}.Value`));
    }
  }
  return values;
}

/**
 * The parameters without the numbered groups `prefix.N.field` that `drop` picks (it gets each group's fields: `field` ->
 * value), the other groups renumbered 1, 2, ... in their order. Returns the dropped groups' fields too, in their order.
 */
export function withoutGroups(
  params: URLSearchParams,
  prefix: string,
  drop: (fields: Map<string, string>) => boolean,
): { params: URLSearchParams; dropped: Array<Map<string, string>> } {
  const pattern = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)\\.(.+)$`);
  const groups = new Map<number, Map<string, string>>();
  for (const [key, value] of params) {
    const match = pattern.exec(key);
    if (match) {
      const index = Number(match[1]);
      groups.set(index, (groups.get(index) ?? new Map<string, string>()).set(match[2], value));
    }
  }
  const dropped: Array<Map<string, string>> = [];
  const renumbered = new Map<number, number>();
  let next = 1;
  for (const index of [...groups.keys()].sort((a, b) => a - b)) {
    const fields = groups.get(index)!;
    if (drop(fields)) {
      dropped.push(fields);
    } else {
      renumbered.set(index, next++);
    }
  }
  const result = new URLSearchParams();
  for (const [key, value] of params) {
    const match = pattern.exec(key);
    if (!match) {
      result.append(key, value);
    } else if (renumbered.has(Number(match[1]))) {
      result.append(`${prefix}.${renumbered.get(Number(match[1]))}.${match[2]}`, value);
    }
  }
  return { params: result, dropped };
}

/** The parameters without the `Filter.N` groups named `name`, the other filters renumbered. */
export function withoutFilter(params: URLSearchParams, name: string): URLSearchParams {
  return withoutGroups(params, 'Filter', (fields) => fields.get('Name') === name).params;
}

/** The parameters of a request, as one comparable string (for EC2's ClientToken idempotency), without its ClientToken. */
export function requestKeyOf(params: URLSearchParams): string {
  return [...params].filter(([key]) => key !== 'ClientToken').map(([key, value]) => `${key}=${value}`).sort().join('&');
}

/** EC2's filter value matching: `*` matches any run of characters and `?` any one character. */
export function filterMatches(patterns: string[], value: string): boolean {
  return patterns.some((pattern) => {
    const regex = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    return new RegExp(`^${regex}$`).test(value);
  });
}

/** A string as one single-quoted shell word. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, '\'\\\'\'')}'`;
}

// ---------------------------------------------------------------------------------------------------------
// EC2's XML
// ---------------------------------------------------------------------------------------------------------

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function ec2ErrorXml(code: string, message: string): string {
  return '<?xml version="1.0" encoding="UTF-8"?>\n'
    + `<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors>`
    + `<RequestID>moto-proxy-${Date.now().toString(16)}</RequestID></Response>`;
}

/** An EC2 error answer: HTTP status and EC2's XML error body. */
export function ec2Error(status: number, code: string, message: string): HttpResult {
  return { status, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(ec2ErrorXml(code, message), 'utf8') };
}

/** The error code of an answer: `<Code>` of a query-protocol XML error, `__type` of a JSON-protocol one. */
export function errorCodeOf(body: string): string | undefined {
  const xmlCode = /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
  if (xmlCode) {
    return xmlCode;
  }
  const jsonType = /"__type"\s*:\s*"([^"]+)"/.exec(body)?.[1];
  return jsonType?.replace(/^.*#/, '');
}

export function xmlResult(xml: string): HttpResult {
  return { status: 200, headers: { 'content-type': 'text/xml;charset=UTF-8' }, body: Buffer.from(xml, 'utf8') };
}

/** The text of the first `<tag>` in the XML, unescaped no further. */
export function xmlValue(xml: string, tag: string): string | undefined {
  return new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml)?.[1];
}

/**
 * The top-level `<item>`s of the first `<setTag>` list in an EC2 answer (`imagesSet`, `reservationSet`,
 * `instancesSet`), with what comes before and after the list, so that items can be dropped or rewritten.
 * Undefined when the answer has no such list.
 */
export function xmlItems(xml: string, setTag: string): { before: string; items: string[]; after: string } | undefined {
  const empty = xml.indexOf(`<${setTag}/>`);
  const open = xml.indexOf(`<${setTag}>`);
  if (open < 0 || (empty >= 0 && empty < open)) {
    return empty >= 0 ? { before: xml.slice(0, empty), items: [], after: xml.slice(empty + setTag.length + 3) } : undefined;
  }
  const start = open + setTag.length + 2;
  const token = new RegExp(`<(/?)item(\\s*/)?>|</${setTag}>`, 'g');
  token.lastIndex = start;
  const items: string[] = [];
  let depth = 0;
  let itemStart = -1;
  for (let match = token.exec(xml); match; match = token.exec(xml)) {
    if (match[0] === `</${setTag}>`) {
      if (depth === 0) {
        return { before: xml.slice(0, open), items, after: xml.slice(match.index + match[0].length) };
      }
      continue;
    }
    if (match[2]) {
      if (depth === 0) {
        items.push(match[0]);
      }
    } else if (!match[1]) {
      if (depth === 0) {
        itemStart = match.index;
      }
      depth++;
    } else {
      depth--;
      if (depth === 0) {
        items.push(xml.slice(itemStart, match.index + match[0].length));
      }
    }
  }
  return undefined;
}

/** Puts an EC2 list back together from {@link xmlItems}' parts. */
export function joinXmlItems(parts: { before: string; items: string[]; after: string }, setTag: string): string {
  return parts.items.length === 0
    ? `${parts.before}<${setTag}/>${parts.after}`
    : `${parts.before}<${setTag}>${parts.items.join('')}</${setTag}>${parts.after}`;
}

/** The value of a top-level element of an `<item>` (not one inside a nested list, such as a tag's `<value>`). */
export function itemField(item: string, tag: string): string | undefined {
  // Nested lists are `<...Set>` (or `<blockDeviceMapping>`) elements holding `<item>`s: cut them out first.
  let flat = item.replace(/^<item>/, '').replace(/<\/item>$/, '');
  for (let previous = ''; previous !== flat;) {
    previous = flat;
    flat = flat.replace(/<item>(?:(?!<item>)[\s\S])*?<\/item>/g, '');
  }
  return xmlValue(flat, tag);
}

/** Adds elements at the end of an `<item>`. */
export function appendToItem(item: string, xml: string): string {
  return item.endsWith('</item>') ? `${item.slice(0, -'</item>'.length)}${xml}</item>` : item;
}
