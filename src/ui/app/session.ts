/**
 * The browser's side of the registry's auth, as any Docker client does it: a request without
 * credentials, a 401 naming what it needs, a token for exactly that, the request again.
 * - token mode: one login (POST /auth/token, grant_type=password, offline) gives a refresh token;
 *   scoped access tokens (minutes) are asked for with it. Both live in this page's memory only:
 *   nothing is written to the browser's storage, and the password is dropped after the login.
 * - htpasswd mode: the Basic header is held in memory for the page's life.
 * - auth off: nothing to do.
 */

import { parseChallenge } from '../../auth/challenge.js';

export type AuthMode = 'none' | 'token' | 'basic';

interface AccessClaim {
  type: string;
  name: string;
  actions: string[];
}

interface HeldToken {
  token: string;
  expiresAt: number;
  access: AccessClaim[];
}

function claimsOf(token: string): { access?: AccessClaim[] } {
  try {
    const part = token.split('.')[1] ?? '';
    return JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as { access?: AccessClaim[] };
  } catch {
    return {};
  }
}

/** An error answer of the registry, with the OCI error code when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function errorOf(response: Response): Promise<ApiError> {
  let code = `HTTP_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { errors?: Array<{ code?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first?.code) code = first.code;
    if (first?.message) message = first.message;
  } catch {
    // Not an error envelope: the status says it.
  }
  return new ApiError(response.status, code, message);
}

export class Session {
  mode: AuthMode = 'none';
  user: string | null = null;
  private realm = '';
  private service = '';
  private refreshToken: string | null = null;
  private basicHeader: string | null = null;
  private readonly tokens = new Map<string, HeldToken>();
  /** The scope each path was last challenged for, so its next request carries the token at once. */
  private readonly scopeOfPath = new Map<string, string>();

  /** Whether the registry needs a login: GET /v2/ without credentials. */
  async probe(): Promise<'open' | 'login'> {
    const response = await fetch('/v2/', { credentials: 'omit' });
    if (response.ok) {
      this.mode = 'none';
      return 'open';
    }
    const challenge = parseChallenge(response.headers.get('www-authenticate'));
    if (response.status !== 401 || !challenge) throw await errorOf(response);
    if (challenge.scheme === 'bearer') {
      this.mode = 'token';
      this.realm = challenge.params.realm ?? '/auth/token';
      this.service = challenge.params.service ?? '';
    } else {
      this.mode = 'basic';
    }
    return 'login';
  }

  get signedIn(): boolean {
    return this.mode === 'none' || this.refreshToken !== null || this.basicHeader !== null;
  }

  async login(username: string, password: string): Promise<void> {
    if (this.mode === 'basic') {
      const header = `Basic ${btoa(unescape(encodeURIComponent(`${username}:${password}`)))}`;
      const response = await fetch('/v2/', { headers: { Authorization: header }, credentials: 'omit' });
      if (!response.ok) throw response.status === 401 ? new ApiError(401, 'UNAUTHORIZED', 'Wrong user name or password.') : await errorOf(response);
      this.basicHeader = header;
      this.user = username;
      return;
    }
    const form = new URLSearchParams({ grant_type: 'password', username, password, service: this.service, access_type: 'offline', client_id: 'registry-ui' });
    const response = await fetch(this.realm, { method: 'POST', body: form, credentials: 'omit' });
    if (!response.ok) throw response.status === 401 ? new ApiError(401, 'UNAUTHORIZED', 'Wrong user name or password.') : await errorOf(response);
    const body = (await response.json()) as { refresh_token?: string };
    if (!body.refresh_token) throw new ApiError(500, 'UNKNOWN', 'The token service gave no refresh token.');
    this.refreshToken = body.refresh_token;
    this.user = username;
  }

  signOut(): void {
    this.refreshToken = null;
    this.basicHeader = null;
    this.user = null;
    this.tokens.clear();
    this.scopeOfPath.clear();
  }

  /** A token for these scopes (space-separated, as a challenge names them), asked for with the refresh token. */
  private async tokenFor(scope: string): Promise<HeldToken> {
    const held = this.tokens.get(scope);
    if (held && held.expiresAt > Date.now()) return held;
    if (!this.refreshToken) throw new ApiError(401, 'UNAUTHORIZED', 'Sign in to see this.');
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.refreshToken, service: this.service, client_id: 'registry-ui' });
    for (const one of scope.split(' ').filter(Boolean)) form.append('scope', one);
    const response = await fetch(this.realm, { method: 'POST', body: form, credentials: 'omit' });
    if (!response.ok) throw await errorOf(response);
    const body = (await response.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token ?? '';
    const lifetime = (body.expires_in ?? 60) * 1000;
    const fresh = { token, expiresAt: Date.now() + Math.max(5_000, lifetime - 15_000), access: claimsOf(token).access ?? [] };
    this.tokens.set(scope, fresh);
    return fresh;
  }

  private async authorization(path: string): Promise<string | null> {
    if (this.mode === 'basic') return this.basicHeader;
    if (this.mode !== 'token') return null;
    const scope = this.scopeOfPath.get(path);
    return scope ? `Bearer ${(await this.tokenFor(scope)).token}` : null;
  }

  /** A request to the registry with the credentials it asks for; an error answer throws ApiError. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const send = async () => {
      const headers = new Headers(init.headers);
      const authorization = await this.authorization(path);
      if (authorization) headers.set('Authorization', authorization);
      return fetch(path, { ...init, headers, credentials: 'omit' });
    };
    let response = await send();
    if (response.status === 401 && this.mode === 'token') {
      const challenge = parseChallenge(response.headers.get('www-authenticate'));
      const scope = challenge?.params.scope;
      if (scope && this.refreshToken) {
        this.scopeOfPath.set(path, scope);
        response = await send();
      }
    }
    if (!response.ok) throw await errorOf(response);
    return response;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<{ body: T; response: Response }> {
    const response = await this.request(path, init);
    return { body: (await response.json()) as T, response };
  }

  /**
   * What this account may do, read from the access a token for it carries (the token service grants
   * only what the policy allows). With auth off everything; with htpasswd the registry decides at
   * the request, so the buttons show and a refusal is reported.
   */
  async may(type: 'repository' | 'registry', name: string, actions: string[]): Promise<Set<string>> {
    if (this.mode !== 'token') return new Set(actions);
    try {
      const held = await this.tokenFor(`${type}:${name}:${actions.join(',')}`);
      const granted = held.access.filter((entry) => entry.type === type && entry.name === name).flatMap((entry) => entry.actions);
      return new Set(granted.includes('*') ? actions : granted);
    } catch {
      return new Set();
    }
  }
}
