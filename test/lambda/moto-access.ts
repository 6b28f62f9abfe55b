/**
 * IAM for the moto proxy (moto enforces none): the authorizer hook the proxy asks about every request, the answers
 * AWS gives a request its policy denies, and the resource lookups an authorizer needs to evaluate a policy's
 * conditions (tags, owner) — straight against moto, never through the proxy.
 */
import {
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeNetworkInterfacesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { ACCESS_KEY_ID, escapeXml, httpRequest, type HttpResult, MOTO_ACCOUNT_ID } from './moto-http';

/** One request as the authorizer sees it. */
export interface AuthorizationRequest {
  /** The service of the SigV4 credential scope: `ec2`, `cloudformation`, `ssm`, ... */
  readonly service: string;
  /** The operation: the query protocol's `Action`, or the JSON protocol's `X-Amz-Target` after the dot. */
  readonly action: string;
  /** The query parameters (empty for a JSON-protocol request). */
  readonly params: URLSearchParams;
  /** The parsed body of a JSON-protocol request. */
  readonly json?: unknown;
  /** The region the request is signed for. */
  readonly region: string;
  /** The access key it is signed with: HANDLER_ACCESS_KEY_ID for the handler's requests. */
  readonly accessKeyId?: string;
}

/** The authorizer's decision: `denials` say why (they go into the error message and {@link Ec2Proxy.takeDenials}). */
export interface Authorization {
  readonly allowed: boolean;
  readonly denials: string[];
}

/** Decides every request the proxy receives, as IAM would for the handler's role. */
export type Authorizer = (request: AuthorizationRequest) => Promise<Authorization>;

/**
 * AWS's answer to a request its policy denies, in the service's protocol:
 * - EC2: HTTP 403, `UnauthorizedOperation` in EC2's XML error body;
 * - CloudFormation (and other query-protocol services): HTTP 403, `AccessDenied` in an `ErrorResponse`;
 * - SSM (and other JSON-protocol services): HTTP 400, `{"__type":"AccessDeniedException","message":...}`.
 */
export function deniedResult(request: AuthorizationRequest, denials: string[], jsonProtocol: boolean): HttpResult {
  const what = `${request.service}:${request.action}`;
  const reasons = denials.length > 0 ? denials.join(' ') : `not authorized to perform: ${what}`;
  const requestId = `denied-${Date.now().toString(16)}`;
  if (jsonProtocol) {
    return {
      status: 400,
      headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': requestId, 'x-amzn-errortype': 'AccessDeniedException' },
      body: Buffer.from(JSON.stringify({ __type: 'AccessDeniedException', message: `User is not authorized to perform: ${what}. ${reasons}` }), 'utf8'),
    };
  }
  if (request.service === 'ec2') {
    // EC2 also encodes the reasons (sts:DecodeAuthorizationMessage); the plain text helps a failing test more.
    const encoded = Buffer.from(reasons, 'utf8').toString('base64');
    const message = `You are not authorized to perform this operation. ${reasons} Encoded authorization failure message: ${encoded}`;
    return {
      status: 403,
      headers: { 'content-type': 'text/xml;charset=UTF-8' },
      body: Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code>'
        + `<Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`, 'utf8'),
    };
  }
  const namespace = request.service === 'cloudformation' ? ' xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"' : '';
  return {
    status: 403,
    headers: { 'content-type': 'text/xml' },
    body: Buffer.from(`<ErrorResponse${namespace}><Error><Type>Sender</Type><Code>AccessDenied</Code>`
      + `<Message>${escapeXml(`User is not authorized to perform: ${what}. ${reasons}`)}</Message></Error>`
      + `<RequestId>${requestId}</RequestId></ErrorResponse>`, 'utf8'),
  };
}

/**
 * The resource types an authorizer may need to look up (the `ec2:ResourceTag`, owner and attribute conditions): EC2's,
 * and SSM parameters (by name).
 */
export type Ec2ResourceType = 'image' | 'snapshot' | 'instance' | 'volume' | 'subnet' | 'security-group' | 'network-interface' | 'parameter';

