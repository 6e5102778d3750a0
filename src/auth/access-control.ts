import { createHash } from 'node:crypto';
import { systemClock, type Clock } from '../clock.js';
import { RegistryError } from '../oci/errors.js';
import type { AccountDirectory } from './accounts.js';
import type { Accounts } from './account-files.js';
import { grantFor } from './grants.js';
import { accountOf, anonymous, type Principal } from './policy.js';
import { actionsCover, formatScope, type AccessEntry } from './scopes.js';
import type { LoginThrottle } from './throttle.js';
import { TokenError, type TokenVerifier } from './tokens.js';

/** What a request proved: who is asking, and a way to ask what else it may do (a mount's source). */
export interface RequestGrant {
  /** The account name ('' for anonymous). */
  account: string;
  /** How the account was proven: a bearer token, HTTP Basic, or nothing (anonymous, or auth off). */
  method: 'token' | 'basic' | 'none';
  /** Auth is off: everything is allowed, even a mount that names no source repository. */
  unrestricted: boolean;
  /** Whether the request's credentials grant the action (for a token: what the token carries). */
  allows(type: string, name: string, action: string): boolean;
  /**
   * Whether the account may pull the repository under the access rules in force: what the
   * credentials grant, or what the policy grants the account when this registry issued its token.
   * For narrowing what a report shows, never for letting a request through.
   */
  mayPull(repository: string): boolean;
}

/** Access a request needs: any one of these entries, each with all its actions; empty: nothing (anonymous too); null: only a valid identity. */
export type NeededAccess = readonly AccessEntry[] | null;

export interface AccessControl {
  /**
   * Checks a request's Authorization header for the access it needs (null: only a valid identity, as
   * for `GET /v2/`). `alsoAsk` is access the request can use but does not need (a mount's source):
   * a challenge names it beside the needed scope, so that a client following the challenge asks for it.
   */
  authorize(request: { authorization: string | undefined; address: string; realm: string }, needed: NeededAccess, alsoAsk?: AccessEntry[]): Promise<RequestGrant>;
}

/** Auth off: everyone may do everything. */
export const openAccess: AccessControl = {
  authorize: async () => ({ account: '', method: 'none', unrestricted: true, allows: () => true, mayPull: () => true }),
};

/**
 * A refusal of proven credentials: 403 DENIED naming the account and what it lacks, which docker and
 * podman print ("denied: bob is not granted repository:team-a/api:push"); the request log names the
 * account and the reason from it.
 */
export class AccessDeniedError extends RegistryError {
  constructor(
    readonly account: string,
    readonly missing: AccessEntry[],
  ) {
    const who = account === '' ? 'anonymous' : account;
    super('DENIED', {
      message: missing.length > 0 ? `${who} is not granted ${missing.map(formatScope).join(' nor ')}` : `${who} is not allowed here`,
      detail: { account: who, missing },
    });
  }
}

/** What of each needed alternative the credentials do not grant. */
function missingAccess(needed: NeededAccess, allows: RequestGrant['allows']): AccessEntry[] {
  return (needed ?? []).map((entry) => ({ ...entry, actions: entry.actions.filter((action) => !allows(entry.type, entry.name, action)) }));
}

function permits(needed: NeededAccess, allows: RequestGrant['allows']): boolean {
  return needed === null || needed.length === 0 || needed.some((entry) => entry.actions.every((action) => allows(entry.type, entry.name, action)));
}

function policyAllowsPull(accounts: Accounts, principal: Principal, repository: string): boolean {
  return grantFor(accounts, principal, { type: 'repository', name: repository, actions: ['pull'] }).actions.length > 0;
}

