import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { run, waitForDaemon } from './tools.js';

export interface DockerDaemon {
  /** Environment that points the docker client at this daemon. */
  env: NodeJS.ProcessEnv;
  socket: string;
  docker(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** A private dockerd that needs no network setup (vfs storage, no bridge, no iptables), stopped by PID. */
export async function startDockerDaemon(directory: string, extraArgs: string[] = []): Promise<DockerDaemon> {
  const socket = path.join(directory, 'docker.sock');
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--data-root', path.join(directory, 'data'),
      '--exec-root', path.join(directory, 'exec'),
      '--pidfile', path.join(directory, 'dockerd.pid'),
      '-H', `unix://${socket}`,
      '--storage-driver', 'vfs',
      '--iptables=false',
      '--ip6tables=false',
      '--bridge=none',
      ...extraArgs,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const env = { DOCKER_HOST: `unix://${socket}` };
  const docker = async (args: string[]) => (await run('docker', args, { env, timeoutMs: 300_000 })).stdout;
  await waitForDaemon('dockerd', child, () => run('docker', ['version'], { env, timeoutMs: 10_000 }), () => log, { attempts: 60, intervalMs: 500 });
  return {
    env,
    socket,
    docker,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