/** What a policy condition can ask of an existing resource. */
export interface Ec2ResourceFacts {
  readonly tags: Record<string, string>;
  /** The owning account (volumes have none in EC2's answer). */
  readonly owner?: string;
  /** An image's EBS snapshots (what DeregisterImage with DeleteAssociatedSnapshots deletes). */
  readonly snapshotIds?: string[];
  /**
   * Attribute condition keys of the resource, as the Service Authorization Reference names them (`ec2:InstanceType`,
   * `ec2:Vpc` as an ARN, `ec2:AvailabilityZone`, `ec2:RootDeviceType`, `ec2:Public`, `ec2:VolumeType`, ...).
   */
  readonly conditionValues?: Record<string, string | string[]>;
}

/** Looks existing resources up for an authorizer. */
export interface Ec2Lookup {
  /**
   * The resource's tags, owner and condition values as the service knows them now; undefined when there is no such
   * resource in the region. `resourceType` is one of {@link Ec2ResourceType}; another throws.
   */
  describe(region: string, resourceType: string, id: string): Promise<Ec2ResourceFacts | undefined>;
}

function tagRecord(tags: Tag[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((tag) => [tag.Key ?? '', tag.Value ?? '']));
}

/** Condition values without the unknown ones. */
function known(values: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
}

/** True for the answers that say the resource does not exist (`InvalidAMIID.NotFound`, `InvalidSnapshot.NotFound`, ...). */
function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string }).name ?? '';
  return /NotFound|Malformed|InvalidAMIID|InvalidID/.test(name);
}

/**
 * {@link Ec2Lookup} straight against moto's backend of each region (never through the proxy: the lookups are
 * neither counted, nor authorized, nor subject to the proxy's eventual consistency, as IAM sees the resource itself).
 */
export class MotoEc2Lookup implements Ec2Lookup {
  /**
   * @param clientIn a direct EC2 client to moto's backend of the region
   * @param motoEndpoint moto's endpoint, for SSM's JSON protocol
   */
  constructor(private readonly clientIn: (region: string) => EC2Client, private readonly motoEndpoint: string) {}

  async describe(region: string, resourceType: string, id: string): Promise<Ec2ResourceFacts | undefined> {
    try {
      return await this.find(region, resourceType as Ec2ResourceType, id);
    } catch (error) {
      if (isNotFound(error)) {
        return undefined;
      }
      throw error;
    }
  }

