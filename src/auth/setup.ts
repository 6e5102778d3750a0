import path from 'node:path';
import type { RegistryConfig } from '../config/schema.js';
import { BasicAccessControl, openAccess, TokenAccessControl, type AccessControl } from './access-control.js';
import { AccountFiles } from './account-files.js';
import { DatabaseAccounts } from './database-accounts.js';
import type { MetadataDb } from '../metadata/database.js';
import { systemClock, type Clock } from '../clock.js';
import { loadCertificateBundle, loadSigningKey } from './keys.js';
import { LoginThrottle } from './throttle.js';
import { TokenService } from './token-service.js';
import { TokenIssuer, TokenVerifier, type TrustedKeySources } from './tokens.js';

export interface RegistryAuth {
  access: AccessControl;
  /** The built-in token service, when this registry issues tokens. */
  tokens: TokenService | null;
  /** The token endpoint challenges name; '' means /auth/token on this registry as each request reached it. */
  tokenRealm: string;
  /** The policy and htpasswd files in force (reloaded on SIGHUP and on change); null with auth off or external tokens only. */
  accountFiles: AccountFiles | null;
  /** Where the built-in token service's signing key is, and whether the registry generated it. */
  signingKey: { file: string; generated: boolean } | null;
  /** This process's copy of the accounts of the database (null with auth off). */
  databaseAccounts: DatabaseAccounts | null;
}

export const noAuth: RegistryAuth = { access: openAccess, tokens: null, tokenRealm: '', accountFiles: null, signingKey: null, databaseAccounts: null };

/**
 * Builds access control (and the token service) from the auth section; reads every file it names
 * now, and the accounts of the metadata database.
 */
export async function openAuth(config: RegistryConfig, metadata: MetadataDb, clock: Clock = systemClock): Promise<RegistryAuth> {
  const auth = config.auth;
  if (auth.mode === 'none') return noAuth;
  const databaseAccounts = new DatabaseAccounts(metadata, clock);
  await databaseAccounts.load();
  const accountFiles = new AccountFiles({ policy: auth.policy, htpasswd: auth.htpasswd.path }, databaseAccounts);
  const throttle = new LoginThrottle();
  if (auth.mode === 'htpasswd') {
    return { access: new BasicAccessControl(accountFiles, throttle, auth.htpasswd.realm), tokens: null, tokenRealm: '', accountFiles, signingKey: null, databaseAccounts };
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
        accounts: accountFiles,
        throttle,
        issuer: new TokenIssuer(signingKey, token.issuer, Math.round(token.expiration / 1000)),
        verifier,
        service: token.service,
        realm: token.service,
      })
    : null;
  return {
    access: new TokenAccessControl(verifier, token.service, tokens ? accountFiles : null),
    tokens,
    tokenRealm: token.realm,
    accountFiles: tokens ? accountFiles : null,
    signingKey: signingKey ? { file: token.signingkey || generatedKeyFile, generated: token.signingkey === '' } : null,
    databaseAccounts,
  };
}
