import path from 'node:path';
import type { DockerDaemon } from './docker-daemon.js';
import { projectRoot } from './server-process.js';
import { run } from './tools.js';

/**
 * A stand-in for the official Node.js slim image, for building docker/Dockerfile where Docker Hub
 * cannot be reached, made by the script docs/deployment.md gives users for that (docker/make-base.sh,
 * `npm run image:base`), against the test's private daemon.
 */
export async function buildStandInNodeImage(daemon: DockerDaemon, tag: string): Promise<void> {
  await run('bash', [path.join(projectRoot, 'docker/make-base.sh'), tag], { env: { DOCKER_HOST: `unix://${daemon.socket}` }, timeoutMs: 600_000 });
}
