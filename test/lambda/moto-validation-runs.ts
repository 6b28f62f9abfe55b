/**
 * The user-data runner of the moto proxy: moto's instances run nothing, so the proxy runs the user data of an
 * instance launched with the construct's validation script on this machine, as the instance would (see the module
 * comment of moto-server.ts), and makes the instance end in moto as EC2 would end it when the script powers it off.
 */
import { type ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type EC2Client, StopInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { shellQuote } from './moto-http';
import { parsePowerCall } from './moto-power-calls';

/** The line that makes the user data of a RunInstances an image validation script the proxy runs (see the module comment). */
export const VALIDATION_MARKER = '# cdk-baked-image: image validation';

/** EC2's GetConsoleOutput with `Latest` gives the most recent 64 KB of the console. */
export const CONSOLE_OUTPUT_LIMIT = 64 * 1024;

/** The commands that would power the instance (this machine) off: the validation scripts get stand-ins. */
const POWER_COMMANDS = ['shutdown', 'poweroff', 'halt', 'reboot'] as const;

/** How often the proxy looks at what the stand-ins were asked and at the shutdowns that are due. */
const POWER_POLL_MS = 25;

/** A validation instance: what it was launched with and what its script has done so far. */
export interface ValidationInstance {
  readonly instanceId: string;
  /** The ImageId of the RunInstances that launched it. */
  readonly imageId: string;
  /** The script, as the user data decodes (before the proxy's replacements). */
  readonly userData: string;
  /** The script has not exited yet. */
  readonly running: boolean;
  /** The script's exit status; undefined while it runs or when it was killed. */
  readonly exitCode?: number;
  /** The instance is terminated: TerminateInstances, or its own power-off with shutdown behaviour `terminate`. */
  readonly terminated: boolean;
  /** The instance is stopped: StopInstances, or its own power-off with shutdown behaviour `stop`. */
  readonly stopped: boolean;
  /** The arguments of each call of the `shutdown`, `poweroff`, `halt` and `reboot` stand-ins, one string per call. */
  readonly shutdownCalls: string[];
  /** What the script wrote to /dev/console. */
  readonly console: string;
  /**
   * The instance powered itself off (a `shutdown -h now`, `poweroff`, `halt`, or a scheduled shutdown that came due):
   * the command, when (the proxy's clock, epoch milliseconds) and what EC2 made of it (its shutdown behaviour).
   */
  readonly poweredOff?: { readonly command: string; readonly at: number; readonly outcome: 'terminated' | 'stopped' };
  /** The shutdown the script scheduled (`shutdown -h +N`) that has not come due yet: the command and when it is due. */
  readonly scheduledShutdown?: { readonly command: string; readonly dueAt: number };
}

/** A validation script running (or run) for an instance. */
interface ValidationRun {
  readonly instanceId: string;
  readonly region: string;
  readonly imageId: string;
  readonly userData: string;
  /** `terminate` or `stop`: RunInstances' InstanceInitiatedShutdownBehavior (EC2's default is `stop`). */
  readonly shutdownBehavior: string;
  /** The temporary directory: script, console, stand-ins, calls; also the script's cwd and TMPDIR. */
  readonly dir: string;
  readonly child: ChildProcess;
  exited: boolean;
  exitCode?: number;
  terminated: boolean;
  stopped: boolean;
  /** Calls of the stand-ins the proxy has acted on. */
  callsHandled: number;
  scheduled?: { command: string; dueAt: number };
  poweredOff?: { command: string; at: number; outcome: 'terminated' | 'stopped' };
}

/** What the runs need of the proxy. */
export interface ValidationRunsContext {
  /** Direct client to moto's backend of the region (not through the proxy). */
  clientIn(region: string): EC2Client;
  /** The proxy's clock (epoch milliseconds), which tests can advance. */
  now(): number;
  /** Reports a problem of the proxy itself. */
  error(message: string): void;
}

/** Kills a detached child and everything in its process group (still there after the child itself exited). */
function killProcessGroup(child: ChildProcess): void {
  if (child.pid === undefined) {
    return;
  }
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') {
      throw error;
    }
  }
}

/** The instances launched with a validation script, and their scripts. */
export class ValidationRuns {
  private readonly runs = new Map<string, ValidationRun>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;

  constructor(private readonly context: ValidationRunsContext) {}

  has(instanceId: string): boolean {
    return this.runs.has(instanceId);
  }

  /** The instances launched with a validation script, in launch order. */
  list(): ValidationInstance[] {
    return [...this.runs.values()].map((run) => ({
      instanceId: run.instanceId,
      imageId: run.imageId,
      userData: run.userData,
      running: !run.exited,
      exitCode: run.exitCode,
      terminated: run.terminated,
      stopped: run.stopped,
      shutdownCalls: this.shutdownCalls(run),
      console: this.consoleOf(run).toString('utf8'),
      ...(run.poweredOff ? { poweredOff: { ...run.poweredOff } } : {}),
      ...(run.scheduled ? { scheduledShutdown: { ...run.scheduled } } : {}),
    }));
  }

