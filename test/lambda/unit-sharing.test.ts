import { desiredPermissions, launchPermissionChange } from '../../lambda/bake-image/sharing';
import { createEvent, isCompleteEvent, setUpHandlerTests } from '../support/fixtures';

const NOBODY = { accounts: [], organizationArns: [], organizationalUnitArns: [] };
const ORG = 'arn:aws:organizations::123456789012:organization/o-abcdef1234';
const OU = 'arn:aws:organizations::123456789012:ou/o-abcdef1234/ou-ab12-cdef3456';

describe('launch permissions', () => {
  test('asks for one permission per account, organization and unit', () => {
    expect(desiredPermissions({ accounts: ['111122223333'], organizationArns: [ORG], organizationalUnitArns: [OU] })).toEqual([
      { UserId: '111122223333' },
      { OrganizationArn: ORG },
      { OrganizationalUnitArn: OU },
    ]);
  });

  test('adds only what the image lacks', () => {
    const change = launchPermissionChange([{ UserId: '111122223333' }], { ...NOBODY, accounts: ['111122223333', '444455556666'] });
    expect(change).toEqual({ add: [{ UserId: '444455556666' }], remove: [] });
  });

  test('removes what is no longer asked for when the list shrinks', () => {
    const change = launchPermissionChange([{ UserId: '111122223333' }, { OrganizationArn: ORG }], { ...NOBODY, accounts: ['111122223333'] });
    expect(change).toEqual({ add: [], remove: [{ OrganizationArn: ORG }] });
  });

  test('removes a public launch permission: a baked image is never public', () => {
    expect(launchPermissionChange([{ Group: 'all' }], NOBODY)).toEqual({ add: [], remove: [{ Group: 'all' }] });
  });

  test('changes nothing when the image is shared as asked', () => {
    expect(launchPermissionChange([{ OrganizationalUnitArn: OU }], { ...NOBODY, organizationalUnitArns: [OU] })).toEqual({ add: [], remove: [] });
  });
});

describe('isComplete sharing errors', () => {
  const { mockClient } = jest.requireActual('aws-sdk-client-mock') as typeof import('aws-sdk-client-mock');
  const sdk = jest.requireActual('@aws-sdk/client-ec2') as typeof import('@aws-sdk/client-ec2');
  const ec2 = mockClient(sdk.EC2Client);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { isComplete } = require('../../lambda/bake-image') as typeof import('../../lambda/bake-image');

  setUpHandlerTests(ec2);

  test('names the image and the EC2 error when launch permissions cannot be changed', async () => {
    ec2.on(sdk.DescribeImagesCommand).resolves({ Images: [{ ImageId: 'ami-0123456789abcdef0', State: 'available', Name: 'web-x' }] });
    ec2.on(sdk.StopInstancesCommand).resolves({});
    ec2.on(sdk.DescribeImageAttributeCommand).resolves({ LaunchPermissions: [] });
    ec2.on(sdk.ModifyImageAttributeCommand).rejects(Object.assign(new Error('Images encrypted with aws/ebs cannot be shared'), { name: 'InvalidParameter' }));

    const failure = isComplete(isCompleteEvent(createEvent({ sharing: { ...NOBODY, accounts: ['444455556666'] } }), 'ami-0123456789abcdef0'));

    await expect(failure).rejects.toThrow('Could not share image ami-0123456789abcdef0 (launch permissions): InvalidParameter: Images encrypted with aws/ebs cannot be shared');
    // The provider framework would append a stack trace to the reason: there is none.
    await expect(failure).rejects.toMatchObject({ name: 'Error', stack: '' });
    expect(ec2.commandCalls(sdk.ModifyImageAttributeCommand)[0].args[0].input).toEqual({
      ImageId: 'ami-0123456789abcdef0',
      LaunchPermission: { Add: [{ UserId: '444455556666' }] },
    });
  });
});
