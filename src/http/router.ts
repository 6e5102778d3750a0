import Router from '@koa/router';
import type { AccessControl } from '../auth/access-control.js';
import type { AccessEntry } from '../auth/scopes.js';
import { validateRepositoryName } from '../oci/names.js';
import type { RegistryContext, RegistryState } from './context.js';
import type { Route, RouteAccess } from './routes.js';

const repositoryActions: Record<'pull' | 'push' | 'delete', string[]> = { pull: ['pull'], push: ['pull', 'push'], delete: ['delete'] };

function neededAccess(access: Exclude<RouteAccess, 'public'>, repository: string): AccessEntry | null {
  if (access === 'authenticated') return null;
  if (access === 'catalog') return { type: 'registry', name: 'catalog', actions: ['*'] };
  return { type: 'repository', name: repository, actions: repositoryActions[access] };
}

export interface RouterAuth {
  access: AccessControl;
  /** The token endpoint for challenges; '' derives it from the request. */
  tokenRealm: string;
}

/**
 * Mounts the route table on a router: names are validated, then access is checked, before any handler
 * (and any store) runs.
 */
export function buildRouter(routes: Route[], auth: RouterAuth): Router<RegistryState> {
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
        const grant = await auth.access.authorize(request, neededAccess(route.access, repository));
        ctx.state.grant = grant;
        if (grant.account !== '') ctx.state.user = grant.account;
      }
      await route.handle(ctx, { repository, reference });
    });
  }
  return router;
}
