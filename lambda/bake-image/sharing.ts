import type { Sharing } from '../../src/private/contract';

/** One launch permission, as EC2's LaunchPermission shape (one of its fields set). */
export interface LaunchPermission {
  readonly UserId?: string;
  readonly Group?: 'all';
  readonly OrganizationArn?: string;
  readonly OrganizationalUnitArn?: string;
}

/** The launch permissions to add and to remove to go from what an image has to what is asked. */
export interface LaunchPermissionChange {
  readonly add: LaunchPermission[];
  readonly remove: LaunchPermission[];
}

function keyOf(permission: LaunchPermission): string {
  if (permission.UserId) {
    return `account:${permission.UserId}`;
  }
  if (permission.OrganizationArn) {
    return `organization:${permission.OrganizationArn}`;
  }
  if (permission.OrganizationalUnitArn) {
    return `ou:${permission.OrganizationalUnitArn}`;
  }
  return `group:${permission.Group ?? ''}`;
}

/** The launch permissions a sharing asks for. */
export function desiredPermissions(sharing: Sharing): LaunchPermission[] {
  return [
    ...sharing.accounts.map((UserId) => ({ UserId })),
    ...sharing.organizationArns.map((OrganizationArn) => ({ OrganizationArn })),
    ...sharing.organizationalUnitArns.map((OrganizationalUnitArn) => ({ OrganizationalUnitArn })),
  ];
}

/**
 * What to add and remove so that the image is launchable by exactly the accounts, organizations and
 * units asked for. Anything else is removed, a public launch permission (Group 'all') included: a
 * baked image is never public.
 */
export function launchPermissionChange(current: LaunchPermission[], sharing: Sharing): LaunchPermissionChange {
  const desired = desiredPermissions(sharing);
  const have = new Set(current.map(keyOf));
  const want = new Set(desired.map(keyOf));
  return {
    add: desired.filter((permission) => !have.has(keyOf(permission))),
    remove: current.filter((permission) => !want.has(keyOf(permission))),
  };
}
