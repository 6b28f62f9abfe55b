/**
 * The moto_server process of the moto test harness (see moto-server.ts): started on a free port of 127.0.0.1, one per
 * test file, reset between tests, stopped with the file.
 */
import { type ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { freePort, httpRequest, sleep } from './moto-http';

const STARTUP_TIMEOUT_MS = 20_000;

function findOnPath(executable: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    const candidate = path.join(dir, executable);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A moto_server process (moto 5.2.1: the tests were written against it). */
export class MotoServer {
  /** Starts moto_server on 127.0.0.1 and waits until it answers HTTP. Throws if it is not installed. */
  static async start(): Promise<MotoServer> {
    const executable = findOnPath('moto_server');
    if (!executable) {
      throw new Error(
        'moto_server is required by the moto integration tests but was not found on PATH. ' +
        "Install it with: pip install 'moto[server]' (tested with moto 5.2.1).",
      );
    }
    const port = await freePort();
    const child = spawn(executable, ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new MotoServer(child, port);
    await server.waitUntilReady();
    return server;
  }

  readonly endpoint: string;
  private output = '';
  private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private spawnError: Error | undefined;

  private constructor(private readonly child: ChildProcess, readonly port: number) {
    this.endpoint = `http://127.0.0.1:${port}`;
    // Keep draining the logs (moto logs every request) and keep the tail for error messages.
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', (code, signal) => {
      this.exited = { code, signal };
    });
    child.on('error', (error) => {
      this.spawnError = error;
    });
  }

  private async waitUntilReady(): Promise<void> {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.spawnError) {
        throw new Error(`moto_server could not be started: ${this.spawnError.message}`);
      }
      if (this.exited) {
        throw new Error(`moto_server exited during startup (code ${this.exited.code}, signal ${this.exited.signal}):\n${this.output}`);
      }
      try {
        const response = await httpRequest({ host: '127.0.0.1', port: this.port, method: 'GET', path: '/moto-api/', timeout: 1000 });
        if (response.status > 0) {
          return;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    await this.stop();
    throw new Error(`moto_server did not answer on ${this.endpoint} within ${STARTUP_TIMEOUT_MS / 1000} s:\n${this.output}`);
  }

  /** Forgets every resource (POST /moto-api/reset). */
  async reset(): Promise<void> {
    const response = await httpRequest({ host: '127.0.0.1', port: this.port, method: 'POST', path: '/moto-api/reset' });
    if (response.status !== 200) {
      throw new Error(`moto reset answered HTTP ${response.status}: ${response.body.toString()}`);
    }
  }

  async stop(): Promise<void> {
    if (this.exited || this.child.pid === undefined) {
      return;
    }
    const exit = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      exit.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 5000);
      }),
    ]);
    clearTimeout(timer);
    if (!stopped && !this.exited) {
      this.child.kill('SIGKILL');
      await exit;
    }
  }
}
