import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: string;
  /** The events of the envelope, parsed. */
  events: Array<Record<string, unknown> & { id: string; action: string; target: Record<string, unknown> }>;
}

/** A webhook receiver as a CI system runs one: a plain HTTP server whose answer the test chooses. */
export interface WebhookReceiver {
  url: string;
  port: number;
  /** Requests answered 2xx, in arrival order. */
  accepted: ReceivedRequest[];
  /** Every request, whatever the answer. */
  all: ReceivedRequest[];
  /** The status the next requests get (200 by default). */
  answer(status: number): void;
  /** Waits until `count` events were accepted. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(port = 0): Promise<WebhookReceiver> {
  let status = 200;
  const accepted: ReceivedRequest[] = [];
  const all: ReceivedRequest[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let events: ReceivedRequest['events'] = [];
      try {
        events = (JSON.parse(body) as { events: ReceivedRequest['events'] }).events;
      } catch {
        // Kept as received; the test looks at the body.
      }
      const received = { headers: request.headers, body, events };
      all.push(received);
      if (status >= 200 && status < 300) accepted.push(received);
      response.statusCode = status;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actualPort}/events`,
    port: actualPort,
    accepted,
    all,
    answer: (next) => {
      status = next;
    },
    async waitFor(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (accepted.flatMap((request) => request.events).length < count) {
        if (Date.now() > deadline) throw new Error(`the receiver got ${accepted.flatMap((request) => request.events).length} events, not ${count}, within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
