import { isProjectRole, type ProjectService } from '../../auth/project-service.js';
import { invalidParameter as invalid } from '../../oci/errors.js';
import type { RegistryContext } from '../context.js';
import { decodeSegment, pageSizeOf, pagination, queryParameter, readJsonObject, requestOrigin, respondEmpty, setNextPageLink } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';

const maxProjectBody = 4096;
const pageSizes = { default: 100, max: 1000 };

/** `"quota": {"storage": bytes}`: bytes, or null for none; undefined when not given. */
function quotaOf(fields: Record<string, unknown>): number | null | undefined {
  if (fields.quota === undefined) return undefined;
  const storage = (fields.quota as { storage?: unknown } | null)?.storage;
  if (typeof fields.quota !== 'object' || fields.quota === null || Object.keys(fields.quota).some((key) => key !== 'storage')) throw invalid('body', 'quota: expected {"storage": bytes}');
  if (storage === null) return null;
  if (typeof storage !== 'number' || !Number.isSafeInteger(storage) || storage < 0) throw invalid('body', 'quota.storage: expected a number of bytes, or null');
  return storage;
}

function publicOf(fields: Record<string, unknown>): boolean | undefined {
  if (fields.public === undefined) return undefined;
  if (typeof fields.public !== 'boolean') throw invalid('body', 'public: expected true or false');
  return fields.public;
}

/** `<project>/members/<account>` of a member's path (`<project>/robots/<robot>` of a robot's). */
function memberOf(params: RouteParams): { project: string; account: string } {
  const [project = '', , account = ''] = params.reference.split('/');
  return { project: decodeSegment(project), account: decodeSegment(account) };
}

/**
 * /api/v1/projects and /api/v1/me. Who may call what is the service's to say (system admins create
 * and delete projects; a project's admins change its settings and members; members, and anyone for
 * a public project, see it): every route needs a signed-in account but the listing and a project's
 * page, which anonymous callers may read for public projects.
 */
