/**
 * The failure messages of the bake-image handlers once the AWS SDK has given up on an EC2 call (retries exhausted),
 * for every call the handlers make. The retries themselves run against moto in moto-faults.test.ts; here the EC2
 * client is mocked (aws-sdk-client-mock, which bypasses the SDK's retry middleware) and answers with the error the
 * SDK throws after its last attempt: the service error, with `$metadata.attempts` set.
 */
import {
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  EC2ServiceException,
  type Image,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { isComplete, onEvent } from '../../lambda/bake-image';
import { BuilderAfterBake } from '../../src/builder-after-bake';
import {
  BUILDER_ID,
  createEvent,
  deleteEvent,
  IMAGE_ID,
  imageNameFor,
  isCompleteEvent,
  LOGICAL_ID,
  ownershipTags,
  setUpHandlerTests,
} from '../support/fixtures';

const ec2 = mockClient(EC2Client);

const SNAPSHOT_ID = 'snap-0123456789abcdef0';
const NAME = imageNameFor();

/** The error the SDK throws when it gives up: the last answer's service error, with the attempts it made. */
function exhausted(code: string, message: string, attempts = 6, httpStatusCode = 503): EC2ServiceException {
  return new EC2ServiceException({
    name: code,
    $fault: httpStatusCode >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode, attempts, totalRetryDelay: 9_876 },
    message,
  });
}

const ownImage: Image = {
  ImageId: IMAGE_ID,
  Name: NAME,
  State: 'available',
  BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: SNAPSHOT_ID } }],
  Tags: ownershipTags(),
};

interface FailingCall {
  /** Lets every call before the failing one succeed, and makes the failing one throw `error`. */
  readonly arrange: (error: Error) => void;
  readonly act: () => Promise<unknown>;
  /** The failure message for an error whose own description (code, message, attempts) is `detail`. */
  readonly message: (detail: string) => string;
  /**
   * Describe calls annotate the SDK error itself (so its name and $metadata survive for the handlers' own checks);
   * the others wrap it. Either way, the provider framework gets a plain error with the message alone.
   */
  readonly keepsError: boolean;
}

const CALLS: Record<string, FailingCall> = {
  'DescribeImages by name (Create)': {
    arrange: (error) => ec2.on(DescribeImagesCommand).rejects(error),
    act: () => onEvent(createEvent()),
    message: (detail) => `DescribeImages for the image named ${NAME} failed: ${detail}`,
    keepsError: true,
  },
  'CreateImage': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [] });
      ec2.on(CreateImageCommand).rejects(error);
    },
    act: () => onEvent(createEvent()),
    message: (detail) => `CreateImage for builder ${BUILDER_ID} (image name ${NAME}) failed: ${detail}.`,
    keepsError: false,
  },
  'DescribeImages by id (isComplete)': {
    arrange: (error) => ec2.on(DescribeImagesCommand).rejects(error),
    act: () => isComplete(isCompleteEvent(createEvent())),
    message: (detail) => `DescribeImages for image ${IMAGE_ID} failed: ${detail}`,
    keepsError: true,
  },
  'StopInstances': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage] });
      ec2.on(StopInstancesCommand).rejects(error);
    },
    act: () => isComplete(isCompleteEvent(createEvent({ builderAfterBake: BuilderAfterBake.STOP }))),
    message: (detail) => `Could not stop builder ${BUILDER_ID}: ${detail}`,
    keepsError: false,
  },
  'TerminateInstances': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage] });
      ec2.on(TerminateInstancesCommand).rejects(error);
    },
    act: () => isComplete(isCompleteEvent(createEvent({ builderAfterBake: BuilderAfterBake.TERMINATE }))),
    message: (detail) => `Could not terminate builder ${BUILDER_ID}: ${detail}`,
    keepsError: false,
  },
  'DescribeImages of the resource\'s images (Delete)': {
    arrange: (error) => ec2.on(DescribeImagesCommand).rejects(error),
    act: () => onEvent(deleteEvent()),
    message: (detail) => `DescribeImages for the images of ${LOGICAL_ID} failed: ${detail}`,
    keepsError: true,
  },
  'DescribeImages by id (Delete)': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [] });
      ec2.on(DescribeImagesCommand, { ImageIds: [IMAGE_ID] }).rejects(error);
    },
    act: () => onEvent(deleteEvent()),
    message: (detail) => `DescribeImages for image ${IMAGE_ID} failed: ${detail}`,
    keepsError: true,
  },
  'DescribeSnapshots': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage] });
      ec2.on(DescribeSnapshotsCommand).rejects(error);
    },
    act: () => onEvent(deleteEvent()),
    message: (detail) => `DescribeSnapshots for the snapshots of image ${IMAGE_ID} (${NAME}) failed: ${detail}`,
    keepsError: true,
  },
  'DeregisterImage': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage] });
      ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
      ec2.on(DeregisterImageCommand).rejects(error);
    },
    act: () => onEvent(deleteEvent()),
    message: (detail) => `Could not deregister image ${IMAGE_ID}: ${detail}`,
    keepsError: false,
  },
  'DeleteSnapshot': {
    arrange: (error) => {
      ec2.on(DescribeImagesCommand).resolves({ Images: [ownImage] });
      ec2.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
      ec2.on(DeregisterImageCommand).resolves({});
      ec2.on(DeleteSnapshotCommand).rejects(error);
    },
    act: () => onEvent(deleteEvent()),
    message: (detail) => `Could not delete snapshot ${SNAPSHOT_ID} of image ${IMAGE_ID}: ${detail}`,
    keepsError: false,
  },
};

