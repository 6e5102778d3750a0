import { unwatchFile, watchFile } from 'node:fs';

const watchIntervalMs = 1000;
/** Files rotated together (a certificate and its key, a policy and its htpasswd) are written one after the other. */
const settleMs = 200;

/**
 * Calls `changed` once after any of `files` changes (checked every second by stat, which works on
 * bind mounts and Kubernetes secret volumes where inotify misses the symlink swap), a short while
 * after the last change so that files written together are read together. Returns the way to stop.
 */
export function watchFiles(files: readonly string[], changed: () => void): () => void {
  let pending: NodeJS.Timeout | undefined;
  const listener = () => {
    clearTimeout(pending);
    pending = setTimeout(changed, settleMs);
  };
  for (const file of files) watchFile(file, { interval: watchIntervalMs, persistent: false }, listener);
  return () => {
    clearTimeout(pending);
    for (const file of files) unwatchFile(file, listener);
  };
}
