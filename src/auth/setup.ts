import path from 'node:path';
import type { RegistryConfig } from '../config/schema.js';
import { BasicAccessControl, openAccess, TokenAccessControl, type AccessControl } from './access-control.js';
import { AccountDirectory, loadHtpasswd } from './accounts.js';
import { loadCertificateBundle, loadSigningKey } from './keys.js';
import { loadPolicy, openToAccountsPolicy } from './policy.js';
import { LoginThrottle } from './throttle.js';
import { TokenService } from './token-service.js';
import { TokenIssuer, TokenVerifier, type TrustedKeySources } from './tokens.js';

export interface RegistryAuth {
  access: AccessControl;
  /** The built-in token service, when this registry issues tokens. */
  tokens: TokenService | null;
  /** The token endpoint challenges name; '' means /auth/token on this registry as each request reached it. */
  tokenRealm: string;
}

export const noAuth: RegistryAuth = { access: openAccess, tokens: null, tokenRealm: '' };

/** Builds access control (and the token service) from the auth section; reads every file it names now. */
export async function openAuth(config: RegistryConfig): Promise<RegistryAuth> {
  const auth = config.auth;
  if (auth.mode === 'none') return noAuth;
  const policy = auth.policy !== '' ? loadPolicy(auth.policy) : openToAccountsPolicy;
  const directory = new AccountDirectory(policy, auth.htpasswd.path !== '' ? loadHtpasswd(auth.htpasswd.path) : new Map());
  const throttle = new LoginThrottle();
  if (auth.mode === 'htpasswd') {
    return { access: new BasicAccessControl(directory, policy, throttle, auth.htpasswd.realm), tokens: null, tokenRealm: '' };
  }
  const token = auth.token;
  const generatedKeyFile = path.join(config.storage.filesystem.rootdirectory, 'auth', 'token-signing-key.pem');
  const signingKey = token.builtin ? loadSigningKey(token.signingkey, generatedKeyFile, token.algorithm) : undefined;
  const sources: TrustedKeySources = {
    ...(signingKey ? { builtIn: signingKey } : {}),
    ...(token.rootcertbundle !== '' ? { certificates: loadCertificateBundle(token.rootcertbundle) } : {}),
    ...(token.jwks !== '' ? { jwks: token.jwks } : {}),
  };
  const verifier = await TokenVerifier.create(sources, token.issuer, token.service);
  const tokens = signingKey
    ? new TokenService({
        directory,
        policy,
        throttle,
        issuer: new TokenIssuer(signingKey, token.issuer, Math.round(token.expiration / 1000)),
        verifier,
        service: token.service,
        realm: token.service,
      })
    : null;
  return { access: new TokenAccessControl(verifier, token.service), tokens, tokenRealm: token.realm };
}
