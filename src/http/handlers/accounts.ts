import type { AccountPatch, AccountService } from '../../auth/account-service.js';
import { adminAccess } from '../../auth/scopes.js';
import { invalidParameter as invalid, RegistryError } from '../../oci/errors.js';
import type { RegistryContext } from '../context.js';
import { decodeSegment, readJsonObject, requestOrigin, respondEmpty } from '../request-parts.js';
import type { RouteParams } from '../route-types.js';

const maxAccountBody = 4096;

function optionalBoolean(fields: Record<string, unknown>, key: string): boolean | undefined {
  const value = fields[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalid('body', `${key}: expected true or false`);
  return value;
}

/**
 * /api/v1/accounts: the accounts of the metadata database. Creating, listing, deleting and changing
 * another account's flags: system admins (`registry:admin:*`, which no policy rule grants). Changing
 * one's own password: the account itself.
 */
export function accountHandlers(accounts: AccountService) {
  return {
    /** POST /api/v1/accounts {"name", "password", "admin"?} → 201 with the account. */
    async create(ctx: RegistryContext): Promise<void> {
      const fields = await readJsonObject(ctx, maxAccountBody, ['name', 'password', 'admin'], '{"name": "…", "password": "…", "admin"?: false}');
      if (typeof fields.name !== 'string' || typeof fields.password !== 'string') throw invalid('body', 'name and password are strings');
      const admin = optionalBoolean(fields, 'admin');
      ctx.body = await accounts.create({ name: fields.name, password: fields.password, ...(admin !== undefined ? { admin } : {}) }, requestOrigin(ctx));
      ctx.status = 201;
    },

    /** GET /api/v1/accounts: every account, without passwords. */
    async list(ctx: RegistryContext): Promise<void> {
      ctx.body = { accounts: await accounts.list() };
    },

    /** GET /api/v1/accounts/<name>. */
    async show(ctx: RegistryContext, params: RouteParams): Promise<void> {
      ctx.body = await accounts.get(decodeSegment(params.reference));
    },

    /**
     * PATCH /api/v1/accounts/<name> {"password"?, "disabled"?, "admin"?}: a system admin changes any
     * of them; an account changes its own password, nothing else.
     */
    async change(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const name = decodeSegment(params.reference);
      const fields = await readJsonObject(ctx, maxAccountBody, ['password', 'disabled', 'admin'], '{"password"?: "…", "disabled"?: false, "admin"?: false}');
      if (fields.password !== undefined && typeof fields.password !== 'string') throw invalid('body', 'password: expected a string');
      const patch: AccountPatch = {};
      if (typeof fields.password === 'string') patch.password = fields.password;
      const admin = optionalBoolean(fields, 'admin');
      const disabled = optionalBoolean(fields, 'disabled');
      if (admin !== undefined) patch.admin = admin;
      if (disabled !== undefined) patch.disabled = disabled;
      const grant = ctx.state.grant;
      const isAdmin = !grant || grant.allows(adminAccess.type, adminAccess.name, '*');
      const ownPassword = grant?.account === name && admin === undefined && disabled === undefined;
      if (!isAdmin && !ownPassword) {
        throw new RegistryError('DENIED', {
          message: `${grant?.account || 'anonymous'} may change only their own password; the rest needs a system admin (registry:admin:*)`,
          detail: { account: grant?.account ?? '', missing: [adminAccess] },
        });
      }
      ctx.body = await accounts.change(name, patch, requestOrigin(ctx));
    },

    /** DELETE /api/v1/accounts/<name> → 204. */
    async remove(ctx: RegistryContext, params: RouteParams): Promise<void> {
      await accounts.delete(decodeSegment(params.reference), requestOrigin(ctx));
      respondEmpty(ctx, 204);
    },
  };
}
