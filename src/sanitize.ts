import * as ec2 from 'aws-cdk-lib/aws-ec2';

/**
 * The default clean-up before an image is captured, for Linux builders, in the order it runs.
 *
 * It removes what must not be baked into every instance launched from the image, and keeps what
 * the builder still needs: cfn-init's own log (printed to the console after the signal, and the
 * record of the bake) and the signal itself, which runs after these commands.
 */
const LINUX_DEFAULTS: string[] = [
  // cloud-init state, logs and seed: every instance launched from the image runs as a new instance.
  'if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs --seed; else rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/data; fi',
  // SSH host keys: regenerated at first boot, so instances do not share them.
  'rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub',
  // Authorized keys of root and the default users: instances get the key pair they are launched with.
  'find /root /home -maxdepth 3 -path "*/.ssh/authorized_keys" -type f -delete 2>/dev/null; true',
  // Shell history.
  'find /root /home -maxdepth 2 -name ".*_history" -type f -delete 2>/dev/null; true',
  // cfn-init's cached metadata (it holds every file and command of the bake) and its credentials cache.
  'rm -f /var/lib/cfn-init/data/metadata.json /var/lib/cfn-init/data/*.cred',
  // The machine id: systemd makes a new one at first boot.
  'if [ -f /etc/machine-id ]; then truncate -s 0 /etc/machine-id; fi',
  // Temporary files, package caches, and logs other than cfn-init's.
  'find /tmp /var/tmp -mindepth 1 -delete 2>/dev/null; (dnf clean all || yum clean all) >/dev/null 2>&1; true',
  'find /var/log -type f ! -name "cfn-init*" \\( -name "*.log" -o -name "*.gz" -o -name "*-[0-9]*" \\) -delete 2>/dev/null; '
    + 'journalctl --rotate >/dev/null 2>&1 && journalctl --vacuum-time=1s >/dev/null 2>&1; true',
];

/**
 * What the builder removes after your config sets succeeded and before the image is captured.
 *
 * The commands run as the last cfn-init config set on the builder, in order, before it signals
 * CloudFormation; a failing command fails the bake.
 */
export class Sanitize {
  /**
   * The default clean-up for Linux: cloud-init state, SSH host keys, authorized keys, shell history,
   * cfn-init's cached metadata, the machine id, temporary files, package caches and logs (cfn-init's
   * own log is kept). Windows builders get no default clean-up: run Sysprep/EC2Launch yourself.
   */
  public static defaults(): Sanitize {
    return new Sanitize(LINUX_DEFAULTS, [], true);
  }

  /** Capture the builder as it is. */
  public static none(): Sanitize {
    return new Sanitize([], [], false);
  }

  /**
   * Run exactly these shell commands (and not the defaults).
   *
   * @param commands shell commands, run in order
   */
  public static commands(...commands: string[]): Sanitize {
    return new Sanitize(commands, [], false);
  }

  /**
   * Run the defaults, then these shell commands.
   *
   * @param commands shell commands, run in order after the defaults
   */
  public static defaultsAnd(...commands: string[]): Sanitize {
    return new Sanitize(LINUX_DEFAULTS, commands, true);
  }

  /** The default commands for Linux, in order: to start a custom list from. */
  public static defaultCommands(): string[] {
    return [...LINUX_DEFAULTS];
  }

  private constructor(
    private readonly linuxDefaults: string[],
    private readonly extra: string[],
    private readonly usesDefaults: boolean,
  ) {}

  /**
   * The commands to run on a builder of the given operating system, in order: what BakedImage renders into
   * the builder's last config set.
   *
   * @param osType the builder's operating system
   * @internal
   */
  public _commandsFor(osType: ec2.OperatingSystemType): string[] {
    if (this.usesDefaults && osType !== ec2.OperatingSystemType.LINUX) {
      return [...this.extra];
    }
    return [...this.linuxDefaults, ...this.extra];
  }
}
