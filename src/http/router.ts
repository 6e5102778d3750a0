import Router from '@koa/router';
import type { AccessControl } from '../auth/access-control.js';
import type { AccessEntry } from '../auth/scopes.js';
import type { MirrorAddressing } from '../mirror/addressing.js';
import { RegistryError } from '../oci/errors.js';
import { validateRepositoryName } from '../oci/names.js';
import { queryParameter } from './request-parts.js';
import type { RegistryContext, RegistryState } from './context.js';
import type { Route, RouteAccess } from './routes.js';

/** The scope that reads the audit log: a policy rule's `audit: true` grants it. */
export const auditAccess: AccessEntry = { type: 'registry', name: 'audit', actions: ['*'] };

const repositoryActions: Record<'pull' | 'push' | 'delete', string[]> = { pull: ['pull'], push: ['pull', 'push'], delete: ['delete'] };

function neededAccess(access: Exclude<RouteAccess, 'public'>, repository: string): AccessEntry | null {
  if (access === 'authenticated') return null;
  if (access === 'catalog') return { type: 'registry', name: 'catalog', actions: ['*'] };
  if (access === 'audit') return auditAccess;
  return { type: 'repository', name: repository, actions: repositoryActions[access] };
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
      const [, name = '', reference = ''] = route.pattern.exec(ctx.path) ?? [];
      const repository = route.scoped ? validateRepositoryName(name) : '';
      if (repository) ctx.state.repository = repository;
      if (route.access !== 'public') {
        const realm = auth.tokenRealm !== '' ? auth.tokenRealm : `${ctx.protocol}://${ctx.host}/auth/token`;
        const request = { authorization: ctx.get('authorization') || undefined, address: ctx.ip, realm };
        let grant;
        try {
          grant = await auth.access.authorize(request, neededAccess(route.access, repository), route.alsoAsk?.(ctx));
        } catch (error) {
          if (error instanceof RegistryError && (error.code === 'UNAUTHORIZED' || error.code === 'DENIED')) auth.onAuth?.(error.code === 'DENIED' ? 'denied' : 'unauthorized');
          throw error;
        }
        auth.onAuth?.('granted');
        ctx.state.grant = grant;
        if (grant.account !== '') ctx.state.user = grant.account;
      }
      const target = repository && mirror ? mirror.resolve(repository, queryParameter(ctx, 'ns')) : null;
      if (target && (route.access === 'push' || route.access === 'delete') && !target.upstream.allowPush && !route.writesMirrorCache) {
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
