import Router from '@koa/router';
import { validateRepositoryName } from '../oci/names.js';
import type { RegistryContext, RegistryState } from './context.js';
import type { Route } from './routes.js';

/** Mounts the route table on a router: names are validated before any handler (and any store) runs. */
export function buildRouter(routes: Route[]): Router<RegistryState> {
  const router = new Router<RegistryState>();
  for (const route of routes) {
    const method = route.method.toLowerCase() as 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete';
    router[method](route.name, route.pattern, async (ctx: RegistryContext) => {
      ctx.state.route = route.name;
      const [, name = '', reference = ''] = route.pattern.exec(ctx.path) ?? [];
      const repository = route.scoped ? validateRepositoryName(name) : '';
      if (repository) ctx.state.repository = repository;
      await route.handle(ctx, { repository, reference });
    });
  }
  return router;
}
