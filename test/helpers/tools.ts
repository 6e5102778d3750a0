import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function commandAvailable(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Why a real-client test cannot run here, or undefined when it can. Under CI the clients are
 * installed by .ci/run, so a missing one is a failure there rather than a skip.
 */
export function missingClients(...names: string[]): string | undefined {
  const missing = names.filter((name) => !commandAvailable(name));
  if (missing.length === 0) return undefined;
  if (process.env.CI) throw new Error(`CI must have ${missing.join(', ')} installed (.ci/run installs them)`);
  return `${missing.join(', ')} not installed (apt-get install -y skopeo podman docker.io apache2-utils)`;
}

/** Runs a command to its end (with `input` on its standard input); rejects with its output when it exits non-zero. */
export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    // A command that exits without reading its input (EPIPE) is judged by its exit code, not by the pipe.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr };
      if (code === 0) resolve(result);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}\n${stdout}\n${stderr}`));
    });
  });
}

/**
 * Waits for a daemon the test started: retries `probe` every `intervalMs` until it succeeds; after
 * `attempts` failures kills the child and throws with the end of its log.
 */
export async function waitForDaemon(
  name: string,
  child: ChildProcess,
  probe: () => Promise<unknown>,
  log: () => string,
  options: { attempts: number; intervalMs: number },
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await probe();
      return;
    } catch (error) {
      if (attempt >= options.attempts) {
        child.kill('SIGTERM');
        throw new Error(`${name} did not come up: ${log().slice(-2000)}`, { cause: error });
      }
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    }
  }
}
