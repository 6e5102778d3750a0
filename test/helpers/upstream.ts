import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import supertest from 'supertest';
import { fetchToken, passwords, writeTestPolicy } from './auth.js';
import { createTestRegistry, type TestRegistry } from './test-registry.js';

/** What the upstream saw: method and path (query left out) of each request, in order. */
export interface SeenRequest {
  method: string;
  path: string;
  via: string | undefined;
}

/** Answers a request instead of the registry (a fault); return false to let the registry answer. */
export type Fault = (request: IncomingMessage, response: ServerResponse) => boolean;

/**
 * An upstream for mirror tests: a registry with token auth on (bob may pull team-a/**, alice may
 * push there, anybody may pull public/**), served on a real port behind a front that records every
 * request and can answer in its place (faults), or stop answering at all.
 */
export interface TestUpstream {
  url: string;
  port: number;
  registry: TestRegistry;
  seen: SeenRequest[];
  /** Requests seen for one path suffix (`/blobs/sha256:…`) and method. */
  count(method: string, pathEnd: string): number;
  fault: Fault | null;
  /** A supertest agent that pushes as alice. */
  pusher(scopes: string[]): Promise<supertest.Agent>;
  /** Stops listening and drops connections: the upstream is unreachable. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestUpstream(): Promise<TestUpstream> {
  const files = await writeTestPolicy();
  const registry = await createTestRegistry({ auth: { mode: 'token', policy: files.policy } });
  const handle = registry.registry.app.callback();
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  const upstream: TestUpstream = {
    url: '',
    port: 0,
    registry,
    seen: [],
    fault: null,
    count(method, pathEnd) {
      return this.seen.filter((request) => request.method === method && request.path.endsWith(pathEnd)).length;
    },
    async pusher(scopes) {
      const agent = supertest.agent(handle);
      const token = await fetchToken(agent, ['alice', passwords.alice], scopes);
      agent.set('Authorization', `Bearer ${token}`);
      return agent;
    },
    async start() {
      server = createServer((request, response) => {
        upstream.seen.push({ method: request.method ?? '', path: (request.url ?? '').split('?')[0] ?? '', via: request.headers.via });
        if (upstream.fault?.(request, response)) return;
        void handle(request, response);
      });
      server.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server!.listen(port, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
      upstream.port = port;
      upstream.url = `http://127.0.0.1:${port}`;
    },
    async stop() {
      const stopping = server;
      server = null;
      if (!stopping) return;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => stopping.close(() => resolve()));
    },
    async close() {
      await upstream.stop();
      await registry.close();
      await rm(files.directory, { recursive: true, force: true });
    },
  };
  await upstream.start();
  return upstream;
}

/** The mirror section of a config naming this upstream (as bob, who may pull team-a/**). */
export function mirrorConfigFor(upstream: TestUpstream, options: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    failurethreshold: 3,
    cooloff: '30s',
    ...top,
    upstreams: {
      central: { url: upstream.url, prefix: 'central', username: 'bob', password: passwords.bob, ttl: '5m', timeout: '5s', ...options },
    },
  };
}