export function projectHandlers(projects: ProjectService) {
  const caller = (ctx: RegistryContext) => projects.callerOf(ctx.state.grant);
  return {
    /** GET /api/v1/projects?q=&n=&last=: the projects the caller sees, by name. */
    async list(ctx: RegistryContext): Promise<void> {
      const limit = pageSizeOf(ctx, pageSizes);
      const { last } = pagination(ctx);
      const q = queryParameter(ctx, 'q') || undefined;
      const page = await projects.list(caller(ctx), { limit, ...(last ? { last } : {}), ...(q ? { q } : {}) });
      const lastShown = page.projects.at(-1);
      if (page.more && lastShown) setNextPageLink(ctx, { limit, last: lastShown.name, keep: 'all' });
      ctx.body = { projects: page.projects };
    },

    /** POST /api/v1/projects {"name", "public"?, "quota"?: {"storage": bytes}} → 201. */
    async create(ctx: RegistryContext): Promise<void> {
      const fields = await readJsonObject(ctx, maxProjectBody, ['name', 'public', 'quota'], '{"name": "…", "public"?: false, "quota"?: {"storage": bytes}}');
      if (typeof fields.name !== 'string') throw invalid('body', 'name: expected a string');
      const isPublic = publicOf(fields);
      const quota = quotaOf(fields);
      ctx.body = await projects.create(caller(ctx), { name: fields.name, ...(isPublic !== undefined ? { public: isPublic } : {}), ...(quota !== undefined ? { quotaStorage: quota } : {}) }, requestOrigin(ctx));
      ctx.status = 201;
    },

    async show(ctx: RegistryContext, params: RouteParams): Promise<void> {
      ctx.body = await projects.get(caller(ctx), decodeSegment(params.reference));
    },

    /** PATCH /api/v1/projects/<name> {"public"?, "quota"?}. */
    async change(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const fields = await readJsonObject(ctx, maxProjectBody, ['public', 'quota'], '{"public"?: false, "quota"?: {"storage": bytes}}');
      const isPublic = publicOf(fields);
      const quota = quotaOf(fields);
      ctx.body = await projects.change(caller(ctx), decodeSegment(params.reference), { ...(isPublic !== undefined ? { public: isPublic } : {}), ...(quota !== undefined ? { quotaStorage: quota } : {}) }, requestOrigin(ctx));
    },

    /** DELETE /api/v1/projects/<name>[?force=true] → 204. */
    async remove(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const force = queryParameter(ctx, 'force');
      if (force !== undefined && force !== 'true' && force !== 'false') throw invalid('force', 'expected true or false', force);
      await projects.delete(caller(ctx), decodeSegment(params.reference), force === 'true', requestOrigin(ctx));
      respondEmpty(ctx, 204);
    },

    /** GET /api/v1/projects/<name>/members. */
    async members(ctx: RegistryContext, params: RouteParams): Promise<void> {
      ctx.body = { members: await projects.members(caller(ctx), decodeSegment(params.reference)) };
    },

    /** PUT /api/v1/projects/<name>/members/<account> {"role": guest|developer|maintainer|admin}. */
    async setMember(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const { project, account } = memberOf(params);
      const fields = await readJsonObject(ctx, maxProjectBody, ['role'], '{"role": "guest" | "developer" | "maintainer" | "admin"}');
      if (!isProjectRole(fields.role)) throw invalid('body', 'role: expected guest, developer, maintainer or admin');
      ctx.body = await projects.setMember(caller(ctx), project, account, fields.role, requestOrigin(ctx));
    },

    /** DELETE /api/v1/projects/<name>/members/<account> → 204. */
    async removeMember(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const { project, account } = memberOf(params);
      await projects.removeMember(caller(ctx), project, account, requestOrigin(ctx));
      respondEmpty(ctx, 204);
    },

    /** GET /api/v1/projects/<name>/robots: without secrets. */
    async robots(ctx: RegistryContext, params: RouteParams): Promise<void> {
      ctx.body = { robots: await projects.robots(caller(ctx), decodeSegment(params.reference.split('/')[0] ?? '')) };
    },

    /** POST /api/v1/projects/<name>/robots {"name", "access": [{"repositories", "actions"}], "expiresIn"?} → 201 {"name", "secret", "expiresAt"}. */
    async createRobot(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const project = decodeSegment(params.reference.split('/')[0] ?? '');
      const fields = await readJsonObject(ctx, maxProjectBody, ['name', 'access', 'expiresIn'], '{"name": "…", "access": [{"repositories": [globs], "actions": [pull, push]}], "expiresIn"?: "30d"}');
      if (typeof fields.name !== 'string') throw invalid('body', 'name: expected a string');
      if (fields.expiresIn !== undefined && typeof fields.expiresIn !== 'string') throw invalid('body', 'expiresIn: expected a duration (30d) or never');
      ctx.body = await projects.createRobot(caller(ctx), project, { name: fields.name, access: fields.access, ...(fields.expiresIn !== undefined ? { expiresIn: fields.expiresIn as string } : {}) }, requestOrigin(ctx));
      ctx.status = 201;
    },

    /** PATCH /api/v1/projects/<name>/robots/<robot> {"refresh"?: true, "disabled"?}: with refresh, the new secret, once. */
    async changeRobot(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const { project, account: robot } = memberOf(params);
      const fields = await readJsonObject(ctx, maxProjectBody, ['refresh', 'disabled'], '{"refresh"?: true, "disabled"?: false}');
      if (fields.refresh !== undefined && typeof fields.refresh !== 'boolean') throw invalid('body', 'refresh: expected true or false');
      if (fields.disabled !== undefined && typeof fields.disabled !== 'boolean') throw invalid('body', 'disabled: expected true or false');
      ctx.body = await projects.changeRobot(caller(ctx), project, robot, { ...(fields.refresh !== undefined ? { refresh: fields.refresh as boolean } : {}), ...(fields.disabled !== undefined ? { disabled: fields.disabled as boolean } : {}) }, requestOrigin(ctx));
    },

    /** DELETE /api/v1/projects/<name>/robots/<robot> → 204. */
    async deleteRobot(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const { project, account: robot } = memberOf(params);
      await projects.deleteRobot(caller(ctx), project, robot, requestOrigin(ctx));
      respondEmpty(ctx, 204);
    },

    /** GET /api/v1/me: who the caller is, and its projects and roles. */
    async me(ctx: RegistryContext): Promise<void> {
      ctx.body = projects.me(caller(ctx));
    },
  };
}
