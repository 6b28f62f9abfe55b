/**
 * Stack updates in CloudFormation's order, from templates synthesized by the real construct: the handler role's policy
 * is replaced first, then the custom resources hear of the update, then the cleanup Deletes run with the OLD properties
 * under the NEW policy (see emulated-stack.ts). Every handler request is authorized by the IAM simulator against the
 * policy in force; after each scenario, nothing may be left in any region but what the stack still holds.
 */
import { Duration } from 'aws-cdk-lib';
import { EmulatedStack } from './emulated-stack';
import { useMotoSuite } from './moto-suite';
import { imagesTemplate as template } from './stack-template';
import { ImageValidation } from '../../src';

jest.setTimeout(120_000);

const HOME = 'us-east-1';
const WEST = 'us-west-2';
const EUROPE = 'eu-west-1';
const REGIONS = [HOME, WEST, EUROPE];

const suite = useMotoSuite();

const VALIDATION = ImageValidation.fromCommands(['test -f /etc/os-release'], { timeout: Duration.minutes(5) });

/** The images and snapshots left in every region, which must be exactly those of the images the stack holds now. */
async function expectNothingLeakedBeyond(stack: EmulatedStack): Promise<void> {
  const leftovers = await suite.harness().leftovers(REGIONS);
  const held = stack.imageLogicalIds().flatMap((logicalId) => {
    const data = stack.attributes(logicalId);
    return Object.entries(data).filter(([key]) => key === 'ImageId' || key.startsWith('ImageId.')).map(([, imageId]) => imageId);
  });
  expect(leftovers.images.sort()).toEqual([...new Set(held)].sort());
  expect(leftovers.snapshots).toHaveLength(held.length);
  expect(stack.skippedDeletes).toEqual([]);
}

async function expectEverythingDeleted(stack: EmulatedStack): Promise<void> {
  expect(await stack.delete()).toEqual([]);
  const leftovers = await suite.harness().leftovers(REGIONS);
  expect(leftovers.images).toEqual([]);
  expect(leftovers.snapshots).toEqual([]);
}

describe('stack updates in CloudFormation\'s order, under the policy in force', () => {
  test('removing one of two images deletes it with its snapshots under the remaining image\'s policy', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: {}, Worker: {} }));
    const worker = stack.imageId(stack.imageLogicalIds().find((id) => id.startsWith('Worker'))!);

    await stack.update(template({ Web: {} }));

    expect(stack.events.filter((event) => event.phase === 'cleanup').map((event) => [event.requestType, event.physicalId, event.outcome]))
      .toEqual([['Delete', worker, 'SUCCESS']]);
    await expectNothingLeakedBeyond(stack);
    await expectEverythingDeleted(stack);
  });

  test('dropping a copy region deletes that region\'s copy under the policy that no longer lists the region', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: { copies: [{ region: WEST }, { region: EUROPE }] } }));

    await stack.update(template({ Web: { copies: [{ region: WEST }] } }));

    const leftovers = await suite.harness().leftovers([EUROPE]);
    expect(leftovers).toEqual(expect.objectContaining({ images: [], snapshots: [] }));
    expect(stack.skippedDeletes).toEqual([]);
    await expectEverythingDeleted(stack);
  });

  test('a rebake that also drops a copy region deletes the old image and its copies in both regions', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: { copies: [{ region: WEST }, { region: EUROPE }] } }));

    await stack.update(template({ Web: { copies: [{ region: WEST }], rebakeTrigger: '2' } }));

    expect((await suite.harness().leftovers([EUROPE])).images).toEqual([]);
    await expectNothingLeakedBeyond(stack);
    await expectEverythingDeleted(stack);
  });

  test('a rebake that drops validation deletes the old image, whose Delete still looks for test instances', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: { validation: VALIDATION } }));

    await stack.update(template({ Web: { rebakeTrigger: '2' } }));

    await expectNothingLeakedBeyond(stack);
    await expectEverythingDeleted(stack);
  });

  test('a rebake that drops keepSupersededImages keeps the old image as its template promised, and the next rebake deletes it', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: { keepSupersededImages: 2 } }));
    const logicalId = stack.imageLogicalIds()[0];
    const first = stack.imageId(logicalId);

    await stack.update(template({ Web: { rebakeTrigger: '2' } }));
    expect(stack.events.filter((event) => event.phase === 'cleanup').map((event) => [event.physicalId, event.outcome])).toEqual([[first, 'SUCCESS']]);
    expect((await suite.harness().leftovers([HOME])).images.sort()).toEqual([first, stack.imageId(logicalId)].sort());

    // The next rebake's Delete (keepSupersededImages 0 now) deletes every superseded image.
    await stack.update(template({ Web: { rebakeTrigger: '3' } }));
    await expectNothingLeakedBeyond(stack);
    await expectEverythingDeleted(stack);
  });

  test('deleting the stack deletes the superseded images kept under an earlier keepSupersededImages', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: { keepSupersededImages: 2 } }));
    await stack.update(template({ Web: { rebakeTrigger: '2' } }));
    expect((await suite.harness().leftovers([HOME])).images).toHaveLength(2);

    await expectEverythingDeleted(stack);
  });

  test('a failed update rolls back to the old image and deletes the new one', async () => {
    const stack = new EmulatedStack(suite.harness(), suite.handler());
    await stack.create(template({ Web: { copies: [{ region: WEST }] } }));
    const logicalId = stack.imageLogicalIds()[0];
    const before = stack.imageId(logicalId);

    await stack.update(template({ Web: { copies: [{ region: WEST }, { region: EUROPE }], rebakeTrigger: '2', validation: VALIDATION } }), { fail: true });

    expect(stack.imageId(logicalId)).toBe(before);
    expect(stack.events.filter((event) => event.phase === 'rollback').map((event) => [event.requestType, event.outcome]))
      .toEqual([['Update', 'SUCCESS']]);
    expect(stack.events.filter((event) => event.phase === 'rollback cleanup').map((event) => [event.requestType, event.outcome]))
      .toEqual([['Delete', 'SUCCESS']]);
    await expectNothingLeakedBeyond(stack);
    await expectEverythingDeleted(stack);
  });
});
