/** The host names Docker Hub is known by (docker's references name it docker.io; its API is at registry-1.docker.io). */
export const dockerHubHosts: ReadonlySet<string> = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
