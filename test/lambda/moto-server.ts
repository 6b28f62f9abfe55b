/**
 * Test harness: a real EC2 API emulator (moto_server) behind a small HTTP proxy that fills the gaps
 * between moto 5.2.1 and real EC2 that matter to the bake-image handlers.
 *
 * The handlers talk to the proxy (AWS_ENDPOINT_URL); tests assert against moto directly ({@link MotoHarness.ec2}, or
 * {@link MotoHarness.ec2In} for another region).
 *
 * Every SDK client uses the same endpoint, the proxy: the region of a request is only in its SigV4 signature
 * (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`), and moto keeps one backend per region by it. The proxy's own
 * side calls (the duplicate-name check, the snapshots of an image, DeleteSnapshot's in-use check, the lifecycle calls,
 * StopInstances' state check, the power-offs of validation instances, the resource lookups of {@link Ec2Proxy.lookup})
 * go straight to the backend of the region the request is signed for: they are neither counted nor authorized.
 * The proxy forwards the query protocol (EC2, CloudFormation: `Action` in the form body) and the JSON protocol
 * (SSM and others: `X-Amz-Target: AmazonSSM.PutParameter` and a JSON body) alike, and records both.
 *
 * The modules, one concern each: this file (the harness, and everything tests import), moto-process.ts (the
 * moto_server process), moto-handler-bundle.ts (loading the shipped handler bundle), moto-http.ts (HTTP, the AWS
 * protocols, EC2's XML), moto-ec2-proxy.ts (the proxy: records, authorizes and routes each request), moto-requests.ts
 * (what it records), moto-injection.ts (faults, lost answers, rewrites, gates), moto-ec2-images.ts (image and
 * snapshot calls), moto-image-lifecycle.ts (deprecation, deregistration protection, ImdsSupport),
 * moto-fast-snapshot-restores.ts (EBS fast snapshot restore), moto-ec2-instances.ts (instance
 * calls), moto-validation-runs.ts and moto-power-calls.ts (the user-data runner of validation instances),
 * moto-consistency.ts (eventual consistency), moto-cloudformation.ts (the handler's CloudFormation reads),
 * moto-access.ts (the authorizer hook and resource lookups).
 *
 * Gaps the proxy emulates (product code is never changed for them):
 * - moto enforces no IAM. {@link Ec2Proxy.setAuthorizer} gives the proxy an authorizer that decides every request
 *   (service from the credential scope, Action, parameters or JSON body, region), after its gate and before injected
 *   faults and emulation. A denied request never reaches moto and is answered as AWS answers it (EC2: HTTP 403
 *   `UnauthorizedOperation`; CloudFormation: HTTP 403 `AccessDenied` `ErrorResponse`; SSM and other JSON-protocol
 *   services: HTTP 400 `{"__type":"AccessDeniedException"}`); {@link Ec2Proxy.takeDenials} gives the reasons (the moto
 *   suite expects none after each test). {@link Ec2Proxy.lookup} gives an authorizer what a policy's conditions ask of
 *   existing resources (tags, owner, an image's snapshots, attribute condition keys; EC2 resources and SSM parameters),
 *   straight from moto. Off by default; kept across {@link Ec2Proxy.reset}.
 * - moto is immediately consistent; EC2 is eventually consistent ("Eventual consistency in the Amazon EC2 API",
 *   Amazon EC2 Developer Guide). {@link Ec2Proxy.setConsistency} (all 0, off, by default), counted in requests: a new
 *   image (CreateImage, CopyImage) is left out of the first N DescribeImages of its region that would include it
 *   (`InvalidAMIID.NotFound` when asked for by id alone); the snapshots of an image just deregistered answer
 *   `InvalidSnapshot.InUse` to their first N DeleteSnapshot calls, and DeregisterImage with DeleteAssociatedSnapshots
 *   leaves them (`returnCode` `client-error`); a new instance is left out of the first N DescribeInstances that would
 *   include it (`InvalidInstanceID.NotFound` by id alone); a validation instance reports `pending` to its first N
 *   DescribeInstances, whose `instance-state-name` filter the proxy then applies to that reported state (and its
 *   RunInstances answer says `pending`, as EC2's does). The settings are kept across {@link Ec2Proxy.reset}.
 * - CreateImage with a `snapshot` TagSpecification answers HTTP 500 in moto. The proxy strips it, forwards
 *   the rest and applies those tags to the new image's snapshots with CreateTags, like EC2.
 * - moto accepts a duplicate AMI name. The proxy answers `InvalidAMIName.Duplicate` like EC2 (names are unique per
 *   account and region). CreateImage and CopyImage requests are handled one at a time per region, so the check is atomic.
 * - moto's CopyImage (made in the backend of the region the request is signed for, the destination) ignores
 *   `TagSpecification.N`, `Encrypted`, `KmsKeyId` and `ClientToken`. The proxy strips the `image` and `snapshot` tag
 *   specifications, forwards the rest and applies those tags to the copy and its snapshots with CreateTags, like EC2.
 *   It records what the request asked ({@link Ec2Proxy.copyRequest}): moto's copies are never encrypted. A CopyImage
 *   repeated with the same ClientToken in the same region answers the first copy's id, as EC2's idempotency does (and
 *   `IdempotentParameterMismatch` when the other parameters differ).
 * - moto's RunInstances ignores `ClientToken` (every call launches). The proxy answers a RunInstances repeated with the
 *   same token and parameters in the same region with the first launch's answer (same reservation and instances, no
 *   new launch), and `IdempotentParameterMismatch` when the other parameters differ, like EC2.
 * - moto's RegisterImage ignores BlockDeviceMappings, so an image registered from an existing snapshot does
 *   not keep that snapshot in use. The proxy records the snapshots such images reference and answers
 *   DeleteSnapshot with `InvalidSnapshot.InUse` while one of them is still registered.
 * - moto's DeregisterImage ignores DeleteAssociatedSnapshots. The proxy deletes the image's snapshots after a
 *   successful DeregisterImage that asks for it and answers EC2's `deleteSnapshotResultSet` (`returnCode` per
 *   snapshot: `success`; `skipped` for one another registered image still uses; `client-error` for one EC2 still sees
 *   in use, see the consistency above).
 * - moto 5.2.1 has no image deprecation nor deregistration protection. The proxy keeps them
 *   ({@link Ec2Proxy.imageLifecycle}), answers Enable/DisableImageDeprecation and Enable/DisableImageDeregistrationProtection
 *   (these answer the new protection state, as EC2 does), and shows them in DescribeImages as EC2's `deprecationTime`
 *   (rounded to the minute) and `deregistrationProtection` (`disabled`, `enabled-without-cooldown`,
 *   `enabled-with-cooldown`, `disabled-until-<time>`). DeregisterImage of a protected image is refused
 *   (`InvalidParameterValue`), and so it is for 24 hours after protection enabled with cooldown was disabled; tests
 *   move the proxy's clock with {@link Ec2Proxy.advanceClock}.
 * - moto 5.2.1's ModifyImageAttribute ignores `ImdsSupport`. The proxy keeps it (only `v2.0` is accepted, as by EC2),
 *   and shows it in DescribeImages (`imdsSupport`, late while `changedAttributeStaleFor` is on) and in
 *   DescribeImageAttribute `imdsSupport`.
 * - moto 5.2.1 has no EBS fast snapshot restore. The proxy keeps a state per snapshot and Availability Zone
 *   ({@link Ec2Proxy.fastSnapshotRestores}) and answers Enable/Disable/DescribeFastSnapshotRestores
 *   (moto-fast-snapshot-restores.ts): a pair goes `enabling` -> `optimizing` -> `enabled` and `disabling` -> `disabled`,
 *   one step per DescribeFastSnapshotRestores that shows it (counted in requests), and a `disabled` pair is shown once
 *   more, then forgotten. Unknown snapshots (`InvalidSnapshot.NotFound`) and zones not of the region
 *   (`InvalidParameterValue`) are answered per pair in `unsuccessful`. DeleteSnapshot and DeregisterImage's
 *   DeleteAssociatedSnapshots make a deleted snapshot's pairs `disabled` (EBS User Guide). Assumptions: enabling a pair
 *   already on its way (and disabling one `disabling`) answers its current state; disabling a pair that is not enabled
 *   is unsuccessful with `IncorrectState`; the per-pair codes and messages.
 * - moto's StopInstances "stops" a terminated instance. The proxy answers `IncorrectInstanceState` like EC2.
 * - moto's images are `available` at once. Tests hold an image `pending` with {@link Ec2Proxy.holdPending} (asked for by id)
 *   or {@link Ec2Proxy.holdPendingByName} (looked up by name, as the handler finds its copies).
 * - Every moto AMI has exactly one snapshot (nothing to emulate; noted because real AMIs may have several).
 * - moto's instances run nothing, and its GetConsoleOutput answers a fixed sample text. A RunInstances whose UserData
 *   is the construct's image validation script (it contains the line {@link VALIDATION_MARKER}) runs that script on
 *   this machine for each new instance, as the instance would: `bash` in a fresh temporary directory (also its
 *   TMPDIR), `/dev/console` replaced by a pipe whose output the proxy keeps, and `shutdown`, `poweroff`, `halt` and
 *   `reboot` replaced by stand-ins that record their arguments, also when called by their absolute path (this
 *   machine is never shut down; a script that powers off otherwise, `systemctl poweroff` or `init 0`, is not run and is
 *   reported as a proxy error). A power-off now (`shutdown -h now`, `shutdown now`, `poweroff`, `halt`) never returns:
 *   the script and everything it started are killed, and the instance ends in moto as its
 *   InstanceInitiatedShutdownBehavior says (`terminate`: terminated; `stop`, EC2's default: stopped). A scheduled one
 *   (`shutdown -h +N`, `hh:mm`; `shutdown -c` cancels it) is carried out when the proxy's clock (real, or advanced with
 *   {@link Ec2Proxy.advanceClock}) passes it, also after the script exited. Reboots are only recorded.
 *   GetConsoleOutput with `Latest=true` answers what the script wrote so far (the last 64 KB; no `output` at all while
 *   it wrote nothing, like EC2); without it, what EC2 buffered at the instance's last state change: nothing while it
 *   runs since launch, everything once it stopped or terminated. TerminateInstances and StopInstances kill the script
 *   and everything it started; {@link Ec2Proxy.validationInstances}.
 * - moto never throttles, never fails an image and never loses an answer. Tests inject those faults:
 *   {@link Ec2Proxy.failNext} answers the next requests of an Action with an EC2 error (XML body and HTTP status
 *   as EC2 sends them) without forwarding them; {@link Ec2Proxy.loseResponses} forwards a request, lets moto
 *   carry it out, and then answers an error or resets the connection instead of moto's answer;
 *   {@link Ec2Proxy.failImage} (by id) and {@link Ec2Proxy.failImageByName} (by name) report an image as `failed` with a StateReason.
 * - CloudFormation: the handler's DescribeStacks and DescribeStackResource are answered from {@link Ec2Proxy.setStack}.
 *
 * Not emulated: IAM itself (the authorizer decides), pagination of a DescribeInstances whose state filter the proxy
 * applies, the time windows of EC2's consistency (they are counted in requests), reboots of validation instances.
 * Not confirmed by AWS's documentation (best guesses): the error code of a refused DeregisterImage
 * (`InvalidParameterValue`) and the time format after `disabled-until-`.
 *
 * The proxy records, per request, when it arrived and the SDK's retry headers (`amz-sdk-invocation-id`, the same for
 * every attempt of one SDK call, and `amz-sdk-request: attempt=N; max=M`), so tests can tell SDK retries from calls.
 * {@link MotoHarness.leftovers} lists what a scenario left behind in moto.
 */
import { DescribeImagesCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, type EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { Ec2Proxy } from './moto-ec2-proxy';
import { type BakeImageHandler, checkHandlerBundle, loadHandlerBundle, restoreEnvironment, type SavedEnvironment, saveEnvironment } from './moto-handler-bundle';
import { ec2ClientFor, MOTO_ACCOUNT_ID, MOTO_STACK_ID, REGION, RegionalEc2Clients, STACK_ID_TAG } from './moto-http';
import { MotoServer } from './moto-process';

export type { Authorization, AuthorizationRequest, Authorizer, Ec2Lookup, Ec2ResourceFacts, Ec2ResourceType } from './moto-access';
export { MotoEc2Lookup } from './moto-access';
export type { ConsistencyOptions } from './moto-consistency';
export { type CopyRequest, stripTagSpecifications } from './moto-ec2-images';
export { Ec2Proxy } from './moto-ec2-proxy';
export { type BakeImageHandler, HANDLER_BUNDLE } from './moto-handler-bundle';
export { ec2ClientFor, freePort, MOTO_ACCOUNT_ID, REGION } from './moto-http';
export { DEREGISTRATION_PROTECTION_COOLDOWN_MS, type ImageLifecycle } from './moto-image-lifecycle';
export {
  describeImagesById,
  describeImagesByName,
  EC2_FAULTS,
  type Ec2Fault,
  type LostResponse,
  type RequestMatcher,
} from './moto-injection';
export { parsePowerCall, type PowerRequest } from './moto-power-calls';
export { MotoServer } from './moto-process';
export type { ProxiedRequest } from './moto-requests';
export { VALIDATION_MARKER, type ValidationInstance } from './moto-validation-runs';

/** moto_server, the proxy in front of it and the shipped handler bundle, for one test file. */
export class MotoHarness {
  /** Starts moto_server and the proxy. Throws (never skips) when moto_server is missing. */
  static async start(): Promise<MotoHarness> {
    const moto = await MotoServer.start();
    try {
      const proxy = await Ec2Proxy.start(moto.endpoint);
      return new MotoHarness(moto, proxy);
    } catch (error) {
      await moto.stop();
      throw error;
    }
  }

  /** Client straight to moto: what the tests assert with. */
  readonly ec2: EC2Client;
  /** Client through the proxy: for setup that needs the emulated EC2 behaviour. */
  readonly ec2ViaProxy: EC2Client;
  private savedEnv: SavedEnvironment | undefined;
  private builderImageId: string | undefined;
  private readonly regionalClients: RegionalEc2Clients;

  private constructor(readonly moto: MotoServer, readonly proxy: Ec2Proxy) {
    this.ec2 = ec2ClientFor(moto.endpoint);
    this.ec2ViaProxy = ec2ClientFor(proxy.endpoint);
    this.regionalClients = new RegionalEc2Clients(moto.endpoint);
  }

  /**
   * Points the AWS SDK at the proxy through the environment and loads the shipped bundle, whose EC2Client is
   * created at module load. Fails when the bundle is missing or older than its sources.
   *
   * Each call inside `jest.isolateModules` gives a fresh module, and so a fresh EC2Client (with a full retry quota).
   */
  loadHandler(): BakeImageHandler {
    checkHandlerBundle();
    this.savedEnv ??= saveEnvironment();
    return loadHandlerBundle(this.proxy.endpoint);
  }

  /** Client straight to moto's backend of this region (cached): what the tests assert with about another region. */
  ec2In(region: string): EC2Client {
    return region === REGION ? this.ec2 : this.regionalClients.in(region);
  }

  /** Empties moto and the proxy's counters and emulated state. */
  async reset(): Promise<void> {
    await this.moto.reset();
    this.proxy.reset();
  }

  /**
   * Launches a builder instance in moto from one of its built-in Amazon Linux AMIs, tagged as the construct tags its
   * builders: with the stack id the handler's policy names (MOTO_STACK_ID unless told otherwise).
   */
  async launchBuilder(stackId: string = MOTO_STACK_ID): Promise<string> {
    if (!this.builderImageId) {
      const images = await this.ec2.send(new DescribeImagesCommand({ Owners: ['amazon'], Filters: [{ Name: 'name', Values: ['amzn*'] }] }));
      const image = images.Images?.find((candidate) => candidate.Name?.startsWith('amzn')) ?? images.Images?.[0];
      if (!image?.ImageId) {
        throw new Error('moto offers no Amazon-owned AMI to launch a builder from');
      }
      this.builderImageId = image.ImageId;
    }
    const response = await this.ec2.send(new RunInstancesCommand({
      ImageId: this.builderImageId,
      MinCount: 1,
      MaxCount: 1,
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: STACK_ID_TAG, Value: stackId }] }],
    }));
    const instanceId = response.Instances?.[0]?.InstanceId;
    if (!instanceId) {
      throw new Error('RunInstances returned no instance');
    }
    return instanceId;
  }

  /**
   * What this account still has in moto in these regions (straight from moto, not counted): its registered images,
   * its snapshots, and its instances that are not terminated (the builders the tests launch included), so that
   * scenario tests can assert that nothing leaked. moto's own public images and their snapshots are not listed.
   */
  async leftovers(regions: string[]): Promise<{ images: string[]; snapshots: string[]; instances: string[] }> {
    const found = { images: [] as string[], snapshots: [] as string[], instances: [] as string[] };
    for (const region of [...new Set(regions)]) {
      const client = this.ec2In(region);
      const images = await client.send(new DescribeImagesCommand({ Owners: ['self'] }));
      found.images.push(...(images.Images ?? [])
        .filter((image) => image.OwnerId === MOTO_ACCOUNT_ID && image.State !== 'deregistered')
        .map((image) => image.ImageId ?? ''));
      // moto's OwnerIds=self also lists the snapshots of its own public images: the owner tells them apart.
      const snapshots = await client.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'] }));
      found.snapshots.push(...(snapshots.Snapshots ?? [])
        .filter((snapshot) => snapshot.OwnerId === MOTO_ACCOUNT_ID)
        .map((snapshot) => snapshot.SnapshotId ?? ''));
      const reservations = await client.send(new DescribeInstancesCommand({
        Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'] }],
      }));
      found.instances.push(...(reservations.Reservations ?? [])
        .flatMap((reservation) => reservation.Instances ?? [])
        .map((instance) => instance.InstanceId ?? ''));
    }
    return found;
  }

  async stop(): Promise<void> {
    if (this.savedEnv) {
      restoreEnvironment(this.savedEnv);
    }
    this.ec2.destroy();
    this.ec2ViaProxy.destroy();
    this.regionalClients.destroy();
    await this.proxy.stop();
    await this.moto.stop();
  }
}
