import Router from '@koa/router';
import { AccessDeniedError, type AccessControl } from '../auth/access-control.js';
import { adminAccess, auditAccess, catalogAccess, mirrorImportAccess, operatorAccess, type AccessEntry } from '../auth/scopes.js';
import type { MirrorAddressing, MirrorTarget } from '../mirror/addressing.js';
import { RegistryError } from '../oci/errors.js';
import { validateRepositoryName } from '../oci/names.js';
import { queryParameter } from './request-parts.js';
import type { RegistryContext, RegistryState } from './context.js';
import type { Route, RouteAccess } from './route-types.js';

const repositoryActions: Record<'pull' | 'push' | 'delete', string[]> = { pull: ['pull'], push: ['pull', 'push'], delete: ['delete'] };

/**
 * What a route needs, as alternatives (any one suffices). Writing into a mirror cache needs push on
 * the mirrored name in its prefix form (`dockerhub/team-a/app`) or the mirror-import grant: never a
 * grant on the local repository that happens to bear the upstream's name.
 */
function neededAccess(access: Exclude<RouteAccess, 'public'>, repository: string, target: MirrorTarget | null): AccessEntry[] | null {
  switch (access) {
    case 'narrowed':
      return [];
    case 'authenticated':
      return null;
    case 'catalog':
      return [catalogAccess];
    case 'audit':
      return [auditAccess];
    case 'operator':
      return [operatorAccess];
    case 'admin':
      return [adminAccess];
    case 'catalog-or-operator':
      return [catalogAccess, operatorAccess];
    case 'mirror-import':
      return [...(target ? [{ type: 'repository', name: `${target.upstream.prefix}/${target.repository}`, actions: repositoryActions.push }] : []), mirrorImportAccess];
    default:
      return [{ type: 'repository', name: repository, actions: repositoryActions[access] }];
  }
}

/** A path of an earlier form that another route of its method also reads: which one was meant cannot be known. */
function refuseAmbiguous(routes: readonly Route[], route: Route, path: string): void {
  const alsoRead = routes.find((other) => other !== route && other.legacy && other.method === route.method && other.pattern.test(path));
  if (!alsoRead) return;
  throw new RegistryError('NAME_INVALID', {
    message: `${path.slice(0, 300)} can be read as ${route.name} or as ${alsoRead.name}: put /-/ after the repository name (/api/v1/repositories/<name>/-/tags/…)`,
    detail: { routes: [route.name, alsoRead.name] },
  });
}

export interface RouterAuth {
  access: AccessControl;
  /** The token endpoint for challenges; '' derives it from the request. */
  tokenRealm: string;
  /** Told each check's outcome (metrics). */
  onAuth?: (outcome: 'granted' | 'unauthorized' | 'denied') => void;
}

/**
 * Mounts the route table on a router: names are validated, then access is checked, then a write into
 * a mirrored name is refused (unless the upstream allows local pushes), before any handler (and any
 * store) runs.
 */
export function buildRouter(routes: Route[], auth: RouterAuth, mirror: MirrorAddressing | null = null): Router<RegistryState> {
  const router = new Router<RegistryState>();
  for (const route of routes) {
    const method = route.method.toLowerCase() as 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete';
    router[method](route.name, route.pattern, async (ctx: RegistryContext) => {
      ctx.state.route = route.name;
      if (route.legacy) refuseAmbiguous(routes, route, ctx.path);
      const [, name = '', reference = ''] = route.pattern.exec(ctx.path) ?? [];
      const repository = route.scoped ? validateRepositoryName(name) : '';
      if (repository) ctx.state.repository = repository;
      const access = typeof route.access === 'function' ? route.access(ctx) : route.access;
      // A name that no upstream serves is refused after auth, so that it tells nobody unknown about the configuration.
      let target: MirrorTarget | null = null;
      let unresolved: unknown = null;
      try {
        target = repository && mirror ? mirror.resolve(repository, queryParameter(ctx, 'ns')) : null;
      } catch (error) {
        unresolved = error;
      }
      if (access !== 'public') {
        const realm = auth.tokenRealm !== '' ? auth.tokenRealm : `${ctx.protocol}://${ctx.host}/auth/token`;
        const request = { authorization: ctx.get('authorization') || undefined, address: ctx.ip, realm };
        let grant;
        try {
          grant = await auth.access.authorize(request, neededAccess(access, repository, target), route.alsoAsk?.(ctx));
        } catch (error) {
          if (error instanceof AccessDeniedError && error.account !== '') ctx.state.user = error.account;
          if (error instanceof RegistryError && (error.code === 'UNAUTHORIZED' || error.code === 'DENIED')) auth.onAuth?.(error.code === 'DENIED' ? 'denied' : 'unauthorized');
          throw error;
        }
        auth.onAuth?.('granted');
        ctx.state.grant = grant;
        if (grant.account !== '') ctx.state.user = grant.account;
      }
      if (unresolved) throw unresolved;
      if (target && (access === 'push' || access === 'delete') && !target.upstream.allowPush) {
        throw new RegistryError('UNSUPPORTED', {
          message: `${repository} mirrors ${target.upstream.name}/${target.repository}; it does not accept pushes or deletes (mirror.upstreams.${target.upstream.name}.allowpush)`,
          detail: { name: repository, upstream: target.upstream.name },
        });
      }
      await route.handle(ctx, { repository, reference, mirror: target });
    });
  }
  return router;
}
