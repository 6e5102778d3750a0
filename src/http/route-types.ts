import type { AccessEntry } from '../auth/scopes.js';
import type { MirrorTarget } from '../mirror/addressing.js';
import type { RegistryContext } from './context.js';

/** The shape of the route table: what each route needs and what its handler is given (routes.ts holds the table). */

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * What a route needs when auth is on: nothing (the token endpoint), valid credentials or none at all
 * (`narrowed`: the handler shows what the caller's grants reach), a valid identity (`GET /v2/`),
 * the catalog, the audit log, the operator grant (or either of those two), a system admin, a write into the mirror
 * cache of the route's upstream repository, or actions on the route's repository (push also needs
 * pull, as in Distribution).
 */
export type RouteAccess = 'public' | 'narrowed' | 'authenticated' | 'catalog' | 'audit' | 'operator' | 'admin' | 'catalog-or-operator' | 'mirror-import' | 'pull' | 'push' | 'delete';

/** Path parts a route captures: the repository name (validated) and the last segment, raw. */
export interface RouteParams {
  repository: string;
  reference: string;
  /** The upstream repository the name addresses, when it is a mirrored one. */
  mirror: MirrorTarget | null;
}

export interface Route {
  /** Appears in the request log. */
  name: string;
  method: HttpMethod;
  /** Matched against the raw path; group 1 is the repository name, group 2 the reference. */
  pattern: RegExp;
  /** Whether group 1 is a repository name (validated before the handler runs). */
  scoped: boolean;
  /**
   * An earlier path form kept for the clients written against it: served only when no other such
   * route of the method reads the path too; else 400 pointing to the unambiguous form.
   */
  legacy?: boolean;
  /** Who may call it; a function where it depends on the request (a dry run or a real one). */
  access: RouteAccess | ((ctx: RegistryContext) => RouteAccess);
  /** Access a 401 challenge names beside `access`, which the handler uses when granted (a mount's source). */
  alsoAsk?(ctx: RegistryContext): AccessEntry[];
  handle(ctx: RegistryContext, params: RouteParams): Promise<void>;
}
