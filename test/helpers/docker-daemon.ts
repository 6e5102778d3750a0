import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { run, waitForDaemon } from './tools.js';

export interface DockerDaemon {
  /** Environment that points the docker client at this daemon. */
  env: NodeJS.ProcessEnv;
  socket: string;
  docker(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export type DockerStorageDriver = 'vfs' | 'overlay2';

/**
 * overlay2 where this machine can mount an overlay in `directory` (image builds are several times
 * faster: vfs copies the whole file system for every layer), else vfs, which works everywhere.
 */
export function fastestStorageDriver(directory: string): DockerStorageDriver {
  const probe = path.join(directory, 'overlay-probe');
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((name) => path.join(probe, name)) as [string, string, string, string];
  for (const folder of [lower, upper, work, merged]) mkdirSync(folder, { recursive: true });
  const mounted = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged], { stdio: 'ignore' }).status === 0;
  if (mounted) spawnSync('umount', [merged], { stdio: 'ignore' });
  rmSync(probe, { recursive: true, force: true });
  return mounted ? 'overlay2' : 'vfs';
}

/** dockerd leaves the network namespace of containers run with --network host mounted under its exec root. */
function unmountUnder(directory: string): void {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint.startsWith(`${path.resolve(directory)}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mountPoints) spawnSync('umount', ['--lazy', mountPoint], { stdio: 'ignore' });
}

/** A private dockerd that needs no network setup (vfs storage unless told, no bridge, no iptables), stopped by PID. */
export async function startDockerDaemon(directory: string, extraArgs: string[] = [], options: { storageDriver?: DockerStorageDriver } = {}): Promise<DockerDaemon> {
  const socket = path.join(directory, 'docker.sock');
  const child: ChildProcess = spawn(
    'dockerd',
    [
      '--data-root', path.join(directory, 'data'),
      '--exec-root', path.join(directory, 'exec'),
      '--pidfile', path.join(directory, 'dockerd.pid'),
      '-H', `unix://${socket}`,
      '--storage-driver', options.storageDriver ?? 'vfs',
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
      unmountUnder(directory);
    },
  };
}
