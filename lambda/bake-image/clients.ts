import { EC2Client } from '@aws-sdk/client-ec2';

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
