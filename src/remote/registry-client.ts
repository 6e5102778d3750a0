import { Readable } from 'node:stream';
import { parseChallenge } from '../auth/challenge.js';
import type { Clock } from '../clock.js';

/** How the client proves who it is: Basic (sent once a challenge asks, and to the token service), or a fixed bearer token. */
export type RemoteCredentials = { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string };

export interface RegistryClientOptions {
  /** `https://registry.example.com`; paths are resolved against it. */
  baseUrl: string;
  credentials: RemoteCredentials | null;
  /** How long an answer (its headers) may take once the request, with its whole body, is sent. */
  timeoutMs: number;
  userAgent: string;
  /** A registry's redirect of a blob GET to its storage is followed; an API client may want to see it ('manual'). */
  redirect: 'follow' | 'manual';
  clock: Clock;
  /** Told of every request sent to the registry itself (not its token service): the mirror counts them. */
  onRequest?: () => void;
}

/** The remote could not be reached, or did not answer in time: `reason` says which. */
export class RemoteUnreachableError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'RemoteUnreachableError';
  }
}

/** The token service refused a token, or answered without one (`status`: its answer's, 0 when it answered 2xx without a token). */
export class RemoteTokenError extends Error {
  constructor(
    readonly status: number,
    readonly scope: string,
    readonly reason: string,
  ) {
    super(reason);
    this.name = 'RemoteTokenError';
  }
}

export interface RemoteRequest {
  /** What the request needs, as token scopes (`repository:team/app:pull,push`), besides those its challenge names. */
  scopes: readonly string[];
  /** The key its token is kept under: by default the scopes (give one when the challenge's scopes differ between requests with the same `scopes`). */
  tokenKey?: string;
  headers?: Record<string, string>;
  /** A Buffer can be sent again after a 401; a stream once only, so credentials are settled first. */
  body?: Buffer | Readable;
}

export interface RemoteReply {
  response: Response;
  /** Aborts the request and its body (a client that stops reading). */
  cancel(reason: Error): void;
}

/**
 * Requests to another registry with the Docker token flow: a 401's WWW-Authenticate challenge
 * parsed, a bearer token fetched from its realm for the scopes it names and those asked for, kept
 * per scope set until shortly before it expires (`expires_in`, 60 s when absent, as the token
 * specification says); Basic credentials once a challenge asks for them; and a timeout on every
 * answer. The mirror's upstream client and the import over HTTP use it, and so will replication.
 */
export class RegistryClient {
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  /** The remote asked for Basic credentials once: sent up front from then on. */
  private basicChallenged = false;

  constructor(readonly options: RegistryClientOptions) {}

  async send(method: string, pathOrUrl: string, request: RemoteRequest): Promise<RemoteReply> {
    const url = new URL(pathOrUrl, this.options.baseUrl).toString();
    const key = request.tokenKey ?? [...request.scopes].sort().join(' ');
    const replayable = request.body === undefined || Buffer.isBuffer(request.body);
    // A streamed body can be sent once only: a GET of the same URL draws the challenge, if any, first.
    if (!replayable && this.authorization(key) === null) {
      const probe = await this.send('GET', url, { scopes: request.scopes, tokenKey: key, ...(request.headers ? { headers: request.headers } : {}) });
      discard(probe.response);
    }
    let reply = await this.attempt(method, url, key, request);
    if (reply.response.status === 401 && replayable) {
      const challenge = parseChallenge(reply.response.headers.get('www-authenticate'));
      if (challenge?.scheme === 'bearer' && challenge.params.realm) {
        discard(reply.response);
        await this.fetchToken(challenge.params, request.scopes, key);
        reply = await this.attempt(method, url, key, request);
      } else if (challenge?.scheme === 'basic' && this.options.credentials?.kind === 'basic' && !this.basicChallenged) {
        discard(reply.response);
        this.basicChallenged = true;
        reply = await this.attempt(method, url, key, request);
      }
    }
    return reply;
  }