  private async find(region: string, resourceType: Ec2ResourceType, id: string): Promise<Ec2ResourceFacts | undefined> {
    const client = this.clientIn(region);
    const vpcArn = (vpcId: string | undefined, owner: string | undefined) => (vpcId ? `arn:aws:ec2:${region}:${owner ?? ''}:vpc/${vpcId}` : undefined);
    switch (resourceType) {
      case 'image': {
        const image = (await client.send(new DescribeImagesCommand({ ImageIds: [id] }))).Images?.find((candidate) => candidate.ImageId === id);
        if (!image || image.State === 'deregistered') {
          return undefined;
        }
        return {
          tags: tagRecord(image.Tags),
          owner: image.OwnerId,
          snapshotIds: (image.BlockDeviceMappings ?? []).flatMap((mapping) => (mapping.Ebs?.SnapshotId ? [mapping.Ebs.SnapshotId] : [])),
          conditionValues: known({
            'ec2:Public': image.Public === undefined ? undefined : String(image.Public),
            'ec2:ImageType': image.ImageType,
            'ec2:RootDeviceType': image.RootDeviceType,
          }),
        };
      }
      case 'snapshot': {
        const response = await client.send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }));
        const snapshot = response.Snapshots?.find((candidate) => candidate.SnapshotId === id);
        return snapshot ? {
          tags: tagRecord(snapshot.Tags),
          owner: snapshot.OwnerId,
          conditionValues: known({
            'ec2:Encrypted': snapshot.Encrypted === undefined ? undefined : String(snapshot.Encrypted),
            'ec2:VolumeSize': snapshot.VolumeSize === undefined ? undefined : String(snapshot.VolumeSize),
          }),
        } : undefined;
      }
      case 'instance': {
        const response = await client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
        for (const reservation of response.Reservations ?? []) {
          const instance = reservation.Instances?.find((candidate) => candidate.InstanceId === id);
          if (instance) {
            return {
              tags: tagRecord(instance.Tags),
              owner: reservation.OwnerId,
              conditionValues: known({
                'ec2:InstanceType': instance.InstanceType,
                'ec2:AvailabilityZone': instance.Placement?.AvailabilityZone,
                'ec2:RootDeviceType': instance.RootDeviceType,
                'ec2:Vpc': vpcArn(instance.VpcId, reservation.OwnerId),
              }),
            };
          }
        }
        return undefined;
      }
      case 'volume': {
        const volume = (await client.send(new DescribeVolumesCommand({ VolumeIds: [id] }))).Volumes?.find((candidate) => candidate.VolumeId === id);
        return volume ? {
          tags: tagRecord(volume.Tags),
          conditionValues: known({
            'ec2:VolumeType': volume.VolumeType,
            'ec2:VolumeSize': volume.Size === undefined ? undefined : String(volume.Size),
            'ec2:AvailabilityZone': volume.AvailabilityZone,
            'ec2:Encrypted': volume.Encrypted === undefined ? undefined : String(volume.Encrypted),
          }),
        } : undefined;
      }
      case 'subnet': {
        const subnet = (await client.send(new DescribeSubnetsCommand({ SubnetIds: [id] }))).Subnets?.find((candidate) => candidate.SubnetId === id);
        return subnet ? {
          tags: tagRecord(subnet.Tags),
          owner: subnet.OwnerId,
          conditionValues: known({ 'ec2:Vpc': vpcArn(subnet.VpcId, subnet.OwnerId), 'ec2:AvailabilityZone': subnet.AvailabilityZone }),
        } : undefined;
      }
      case 'security-group': {
        const response = await client.send(new DescribeSecurityGroupsCommand({ GroupIds: [id] }));
        const group = response.SecurityGroups?.find((candidate) => candidate.GroupId === id);
        return group ? {
          tags: tagRecord(group.Tags),
          owner: group.OwnerId,
          conditionValues: known({ 'ec2:Vpc': vpcArn(group.VpcId, group.OwnerId) }),
        } : undefined;
      }
      case 'network-interface': {
        const response = await client.send(new DescribeNetworkInterfacesCommand({ NetworkInterfaceIds: [id] }));
        const networkInterface = response.NetworkInterfaces?.find((candidate) => candidate.NetworkInterfaceId === id);
        return networkInterface ? {
          tags: tagRecord(networkInterface.TagSet),
          owner: networkInterface.OwnerId,
          conditionValues: known({
            'ec2:Vpc': vpcArn(networkInterface.VpcId, networkInterface.OwnerId),
            'ec2:Subnet': networkInterface.SubnetId
              ? `arn:aws:ec2:${region}:${networkInterface.OwnerId ?? ''}:subnet/${networkInterface.SubnetId}` : undefined,
            'ec2:AvailabilityZone': networkInterface.AvailabilityZone,
          }),
        } : undefined;
      }
      case 'parameter':
        return this.parameter(region, id);
      default:
        throw new Error(`no lookup for resource type ${resourceType as string}`);
    }
  }

  /** An SSM parameter, by name, through moto's JSON protocol (GetParameter, ListTagsForResource). */
  private async parameter(region: string, name: string): Promise<Ec2ResourceFacts | undefined> {
    const found = await this.ssm(region, 'GetParameter', { Name: name });
    if (found.status !== 200) {
      if (/ParameterNotFound/.test(JSON.stringify(found.json))) {
        return undefined;
      }
      throw new Error(`SSM GetParameter ${name} in ${region} answered HTTP ${found.status}: ${JSON.stringify(found.json)}`);
    }
    const tags = await this.ssm(region, 'ListTagsForResource', { ResourceType: 'Parameter', ResourceId: name });
    const tagList = (tags.json as { TagList?: Array<{ Key?: string; Value?: string }> }).TagList ?? [];
    return { tags: tagRecord(tagList), owner: MOTO_ACCOUNT_ID };
  }

  private async ssm(region: string, operation: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const url = new URL(this.motoEndpoint);
    const data = Buffer.from(JSON.stringify(body), 'utf8');
    const answer = await httpRequest({
      host: url.hostname,
      port: url.port,
      method: 'POST',
      path: '/',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'content-length': data.length,
        'x-amz-target': `AmazonSSM.${operation}`,
        // moto routes by the credential scope and checks no signature.
        'authorization': `AWS4-HMAC-SHA256 Credential=${ACCESS_KEY_ID}/20260101/${region}/ssm/aws4_request, SignedHeaders=host, Signature=0`,
      },
    }, data);
    const text = answer.body.toString('utf8');
    return { status: answer.status, json: text ? JSON.parse(text) : {} };
  }
}
