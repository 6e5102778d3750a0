import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { listenOn } from '../listen.js';
import type { RegistryMetrics } from './registry-metrics.js';

/** The debug listener (http.debug.addr), apart from the registry's port as in Distribution: metrics at `path`, nothing else. */
export async function startDebugListener(addr: string, path: string, metrics: RegistryMetrics, logger: Logger): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== path) {
      response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.text().then(
      (text) => response.writeHead(200, { 'Content-Type': metrics.contentType }).end(text),
      (error: unknown) => {
        logger.warn({ err: error }, 'collecting metrics failed');
        response.writeHead(500, { 'Content-Type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  await listenOn(server, addr, 'http.debug.addr');
  return { server, address: server.address() as AddressInfo };
}
