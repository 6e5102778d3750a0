import { RegistryError } from '../oci/errors.js';
import { checkLogin } from './access-control.js';
import type { Accounts } from './account-files.js';
import { grantFor } from './grants.js';
import { accountOf, anonymous, type Principal } from './policy.js';
import { parseScopes } from './scopes.js';
import type { LoginThrottle } from './throttle.js';
import { TokenError, type TokenIssuer, type TokenVerifier } from './tokens.js';

export interface TokenRequest {
  address: string;
  service: string | undefined;
  /** Raw `scope` values, each possibly holding several space-separated scopes. */
  scopes: string[];
  /** A refresh token is wanted too (`offline_token=true`, or `access_type=offline` in the OAuth2 form). */
  offline: boolean;
  /** Basic credentials (GET) or grant_type=password (POST); neither means an anonymous token. */
  credentials?: { username: string; password: string };
  /** grant_type=refresh_token (POST). */
  refreshToken?: string;
}

export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
}

/**
 * The built-in token service of the Docker token spec: proves who asks (password, robot secret,
 * refresh token, or nobody), grants the part of each asked scope the policy allows, and signs it.
 */
export class TokenService {
  constructor(
    private readonly deps: {
      accounts: { readonly current: Accounts };
      throttle: LoginThrottle;
      issuer: TokenIssuer;
      verifier: TokenVerifier;
      service: string;
      realm: string;
    },
  ) {}

  private refused(message: string): RegistryError {
    return new RegistryError('UNAUTHORIZED', { message, headers: { 'WWW-Authenticate': `Basic realm="${this.deps.realm}"` } });
  }

  private async principalOf(request: TokenRequest, { directory }: Accounts): Promise<Principal> {
    if (request.refreshToken !== undefined) {
      let subject: string;
      try {
        subject = await this.deps.verifier.verifyRefresh(request.refreshToken);
      } catch (error) {
        if (error instanceof TokenError) throw this.refused('invalid refresh token');
        throw error;
      }
      const principal = directory.principalOf(subject);
      if (!principal) throw this.refused('the account of this refresh token no longer exists');
      return principal;
    }
    if (!request.credentials) return anonymous;
    const principal = await checkLogin(directory, this.deps.throttle, request.address, request.credentials);
    if (!principal) throw this.refused('wrong user name or password');
    return principal;
  }

  async issue(request: TokenRequest): Promise<{ response: TokenResponse; account: string }> {
    if (request.service !== undefined && request.service !== this.deps.service) {
      throw new RegistryError('REQUEST_INVALID', { message: `this token service serves ${JSON.stringify(this.deps.service)}` });
    }
    // One request is judged by one version of the files, even if they are reloaded meanwhile.
    const accounts = this.deps.accounts.current;
    const principal = await this.principalOf(request, accounts);
    const account = accountOf(principal);
    const access = parseScopes(request.scopes).map((scope) => grantFor(accounts, principal, scope));
    const issued = this.deps.issuer.accessToken(account, this.deps.service, access);
    const response: TokenResponse = {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt.toISOString(),
    };
    if (request.offline && principal.kind !== 'anonymous') {
      response.refresh_token = request.refreshToken ?? this.deps.issuer.refreshToken(account, this.deps.service).token;
    }
    return { response, account };
  }
}
