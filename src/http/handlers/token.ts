import { parseBasic } from '../../auth/access-control.js';
import type { TokenRequest, TokenService } from '../../auth/token-service.js';
import { RegistryError } from '../../oci/errors.js';
import type { RegistryContext } from '../context.js';
import { readSmallBody } from '../request-parts.js';

const maxFormBytes = 64 * 1024;

function all(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function respond(ctx: RegistryContext, tokens: TokenService, request: TokenRequest): Promise<void> {
  const { response, account } = await tokens.issue(request);
  ctx.state.user = account;
  ctx.set('Cache-Control', 'no-store');
  ctx.status = 200;
  ctx.body = response;
}

/** The built-in token service: `GET /auth/token` (Basic credentials) and `POST /auth/token` (the OAuth2 form). */
export function tokenHandlers(tokens: TokenService) {
  return {
    async get(ctx: RegistryContext): Promise<void> {
      const credentials = parseBasic(ctx.get('authorization') || undefined);
      if (ctx.get('authorization') && !credentials) throw new RegistryError('UNAUTHORIZED', { message: 'the token service takes HTTP Basic credentials' });
      await respond(ctx, tokens, {
        address: ctx.ip,
        service: one(ctx.query.service),
        scopes: all(ctx.query.scope),
        offline: one(ctx.query.offline_token) === 'true',
        ...(credentials ? { credentials } : {}),
      });
    },

    async post(ctx: RegistryContext): Promise<void> {
      if (!ctx.is('application/x-www-form-urlencoded')) {
        throw new RegistryError('REQUEST_INVALID', { message: 'POST /auth/token takes an application/x-www-form-urlencoded form' });
      }
      const body = await readSmallBody(ctx, maxFormBytes, () => new RegistryError('TOO_LARGE', { message: 'token request form too large' }));
      const form = new URLSearchParams(body.toString('utf8'));
      const grantType = form.get('grant_type');
      const base = {
        address: ctx.ip,
        service: form.get('service') ?? undefined,
        scopes: form.getAll('scope'),
        offline: form.get('access_type') === 'offline',
      };
      if (grantType === 'password') {
        const username = form.get('username');
        const password = form.get('password');
        if (!username || password === null) throw new RegistryError('REQUEST_INVALID', { message: 'grant_type=password needs username and password' });
        return respond(ctx, tokens, { ...base, credentials: { username, password } });
      }
      if (grantType === 'refresh_token') {
        const refreshToken = form.get('refresh_token');
        if (!refreshToken) throw new RegistryError('REQUEST_INVALID', { message: 'grant_type=refresh_token needs refresh_token' });
        return respond(ctx, tokens, { ...base, refreshToken });
      }
      throw new RegistryError('REQUEST_INVALID', { message: 'grant_type must be password or refresh_token' });
    },
  };
}
