import type { Server } from 'node:net';
import { envNameOf } from './config/load.js';
import { parseListenAddress } from './config/schema.js';

/** What stops the start, said in one line naming the key to look at: no stack, it is not a bug. */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

/** The server could not listen: the address is taken, not this machine's, or needs privileges. */
export class ListenError extends StartupError {
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

const listenProblems: Record<string, string> = {
  EADDRINUSE: 'the port is already in use (another registry, or another program)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  EACCES: 'this user may not listen on that port (below 1024 needs privileges)',
};

/** Listens on `addr` (a key's value); a failure names the key and its variable, in one line. */
export async function listenOn(server: Server, addr: string, key: string): Promise<void> {
  const { host, port } = parseListenAddress(addr);
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const why = listenProblems[error.code ?? ''] ?? error.message;
      reject(new ListenError(`cannot listen on ${key} ${JSON.stringify(addr)} (${envNameOf(key.split('.'))}): ${why}`));
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