  /**
   * Runs the validation script of an instance on this machine, as the instance would run its user data (see the
   * module comment of moto-server.ts). The script is the process group leader (detached), so that everything it
   * started is killed with it.
   */
  start(instanceId: string, region: string, imageId: string, userData: string, shutdownBehavior: string): void {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moto-validation-'));
    const bin = path.join(dir, 'bin');
    const acks = path.join(dir, 'acks');
    fs.mkdirSync(bin);
    fs.mkdirSync(acks);
    for (const command of POWER_COMMANDS) {
      // The stand-in records its call and waits until the proxy acted on it: a power-off now never returns (the proxy
      // kills the script's process group as the machine goes down), anything else returns once it is recorded.
      fs.writeFileSync(
        path.join(bin, command),
        `#!/bin/sh\n# Stands in for ${command} in an emulated validation instance: records its arguments, powers nothing off.\n`
        + `printf '%s\\n' "$*" >> ${shellQuote(path.join(dir, 'shutdown-calls'))}\n`
        + `printf '%s\\t%s\\t%s\\n' "$$" ${command} "$*" >> ${shellQuote(path.join(dir, 'power-calls'))}\n`
        + `while [ ! -e ${shellQuote(acks)}/$$ ]; do sleep 0.02; done\nrm -f ${shellQuote(acks)}/$$\nexit 0\n`,
        { mode: 0o755 },
      );
    }
    // /dev/console is a device: every write appends, whatever the redirection (`>` included). A pipe behaves the same
    // (a regular file would be truncated by `>`); `cat`, in the script's process group, appends what comes out to
    // the console file, which GetConsoleOutput reads.
    const consolePipe = path.join(dir, 'console.pipe');
    const consoleFile = path.join(dir, 'console');
    execFileSync('mkfifo', [consolePipe]);
    fs.writeFileSync(consoleFile, '');
    const script = userData
      .split('/dev/console').join(consolePipe)
      // A stand-in called by its absolute path is still a stand-in.
      .replace(/(?<![\w./-])(?:\/usr)?\/s?bin\/(shutdown|poweroff|halt|reboot)\b/g, (_match, command: string) => path.join(bin, command));
    const scriptFile = path.join(dir, 'user-data.sh');
    fs.writeFileSync(scriptFile, script, { mode: 0o700 });
    if (/(?:^|[\s;&|(`/])(?:systemctl\s+(?:poweroff|halt|reboot|kexec)|telinit\s+\S|init\s+[06])\b/m.test(script)) {
      // Not run: it would power this machine off, and the stand-ins do not cover it.
      this.context.error(`validation script of ${instanceId} powers off without shutdown/poweroff/halt/reboot; not run:\n${userData}`);
      fs.rmSync(dir, { recursive: true, force: true });
      return;
    }
    const child = spawn(
      'bash',
      ['-c', 'exec 3<>"$1"; cat <&3 >>"$2" 3<&- & exec bash "$3" 3<&-', 'validation-instance', consolePipe, consoleFile, scriptFile],
      {
        cwd: dir,
        env: { ...process.env, TMPDIR: dir, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` },
        detached: true,
        stdio: 'ignore',
      },
    );
    child.unref();
    const run: ValidationRun = {
      instanceId,
      region,
      imageId,
      userData,
      shutdownBehavior,
      dir,
      child,
      exited: false,
      terminated: false,
      stopped: false,
      callsHandled: 0,
    };
    child.on('exit', (code) => {
      run.exited = true;
      run.exitCode = code ?? undefined;
    });
    child.on('error', (error) => {
      run.exited = true;
      this.context.error(`validation script of ${instanceId} could not be started: ${error.message}`);
    });
    this.runs.set(instanceId, run);
    if (!this.timer) {
      this.timer = setInterval(() => {
        if (!this.ticking) {
          void this.tick();
        }
      }, POWER_POLL_MS);
      this.timer.unref();
    }
  }

  /** TerminateInstances (through the proxy) of these instances succeeded: their scripts die with them. */
  terminatedByApi(instanceIds: string[]): void {
    for (const instanceId of instanceIds) {
      const run = this.runs.get(instanceId);
      if (run) {
        run.terminated = true;
        run.scheduled = undefined;
        killProcessGroup(run.child);
      }
    }
  }

  /** StopInstances (through the proxy) of these instances succeeded: the operating system, and the script, stop. */
  stoppedByApi(instanceIds: string[]): void {
    for (const instanceId of instanceIds) {
      const run = this.runs.get(instanceId);
      if (run && !run.terminated) {
        run.stopped = true;
        run.scheduled = undefined;
        killProcessGroup(run.child);
      }
    }
  }

  /**
   * The console output GetConsoleOutput answers: with `latest`, what the script wrote so far (the last 64 KB);
   * without, what EC2 buffered at the instance's last state change: nothing while it runs since its launch, everything
   * once it stopped or terminated. Undefined for an instance without a validation script.
   */
  consoleOutput(instanceId: string, latest: boolean): Buffer | undefined {
    const run = this.runs.get(instanceId);
    if (!run) {
      return undefined;
    }
    return latest || run.terminated || run.stopped ? this.consoleOf(run) : Buffer.alloc(0);
  }

  /**
   * Acts on the stand-ins' calls not handled yet and fires the scheduled shutdowns that are due by the proxy's clock.
   * Runs every few milliseconds while there are runs; {@link Ec2Proxy.advanceClock} awaits one.
   */
  tick(): Promise<void> {
    const previous = this.ticking ?? Promise.resolve();
    const current = previous.then(() => this.handleCalls()).catch((error: unknown) => {
      this.context.error(`validation instances: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    });
    this.ticking = current;
    void current.then(() => {
      if (this.ticking === current) {
        this.ticking = undefined;
      }
    });
    return current;
  }

  /** Kills every validation script and removes their directories. */
  stopAll(): void {
    for (const run of this.runs.values()) {
      killProcessGroup(run.child);
      fs.rmSync(run.dir, { recursive: true, force: true });
    }
    this.runs.clear();
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private async handleCalls(): Promise<void> {
    for (const run of [...this.runs.values()]) {
      if (!this.runs.has(run.instanceId)) {
        continue; // reset in the meantime
      }
      for (const call of this.newCalls(run)) {
        const request = parsePowerCall(call.command, call.args ? call.args.split(' ') : [], this.context.now());
        const line = `${call.command}${call.args ? ` ${call.args}` : ''}`;
        if (run.terminated || run.stopped) {
          continue;
        }
        if (request.kind === 'power-off' && request.delayMs === 0) {
          await this.powerOff(run, line);
          continue; // no answer: the machine is going down
        }
        if (request.kind === 'power-off') {
          // systemd keeps one pending shutdown: a new one replaces it.
          run.scheduled = { command: line, dueAt: this.context.now() + request.delayMs };
        } else if (request.kind === 'cancel') {
          run.scheduled = undefined;
        }
        fs.writeFileSync(path.join(run.dir, 'acks', call.pid), '');
      }
      if (run.scheduled && run.scheduled.dueAt <= this.context.now() && !run.terminated && !run.stopped) {
        await this.powerOff(run, run.scheduled.command);
      }
    }
  }

  /** The calls of the stand-ins recorded since the last look. */
  private newCalls(run: ValidationRun): Array<{ pid: string; command: string; args: string }> {
    let text: string;
    try {
      text = fs.readFileSync(path.join(run.dir, 'power-calls'), 'utf8');
    } catch {
      return [];
    }
    const lines = text.split('\n');
    lines.pop(); // the part after the last newline: empty, or a line still being written
    const calls = lines.slice(run.callsHandled).map((line) => {
      const [pid, command, ...args] = line.split('\t');
      return { pid, command, args: args.join('\t') };
    });
    run.callsHandled = lines.length;
    return calls;
  }

  /**
   * The instance shuts itself down: the script and everything it started die with the operating system, and EC2
   * terminates or stops the instance, as its shutdown behaviour says (through moto directly, not counted).
   */
  private async powerOff(run: ValidationRun, command: string): Promise<void> {
    run.scheduled = undefined;
    killProcessGroup(run.child);
    const outcome = run.shutdownBehavior === 'terminate' ? 'terminated' : 'stopped';
    const client = this.context.clientIn(run.region);
    try {
      if (outcome === 'terminated') {
        await client.send(new TerminateInstancesCommand({ InstanceIds: [run.instanceId] }));
      } else {
        await client.send(new StopInstancesCommand({ InstanceIds: [run.instanceId] }));
      }
    } catch (error) {
      if (this.runs.get(run.instanceId) !== run) {
        return; // moto and the proxy were reset in the meantime: the instance is gone anyway
      }
      throw error;
    }
    run.terminated = outcome === 'terminated';
    run.stopped = outcome === 'stopped';
    run.poweredOff = { command, at: this.context.now(), outcome };
  }

  private shutdownCalls(run: ValidationRun): string[] {
    const file = path.join(run.dir, 'shutdown-calls');
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    return text === '' ? [] : text.replace(/\n$/, '').split('\n');
  }

  /** What the validation script of the instance wrote to /dev/console, at most EC2's last 64 KB. */
  private consoleOf(run: ValidationRun): Buffer {
    let content: Buffer;
    try {
      content = fs.readFileSync(path.join(run.dir, 'console'));
    } catch {
      return Buffer.alloc(0);
    }
    return content.subarray(Math.max(0, content.length - CONSOLE_OUTPUT_LIMIT));
  }
}