  /** The credentials a request under `key` carries now, if any. */
  private authorization(key: string): string | null {
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.options.clock.now()) return `Bearer ${cached.token}`;
    const credentials = this.options.credentials;
    if (credentials?.kind === 'bearer') return `Bearer ${credentials.token}`;
    if (credentials?.kind === 'basic' && this.basicChallenged) return basicHeader(credentials.username, credentials.password);
    return null;
  }

  private async attempt(method: string, url: string, key: string, request: RemoteRequest): Promise<RemoteReply> {
    const headers = new Headers({ 'User-Agent': this.options.userAgent, ...request.headers });
    const authorization = this.authorization(key);
    if (authorization) headers.set('Authorization', authorization);
    const init: RequestInit & { duplex?: 'half' } = { method, headers, redirect: this.options.redirect };
    this.options.onRequest?.();
    let sent: Promise<void> | null = null;
    if (request.body !== undefined) {
      if (Buffer.isBuffer(request.body)) {
        init.body = request.body;
      } else {
        const body = request.body;
        sent = new Promise((resolve) => body.once('end', resolve).once('error', resolve).once('close', resolve));
        init.body = Readable.toWeb(body) as ReadableStream<Uint8Array>;
        init.duplex = 'half';
      }
    }
    return this.fetchWithTimeout(url, init, sent);
  }

  private async fetchToken(challenge: Record<string, string>, asked: readonly string[], key: string): Promise<void> {
    const tokenUrl = new URL(challenge.realm ?? '');
    if (challenge.service) tokenUrl.searchParams.set('service', challenge.service);
    const scopes = new Set([...(challenge.scope ?? '').split(' '), ...asked].filter((scope) => scope !== ''));
    for (const scope of scopes) tokenUrl.searchParams.append('scope', scope);
    const scope = [...scopes].join(' ');
    const headers: Record<string, string> = { 'User-Agent': this.options.userAgent };
    const credentials = this.options.credentials;
    if (credentials?.kind === 'basic') {
      headers.Authorization = basicHeader(credentials.username, credentials.password);
      tokenUrl.searchParams.set('account', credentials.username);
    }
    const { response } = await this.fetchWithTimeout(tokenUrl.toString(), { method: 'GET', headers }, null);
    if (!response.ok) {
      discard(response);
      throw new RemoteTokenError(response.status, scope, `its token service answered ${response.status} for ${scope}`);
    }
    const reply = (await response.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof reply.token === 'string' ? reply.token : typeof reply.access_token === 'string' ? reply.access_token : '';
    if (token === '') throw new RemoteTokenError(0, scope, 'its token service answered without a token');
    // The specification's default lifetime is 60 s; renewed a little early.
    const lifetimeMs = (typeof reply.expires_in === 'number' && reply.expires_in > 0 ? reply.expires_in : 60) * 1000;
    this.tokens.set(key, { token, expiresAt: this.options.clock.now() + Math.max(0, lifetimeMs - 10_000) });
  }

  /** fetch, aborted when no answer comes within the timeout of the request (and its body, `sent`) going out. */
  private async fetchWithTimeout(url: string, init: RequestInit, sent: Promise<void> | null): Promise<RemoteReply> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let answered = false;
    const startTimer = () => {
      if (!answered) timer = setTimeout(() => controller.abort(new Error(`no answer within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
    };
    if (sent) void sent.then(startTimer);
    else startTimer();
    try {
      const response = await fetch(url, { ...init, signal: controller.signal });
      return { response, cancel: (reason) => controller.abort(reason) };
    } catch (error) {
      throw new RemoteUnreachableError(describeFetchError(error, controller.signal));
    } finally {
      answered = true;
      clearTimeout(timer);
    }
  }
}

/** Drops an answer's body unread. */
export function discard(response: Response): void {
  response.body?.cancel().catch(() => {});
}

function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

function describeFetchError(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) return signal.reason instanceof Error ? signal.reason.message : 'timed out';
  // undici's 'fetch failed' hides the reason in its cause: 'getaddrinfo ENOTFOUND host', 'connect ECONNREFUSED …'.
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.message || cause?.code || (error as Error).message;
}