async function failureOf(call: FailingCall, error: Error): Promise<unknown> {
  call.arrange(error);
  return call.act().then(
    (result) => {
      throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
    },
    (failure: unknown) => failure,
  );
}

const handlerConsole = setUpHandlerTests(ec2);

describe('after the SDK gave up on a call', () => {
  test.each(Object.entries(CALLS))('%s: the message names the call, its ids, the error code and the attempts', async (_label, call) => {
    const error = exhausted('RequestLimitExceeded', 'Request limit exceeded.');

    const failure = await failureOf(call, error);

    const message = call.message('RequestLimitExceeded: Request limit exceeded. (after 6 attempts)');
    expect(message).toContain('RequestLimitExceeded');
    // What the provider framework gets: a plain error with the message alone, and no stack for it to append.
    expect(failure).toBeInstanceOf(Error);
    expect(failure).not.toBe(error);
    expect(failure).toMatchObject({ name: 'Error', message, stack: '' });
    expect(failure).not.toHaveProperty('$metadata');
    if (call.keepsError) {
      // The SDK's error itself carries the message: its code and metadata were there for the handlers' own checks.
      expect(error.message).toBe(message);
      expect(error).toMatchObject({ name: 'RequestLimitExceeded', $metadata: { attempts: 6 } });
    } else {
      expect(error.message).toBe('Request limit exceeded.');
    }
    // The whole error went to the log first, once.
    expect(handlerConsole.errorLogs()).toEqual([expect.objectContaining({ message: 'request failed', error: message, stack: expect.any(String) })]);
  });

  test.each([
    ['InternalError', 'An internal error has occurred.', 500],
    ['Unavailable', 'The server is overloaded and can\'t handle the request.', 503],
  ])('a 5xx %s is reported with its code, message and attempts', async (code, message, status) => {
    const failure = await failureOf(CALLS.DeleteSnapshot, exhausted(code, message, 6, status));

    expect((failure as Error).message).toBe(CALLS.DeleteSnapshot.message(`${code}: ${message} (after 6 attempts)`));
  });
});

describe('a call that failed without retries', () => {
  test('says nothing about attempts when the SDK made only one', async () => {
    const failure = await failureOf(CALLS.DescribeSnapshots, exhausted('UnauthorizedOperation', 'You are not authorized to perform this operation.', 1, 403));

    expect((failure as Error).message).toBe(
      `DescribeSnapshots for the snapshots of image ${IMAGE_ID} (${NAME}) failed: UnauthorizedOperation: You are not authorized to perform this operation.`,
    );
  });

  test('reports an error without a code or metadata by its message', async () => {
    const failure = await failureOf(CALLS['DescribeImages by id (isComplete)'], new Error('socket hang up'));

    expect((failure as Error).message).toBe(`DescribeImages for image ${IMAGE_ID} failed: socket hang up`);
  });
});
