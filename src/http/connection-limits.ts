import type { Server } from 'node:net';
import type { Logger } from 'pino';
import { plainAddress } from './client-address.js';

/** Open connections allowed at once, in all and from one address (0: no limit). */
export interface ConnectionLimits {
  total: number;
  perAddress: number;
}

/** Refusals are logged at most this often, so that a flood does not flood the log too. */
const logEveryMs = 10_000;

/**
 * Refuses connections past the limits by closing them at once, before any byte is read: a client
 * holding hundreds of slow connections cannot take the file handles every other client needs.
 * Counts TCP connections as they open and close (a TLS server counts them before the handshake).
 */
export function limitConnections(server: Server, limits: ConnectionLimits, logger: Logger): void {
  if (limits.total <= 0 && limits.perAddress <= 0) return;
  const byAddress = new Map<string, number>();
  let open = 0;
  let refused = 0;
  let lastLogged = -Infinity;
  server.on('connection', (socket) => {
    const address = plainAddress(socket.remoteAddress ?? '');
    const fromAddress = byAddress.get(address) ?? 0;
    const overTotal = limits.total > 0 && open >= limits.total;
    if (overTotal || (limits.perAddress > 0 && fromAddress >= limits.perAddress)) {
      refused += 1;
      socket.destroy();
      if (performance.now() - lastLogged >= logEveryMs) {
        lastLogged = performance.now();
        logger.warn(
          { address, open, fromAddress, refused, limit: overTotal ? limits.total : limits.perAddress },
          overTotal ? 'connection refused: http.maxconnections reached' : 'connection refused: http.maxconnectionsperaddress reached for this address',
        );
      }
      return;
    }
    open += 1;
    byAddress.set(address, fromAddress + 1);
    socket.once('close', () => {
      open -= 1;
      const left = (byAddress.get(address) ?? 1) - 1;
      if (left > 0) byAddress.set(address, left);
      else byAddress.delete(address);
    });
  });
}
