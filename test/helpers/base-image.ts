import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DockerDaemon } from './docker-daemon.js';
import { run } from './tools.js';

/**
 * A stand-in for the official Node.js slim image, for building docker/Dockerfile where Docker Hub
 * cannot be reached: a minimal Debian of this machine's release (mmdebstrap, from the Debian mirror
 * this machine uses) with this machine's Node.js, npm and Node headers copied in under the same
 * prefix, a user `node` (uid 1000) as in the official image, and this machine's extra CA
 * certificates and npm CA setting (a site's own base image would carry its own), so that the
 * build's `npm ci` reaches the package registry as this machine does.
 */
export async function buildStandInNodeImage(daemon: DockerDaemon, directory: string, tag: string): Promise<void> {
  const node = realpathSync(process.execPath);
  const prefix = path.dirname(path.dirname(node));
  const relative = (file: string) => path.relative('/', file);
  const files = [node, path.join(prefix, 'include/node'), path.join(prefix, 'lib/node_modules/npm'), path.join(prefix, 'bin/npm'), path.join(prefix, 'bin/npx'), path.join(prefix, 'etc/npmrc')]
    .filter((file) => existsSync(file))
    .map(relative);
  const fileList = path.join(directory, 'node-files.txt');
  await writeFile(fileList, `${files.join('\n')}\n`);
  const extraCas = '/usr/local/share/ca-certificates';
  const hasExtraCas = existsSync(extraCas) && readdirSync(extraCas).some((name) => name.endsWith('.crt'));
  const rootfs = path.join(directory, 'rootfs.tar');
  await run(
    'mmdebstrap',
    [
      '--variant=minbase',
      '--include=ca-certificates',
      '--dpkgopt=path-exclude=/usr/share/doc/*',
      '--dpkgopt=path-exclude=/usr/share/man/*',
      '--dpkgopt=path-exclude=/usr/share/locale/*',
      `--customize-hook=tar -C / -c -T ${fileList} | tar -C "$1" -x`,
      ...(hasExtraCas ? [`--customize-hook=cp ${extraCas}/*.crt "$1${extraCas}/" && chroot "$1" update-ca-certificates`] : []),
      '--customize-hook=chroot "$1" groupadd --gid 1000 node',
      '--customize-hook=chroot "$1" useradd --uid 1000 --gid node --shell /bin/bash --create-home node',
      debianRelease(),
      rootfs,
      debianMirror(),
    ],
    { timeoutMs: 600_000 },
  );
  await daemon.docker(['import', '--change', 'CMD ["node"]', rootfs, tag]);
}

function debianRelease(): string {
  const release = /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
  if (!release) throw new Error('/etc/os-release names no VERSION_CODENAME: not a Debian release mmdebstrap can make');
  return release;
}

/** The first Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org. */
function debianMirror(): string {
  const sources = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'].filter((file) => existsSync(file));
  for (const file of sources) {
    const text = readFileSync(file, 'utf8');
    const mirror = /^URIs:\s*(\S+\/debian)\s*$/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s/m.exec(text)?.[1];
    if (mirror) return mirror;
  }
  return 'http://deb.debian.org/debian';
}
