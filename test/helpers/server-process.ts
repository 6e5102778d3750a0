import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The project root: dist/test/helpers → three levels up. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const mainScript = path.join(projectRoot, 'dist/src/main.js');
/** The container's HEALTHCHECK. */
export const healthcheckScript = path.join(projectRoot, 'dist/src/healthcheck.js');

export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  port: number;
  /** Parsed JSON log lines written so far. */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  root: string;
  env?: Record<string, string>;
  /** Keep only the lines up to 'registry listening' (benchmarks: parsing every request line costs the client CPU). */
  keepLogs?: boolean;
}

/** Runs `node dist/src/main.js serve` from the project root (so the shipped config is read), on a random port. */
export async function startServerProcess(options: StartOptions): Promise<ServerProcess> {
  const child = spawn(process.execPath, [mainScript, 'serve'], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH ?? '',
      REGISTRY_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: options.root,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close' comes after the output streams have ended, so every log line has been read by then.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'registry listening') {
        resolve(Number(entry.port));
        if (options.keepLogs === false) {
          // Read on without splitting lines: a benchmark's client should not spend its CPU on them.
          lines.close();
          child.stdout!.on('data', () => {}).resume();
        }
      }
    });
    void exited.then((code) => reject(new Error(`registry exited with ${code} before listening: ${stderr}`)));
  });
  return {
    child,
    pid: child.pid!,
    port,
    logs,
    stderr: () => stderr,
    exited,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs the command line (or another entry point of dist/src) to its end (for configuration errors and the like). */
export function runRegistryCommand(args: string[], env: Record<string, string>, script = mainScript, stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: projectRoot, env: { PATH: process.env.PATH ?? '', ...env } });
    // What the command reads on standard input (a password for --password-stdin), then its end.
    child.stdin.end(stdin ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export async function withTemporaryDirectory<T>(prefix: string, body: (directory: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(path.join(tmpdir(), prefix));
  try {
    return await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Resident memory of a process, in bytes, from /proc. */
export function residentBytes(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!match) throw new Error(`no ${field} for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Samples a process's RSS every few milliseconds until stopped; reports the peak seen. */
export function sampleResidentMemory(pid: number, everyMs = 20): { stop(): number } {
  let peak = residentBytes(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, residentBytes(pid));
    } catch {
      // the process ended
    }
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      try {
        peak = Math.max(peak, residentBytes(pid));
      } catch {
        // the process ended
      }
      return peak;
    },
  };
}

/** Checks that a TCP connection to the port is refused. */
export function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = request({ host: '127.0.0.1', port, path: '/v2/', agent: false }, (response) => {
      response.resume();
      resolve(false);
    });
    probe.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
    probe.end();
  });
}
