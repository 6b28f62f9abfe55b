/**
 * Sharing (launch permissions) through the shipped handler bundle against moto_server: granted when the
 * image is available, kept exactly as listed by an Update that rebakes nothing, never public.
 */
import { DescribeImageAttributeCommand, DescribeImagesCommand, DescribeSnapshotsCommand, type LaunchPermission, ModifyImageAttributeCommand } from '@aws-sdk/client-ec2';
import { customResourceEvent, imageProps, runToCompletion, useMotoSuite } from './moto-suite';
import { Prop } from '../../src/private/contract';

jest.setTimeout(60_000);

const ORG = 'arn:aws:organizations::111122223333:organization/o-abcdef1234';
const OU = 'arn:aws:organizations::111122223333:ou/o-abcdef1234/ou-ab12-cdef3456';

type Props = Record<string, unknown>;

const suite = useMotoSuite();

function props(instanceId: string, sharing: { accounts?: string[]; orgs?: string[]; ous?: string[] } = {}): Props {
  return imageProps(instanceId, 'shared', {
    [Prop.SHARE_ACCOUNTS]: sharing.accounts ?? [],
    [Prop.SHARE_ORGANIZATIONS]: sharing.orgs ?? [],
    [Prop.SHARE_ORGANIZATIONAL_UNITS]: sharing.ous ?? [],
  });
}

function event(type: 'Create' | 'Update', resourceProperties: Props, physicalId?: string, oldProps?: Props) {
  return customResourceEvent(type, 'SharedImage', resourceProperties, { physicalId, oldProps });
}

const complete = (request: ReturnType<typeof event>) => runToCompletion(suite.handler(), request);

async function launchPermissions(imageId: string): Promise<LaunchPermission[]> {
  const response = await suite.harness().ec2.send(new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }));
  const key = (p: LaunchPermission) => JSON.stringify(p);
  return (response.LaunchPermissions ?? []).sort((a, b) => key(a).localeCompare(key(b)));
}

describe('sharing through moto', () => {
  test('shares the available image with the listed accounts, organizations and units', async () => {
    const imageId = await complete(event('Create', props(await suite.harness().launchBuilder(), { accounts: ['444455556666'], orgs: [ORG], ous: [OU] })));
    const permissions = await launchPermissions(imageId);
    expect(permissions).toHaveLength(3);
    expect(permissions).toEqual(expect.arrayContaining([
      { OrganizationArn: ORG },
      { OrganizationalUnitArn: OU },
      { UserId: '444455556666' },
    ]));
  });

  test('makes no sharing call at all for an image shared with nobody', async () => {
    suite.harness().proxy.clearRequests();
    const imageId = await complete(event('Create', props(await suite.harness().launchBuilder())));
    expect(suite.harness().proxy.count('DescribeImageAttribute')).toBe(0);
    expect(suite.harness().proxy.count('ModifyImageAttribute')).toBe(0);
    expect(await launchPermissions(imageId)).toEqual([]);
  });

  test('an Update that only changes the list keeps the image and leaves exactly the new list', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const before = props(instanceId, { accounts: ['444455556666', '777788889999'], orgs: [ORG] });
    const imageId = await complete(event('Create', before));

    const after = props(instanceId, { accounts: ['777788889999'] });
    suite.harness().proxy.clearRequests();
    const updatedId = await complete(event('Update', after, imageId, before));

    expect(updatedId).toBe(imageId);
    expect(suite.harness().proxy.count('CreateImage')).toBe(0);
    expect(await launchPermissions(imageId)).toEqual([{ UserId: '777788889999' }]);
  });

  test('an Update that stops sharing removes every launch permission, a public one included', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const before = props(instanceId, { accounts: ['444455556666'] });
    const imageId = await complete(event('Create', before));
    await suite.harness().ec2.send(new ModifyImageAttributeCommand({ ImageId: imageId, LaunchPermission: { Add: [{ Group: 'all' }] } }));

    await complete(event('Update', props(instanceId), imageId, before));

    expect(await launchPermissions(imageId)).toEqual([]);
  });

  test('an image already shared as asked gets no ModifyImageAttribute call', async () => {
    const instanceId = await suite.harness().launchBuilder();
    const shared = props(instanceId, { accounts: ['444455556666'] });
    const imageId = await complete(event('Create', shared));
    suite.harness().proxy.clearRequests();

    await complete(event('Update', { ...shared, [Prop.BUILDER_AFTER_BAKE]: 'terminate' }, imageId, shared));

    expect(suite.harness().proxy.count('DescribeImageAttribute')).toBe(1);
    expect(suite.harness().proxy.count('ModifyImageAttribute')).toBe(0);
  });
});

describe('manifest tags through moto', () => {
  test('records the base image, config sets, init fingerprint, version and bake time on the image and its snapshot', async () => {
    const manifest = {
      [Prop.BASE_IMAGE_ID]: 'ami-0aaaaaaaaaaaaaaaa',
      [Prop.CONFIG_SETS]: 'packages app',
      [Prop.INIT_FINGERPRINT]: '0123456789abcdef',
      [Prop.LIBRARY_VERSION]: '1.2.3',
    };
    const imageId = await complete(event('Create', { ...props(await suite.harness().launchBuilder()), ...manifest }));

    const image = (await suite.harness().ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }))).Images![0];
    const snapshotId = image.BlockDeviceMappings![0].Ebs!.SnapshotId!;
    const snapshot = (await suite.harness().ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }))).Snapshots![0];
    for (const tags of [image.Tags, snapshot.Tags]) {
      expect(Object.fromEntries((tags ?? []).map((t) => [t.Key, t.Value]))).toMatchObject({
        'cdk-baked-image:base-image': 'ami-0aaaaaaaaaaaaaaaa',
        'cdk-baked-image:config-sets': 'packages app',
        'cdk-baked-image:init-fingerprint': '0123456789abcdef',
        'cdk-baked-image:version': '1.2.3',
        'cdk-baked-image:baked-at': expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      });
    }
  });
});
