/**
 * What a validation script's call of `shutdown`, `poweroff`, `halt` or `reboot` asks of the instance, read as systemd
 * reads its arguments: the moto proxy's stand-ins for those commands record their calls, and the validation runs
 * (moto-validation-runs.ts) act on what this makes of them.
 */

/** What a call of a stand-in asks for. */
export type PowerRequest =
  | { readonly kind: 'power-off'; readonly delayMs: number }
  | { readonly kind: 'cancel' }
  | { readonly kind: 'reboot' }
  | { readonly kind: 'nothing' };

/** Milliseconds from `now` to the next `hh:mm` (UTC, the clock of an EC2 instance by default). */
function untilClockTime(hours: number, minutes: number, now: number): number {
  const at = new Date(now);
  at.setUTCHours(hours, minutes, 0, 0);
  if (at.getTime() <= now) {
    at.setUTCDate(at.getUTCDate() + 1);
  }
  return at.getTime() - now;
}

/**
 * What a `shutdown`, `poweroff`, `halt` or `reboot` call asks of a systemd machine: `shutdown` powers off (`-h`,
 * `-H`, `-P`, or nothing) or reboots (`-r`) at TIME (`now`, `+m`, `hh:mm`; `+1` when none is given), `-c` cancels
 * the pending one, `-k` only warns; `poweroff` and `halt` power off at once (the machine is gone for EC2 either way).
 */
export function parsePowerCall(command: string, args: string[], now: number): PowerRequest {
  if (command === 'reboot') {
    return { kind: 'reboot' };
  }
  if (command === 'poweroff' || command === 'halt') {
    if (args.includes('--reboot')) {
      return { kind: 'reboot' };
    }
    return args.some((arg) => ['--help', '-w', '--wtmp-only'].includes(arg)) ? { kind: 'nothing' } : { kind: 'power-off', delayMs: 0 };
  }
  let reboot = false;
  let time: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg.startsWith('--')) {
      if (arg === '--reboot') {
        reboot = true;
      } else if (arg === '--halt' || arg === '--poweroff') {
        reboot = false;
      } else if (arg === '--help' || arg === '--show') {
        return { kind: 'nothing' };
      }
    } else if (arg.startsWith('-') && arg.length > 1) {
      for (const flag of arg.slice(1)) {
        if (flag === 'r') {
          reboot = true;
        } else if (flag === 'h' || flag === 'H' || flag === 'P') {
          reboot = false;
        } else if (flag === 'k') {
          return { kind: 'nothing' };
        } else if (flag === 'c') {
          return { kind: 'cancel' };
        } else if (flag === 't') {
          i++;
        }
      }
    } else if (time === undefined) {
      time = arg;
    } else {
      break; // the wall message
    }
  }
  if (reboot) {
    return { kind: 'reboot' };
  }
  if (time === undefined) {
    return { kind: 'power-off', delayMs: 60_000 };
  }
  if (time === 'now') {
    return { kind: 'power-off', delayMs: 0 };
  }
  const minutes = /^\+?(\d+)$/.exec(time);
  if (minutes) {
    return { kind: 'power-off', delayMs: Number(minutes[1]) * 60_000 };
  }
  const clock = /^(\d{1,2}):(\d{2})$/.exec(time);
  if (clock && Number(clock[1]) < 24 && Number(clock[2]) < 60) {
    return { kind: 'power-off', delayMs: untilClockTime(Number(clock[1]), Number(clock[2]), now) };
  }
  return { kind: 'nothing' }; // shutdown refuses a time it cannot parse
}