function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** Credentials of an HTTP Basic header, or undefined when it is not one. */
export function parseBasic(authorization: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Docker token auth on the registry side: a Bearer JWT from the token service must carry the needed
 * actions for the resource. No or a bad token → 401 with a challenge naming the realm, service and
 * scope; a token granting less than needed for this resource → 403 DENIED; a token for other
 * resources → 401 `insufficient_scope`, so the client fetches one for this scope.
 */
export class TokenAccessControl implements AccessControl {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly service: string,
    /** The policy the built-in token service grants by (null: tokens of an external issuer only). */
    private readonly accounts: { readonly current: Accounts } | null = null,
  ) {}

  /** The scope parameter lists every scope, separated by spaces, as Distribution writes it. */
  private challenge(realm: string, needed: NeededAccess, alsoAsk: AccessEntry[], error?: string): RegistryError {
    let header = `Bearer realm=${quoted(realm)},service=${quoted(this.service)}`;
    const scopes = [...(needed ?? []), ...alsoAsk];
    if (scopes.length > 0) header += `,scope=${quoted(scopes.map(formatScope).join(' '))}`;
    if (error) header += `,error=${quoted(error)}`;
    return new RegistryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': header }, ...(needed ? { detail: needed } : {}) });
  }

  /** Whether the policy lets the token's account pull, when this registry's own service issued the token. */
  private policyLetsPull(account: string, repository: string): boolean {
    const accounts = this.accounts?.current;
    const principal = account === '' ? anonymous : accounts?.directory.principalOf(account);
    return accounts !== undefined && principal !== null && principal !== undefined && policyAllowsPull(accounts, principal, repository);
  }

  async authorize(request: { authorization: string | undefined; realm: string }, needed: NeededAccess, alsoAsk: AccessEntry[] = []): Promise<RequestGrant> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.authorization ?? '');
    if (!match) throw this.challenge(request.realm, needed, alsoAsk);
    let access: AccessEntry[];
    let account: string;
    try {
      const claims = await this.verifier.verifyAccess(match[1]!);
      access = claims.access;
      account = typeof claims.sub === 'string' ? claims.sub : '';
    } catch (error) {
      if (error instanceof TokenError) throw this.challenge(request.realm, needed, alsoAsk, 'invalid_token');
      throw error;
    }
    // A token of an account disabled since it was issued is refused at once, not when it expires.
    if (this.accounts?.current.directory.refuses(account)) throw this.challenge(request.realm, needed, alsoAsk, 'invalid_token');
    const allows = (type: string, name: string, action: string) =>
      access.some((entry) => entry?.type === type && entry.name === name && Array.isArray(entry.actions) && actionsCover(entry.actions, action));
    const mayPull = (repository: string) => allows('repository', repository, 'pull') || this.policyLetsPull(account, repository);
    const grantObject: RequestGrant = { account, method: 'token', unrestricted: false, allows, mayPull };
    if (permits(needed, allows)) return grantObject;
    const forThisResource = access.some((entry) => needed!.some((one) => entry?.type === one.type && entry.name === one.name));
    if (forThisResource) throw new AccessDeniedError(account, missingAccess(needed, allows));
    throw this.challenge(request.realm, needed, alsoAsk, 'insufficient_scope');
  }
}

/** The login check shared by Basic auth and the token service: throttled, and null for wrong credentials. */
export async function checkLogin(
  directory: AccountDirectory,
  throttle: LoginThrottle,
  address: string,
  credentials: { username: string; password: string },
): Promise<Principal | null> {
  const wait = throttle.retryAfter(address, credentials.username);
  if (wait.seconds > 0) {
    throw new RegistryError('TOOMANYREQUESTS', { message: `${wait.reason}; try again in ${wait.seconds} s`, headers: { 'Retry-After': String(wait.seconds) } });
  }
  const principal = await directory.authenticate(credentials.username, credentials.password);
  if (principal) throttle.succeeded(address, credentials.username);
  else throttle.failed(address, credentials.username);
  return principal;
}

/**
 * HTTP Basic auth without tokens (Distribution's htpasswd mode), with the access policy applied.
 * Credentials proven lately are remembered for a minute (by a SHA-256 of them), so that a push of
 * hundreds of requests does not pay a bcrypt comparison for each.
 */
export class BasicAccessControl implements AccessControl {
  private readonly proven = new Map<string, { principal: Principal; until: number; generation: number }>();

  constructor(
    private readonly accounts: { readonly current: Accounts },
    private readonly throttle: LoginThrottle,
    private readonly realm: string,
    private readonly clock: Clock = systemClock,
  ) {}

  async authorize(request: { authorization: string | undefined; address: string }, needed: NeededAccess): Promise<RequestGrant> {
    const challenge = () => new RegistryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': `Basic realm=${quoted(this.realm)}` } });
    const accounts = this.accounts.current;
    const credentials = parseBasic(request.authorization);
    let principal: Principal = anonymous;
    if (credentials) {
      const proven = await this.login(accounts, request.address, credentials);
      if (!proven) throw challenge();
      principal = proven;
    }
    const allows = (type: string, name: string, action: string) => grantFor(accounts, principal, { type, name, actions: [action] }).actions.length > 0;
    const mayPull = (repository: string) => policyAllowsPull(accounts, principal, repository);
    const result: RequestGrant = { account: accountOf(principal), method: principal.kind === 'anonymous' ? 'none' : 'basic', unrestricted: false, allows, mayPull };
    const permitted = needed ? permits(needed, allows) : principal.kind !== 'anonymous';
    if (permitted) return result;
    if (principal.kind === 'anonymous') throw challenge();
    throw new AccessDeniedError(result.account, missingAccess(needed, allows));
  }

  private async login(accounts: Accounts, address: string, credentials: { username: string; password: string }): Promise<Principal | null> {
    const key = createHash('sha256').update(`${credentials.username}\0${credentials.password}`).digest('base64');
    const now = this.clock.now();
    const remembered = this.proven.get(key);
    // Credentials proven with files since reloaded are checked again: the account may be gone.
    if (remembered && remembered.until > now && remembered.generation === accounts.generation) return remembered.principal;
    const principal = await checkLogin(accounts.directory, this.throttle, address, credentials);
    if (principal) {
      if (this.proven.size >= 1000) this.proven.clear();
      this.proven.set(key, { principal, until: now + 60_000, generation: accounts.generation });
    }
    return principal;
  }
}
