import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, waitForDaemon } from './tools.js';

export interface Containerd {
  /** Its gRPC socket. */
  address: string;
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** A private containerd (no CRI) with its root, state and socket under `directory`, stopped by PID. */
export async function startContainerd(directory: string): Promise<Containerd> {
  const address = path.join(directory, 'containerd.sock');
  const config = path.join(directory, 'config.toml');
  await mkdir(directory, { recursive: true });
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${path.join(directory, 'root')}"`,
      `state = "${path.join(directory, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const ctr = async (args: string[]) => (await run('ctr', ['--address', address, ...args], { timeoutMs: 300_000 })).stdout;
  await waitForDaemon('containerd', child, () => ctr(['version']), () => log, { attempts: 40, intervalMs: 250 });
  return {
    address,
    ctr,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
