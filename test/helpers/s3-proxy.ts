import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the proxy answers one request instead of forwarding it. */
export type InjectedFault = 'throttled' | 'internal' | 'reset';

export interface S3ProxyOptions {
  /**
   * Forward writes (PUT) of one URL one at a time. s3rver writes an object in place while its body
   * arrives, so two PUTs of one key at once can leave a mix of both; S3 makes every PUT atomic.
   */
  serializeWrites?: boolean;
  /** A fault to answer the n-th request (from 1) with, or null to forward it. */
  fault?: (requestNumber: number) => InjectedFault | null;
}

export interface S3Proxy {
  port: number;
  /** Requests seen so far, and the faults injected. */
  readonly requests: number;
  readonly faults: InjectedFault[];
  close(): Promise<void>;
}

const faultAnswers = {
  throttled: [503, 'SlowDown'],
  internal: [500, 'InternalError'],
} as const;

function injectFault(kind: InjectedFault, incoming: IncomingMessage, outgoing: ServerResponse): void {
  incoming.resume();
  incoming.on('end', () => {
    if (kind === 'reset') {
      outgoing.socket?.destroy();
      return;
    }
    const [status, code] = faultAnswers[kind];
    outgoing.writeHead(status, { 'Content-Type': 'application/xml' });
    outgoing.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test proxy</Message></Error>`);
  });
}

/** Forwards one request to the target; resolves once the answer has been passed on (or failed). */
function forward(targetPort: number, incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const upstream = request(
      { host: '127.0.0.1', port: targetPort, method: incoming.method, path: incoming.url, headers: incoming.headers },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(outgoing);
        answer.on('end', resolve);
        answer.on('error', resolve);
      },
    );
    // The S3 server being down looks, to the client, like a connection that breaks.
    upstream.on('error', () => {
      outgoing.socket?.destroy();
      resolve();
    });
    incoming.pipe(upstream);
  });
}

/** An HTTP proxy in front of an S3 test server, on a random loopback port. */
export async function startS3Proxy(targetPort: number, options: S3ProxyOptions = {}): Promise<S3Proxy> {
  const writeQueues = new Map<string, Promise<void>>();
  const faults: InjectedFault[] = [];
  let requests = 0;
  const server: Server = createServer((incoming, outgoing) => {
    const fault = options.fault?.(++requests) ?? null;
    if (fault) {
      faults.push(fault);
      injectFault(fault, incoming, outgoing);
      return;
    }
    if (!options.serializeWrites || incoming.method !== 'PUT') {
      void forward(targetPort, incoming, outgoing);
      return;
    }
    const url = incoming.url ?? '';
    const previous = writeQueues.get(url) ?? Promise.resolve();
    const current = previous.then(() => forward(targetPort, incoming, outgoing));
    writeQueues.set(url, current);
    void current.then(() => {
      if (writeQueues.get(url) === current) writeQueues.delete(url);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get requests() {
      return requests;
    },
    faults,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
