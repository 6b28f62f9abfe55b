import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';

/** The SDK retries throttling, 5xx answers and lost connections: six attempts with standard backoff. */
const MAX_ATTEMPTS = 6;

/** The region the handler runs in: the stack's, where the builder and the image are. */
export function homeRegion(): string {
  return process.env.AWS_REGION ?? '';
}

/** EC2 in the stack's region. */
export const ec2 = new EC2Client({ maxAttempts: MAX_ATTEMPTS });

const regional = new Map<string, EC2Client>();

/** EC2 in a region the image is copied to; one client per region and execution environment. */
export function ec2In(region: string): EC2Client {
  if (region === homeRegion()) {
    return ec2;
  }
  let client = regional.get(region);
  if (!client) {
    client = new EC2Client({ region, maxAttempts: MAX_ATTEMPTS });
    regional.set(region, client);
  }
  return client;
}

type SsmSdk = typeof import('@aws-sdk/client-ssm');

let ssmSdk: SsmSdk | undefined;

const ssmClients = new Map<string, SSMClient>();

/**
 * SSM in a region the image is copied to, where the copy's id is published; one client per region and execution
 * environment. Its SDK is loaded on first use: only images that publish their copies' ids need it, and the cold start
 * of every other stack must not pay for loading it.
 */
export function ssmIn(region: string): { readonly client: SSMClient; readonly sdk: SsmSdk } {
  if (!ssmSdk) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    ssmSdk = require('@aws-sdk/client-ssm') as SsmSdk;
  }
  let client = ssmClients.get(region);
  if (!client) {
    client = new ssmSdk.SSMClient({ region, maxAttempts: MAX_ATTEMPTS });
    ssmClients.set(region, client);
  }
  return { client, sdk: ssmSdk };
}

type CloudFormationSdk = typeof import('@aws-sdk/client-cloudformation');

let cloudFormationClient: { readonly client: CloudFormationClient; readonly sdk: CloudFormationSdk } | undefined;

/**
 * CloudFormation in the stack's region. Its SDK is loaded on first use: only a Delete that keeps superseded images
 * needs it, and loading it costs every cold start about 60 ms.
 */
export function cloudFormation(): { readonly client: CloudFormationClient; readonly sdk: CloudFormationSdk } {
  if (!cloudFormationClient) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const sdk = require('@aws-sdk/client-cloudformation') as CloudFormationSdk;
    cloudFormationClient = { client: new sdk.CloudFormationClient({ maxAttempts: MAX_ATTEMPTS }), sdk };
  }
  return cloudFormationClient;
}
