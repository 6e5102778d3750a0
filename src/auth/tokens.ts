import { randomUUID, X509Certificate, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import jwt from 'jsonwebtoken';
import { libtrustKeyId, type SigningKey } from './keys.js';
import type { AccessEntry } from './scopes.js';
import { systemClock, type Clock } from '../clock.js';

/** Signature algorithms accepted on tokens: asymmetric only (no `none`, no HS* that a public key could forge). */
export const acceptedAlgorithms: jwt.Algorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
/** Clock skew allowed on exp and nbf, in seconds. */
export const clockLeewaySeconds = 60;
const refreshLifetimeSeconds = 90 * 24 * 3600;

export interface AccessClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  access: AccessEntry[];
}

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: Date;
}

/** Signs access tokens (and refresh tokens for `offline_token=true`) for the built-in token service. */
export class TokenIssuer {
  constructor(
    private readonly key: SigningKey,
    private readonly issuer: string,
    private readonly lifetimeSeconds: number,
    private readonly clock: Clock = systemClock,
  ) {}

  private sign(claims: Record<string, unknown>, expiresIn: number): IssuedToken {
    const issuedAt = new Date(this.clock.now());
    const now = Math.floor(issuedAt.getTime() / 1000);
    const token = jwt.sign({ iss: this.issuer, iat: now, nbf: now, exp: now + expiresIn, jti: randomUUID(), ...claims }, this.key.privateKey, {
      algorithm: this.key.algorithm,
      keyid: this.key.kid,
    });
    return { token, expiresIn, issuedAt };
  }

  accessToken(subject: string, audience: string, access: AccessEntry[]): IssuedToken {
    return this.sign({ sub: subject, aud: audience, access }, this.lifetimeSeconds);
  }

  refreshToken(subject: string, audience: string): IssuedToken {
    return this.sign({ sub: subject, aud: audience, typ: 'refresh' }, refreshLifetimeSeconds);
  }
}

/** Where verification keys come from: the built-in key, a certificate bundle, a JWKS file or URL. */
export interface TrustedKeySources {
  builtIn?: SigningKey;
  certificates?: X509Certificate[];
  jwks?: string;
}

interface Jwks {
  keys?: Array<JsonWebKey & { kid?: string }>;
}

/** Checks tokens: algorithm allow-list, signature by a trusted key (by `kid` or `x5c`), iss, aud, exp/nbf with leeway. */
export class TokenVerifier {
  private readonly keysById = new Map<string, KeyObject>();
  private lastJwksFetch = 0;

  private constructor(
    private readonly sources: TrustedKeySources,
    private readonly issuer: string,
    private readonly audience: string,
    private readonly clock: Clock,
  ) {
    if (sources.builtIn) this.keysById.set(sources.builtIn.kid, sources.builtIn.publicKey);
    for (const certificate of sources.certificates ?? []) this.keysById.set(libtrustKeyId(certificate.publicKey), certificate.publicKey);
  }

  static async create(sources: TrustedKeySources, issuer: string, audience: string, clock: Clock = systemClock): Promise<TokenVerifier> {
    const verifier = new TokenVerifier(sources, issuer, audience, clock);
    if (sources.jwks) await verifier.loadJwks();
    return verifier;
  }

  private async loadJwks(): Promise<void> {
    const location = this.sources.jwks!;
    this.lastJwksFetch = this.clock.now();
    const text = /^https?:\/\//.test(location) ? await (await fetch(location, { signal: AbortSignal.timeout(10_000) })).text() : await readFile(location, 'utf8');
    const jwks = JSON.parse(text) as Jwks;
    for (const key of jwks.keys ?? []) {
      if (!key.kid) continue;
      this.keysById.set(key.kid, createPublicKey({ key, format: 'jwk' }));
    }
  }

  /** The key a token names: by kid (fetching a JWKS URL again, at most once a minute, for an unknown one), or its x5c leaf if a trusted certificate signed it. */
  private async keyFor(header: jwt.JwtHeader): Promise<KeyObject> {
    if (header.x5c && header.x5c.length > 0) {
      const leaf = new X509Certificate(Buffer.from(header.x5c[0]!, 'base64'));
      const now = this.clock.now();
      if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) throw new TokenError('the x5c certificate is not valid now');
      const trusted = (this.sources.certificates ?? []).some((certificate) => certificate.raw.equals(leaf.raw) || leaf.verify(certificate.publicKey));
      if (!trusted) throw new TokenError('the x5c certificate is not signed by a trusted certificate');
      return leaf.publicKey;
    }
    if (!header.kid) throw new TokenError('the token names no key (kid or x5c)');
    let key = this.keysById.get(header.kid);
    if (!key && /^https?:\/\//.test(this.sources.jwks ?? '') && this.clock.now() - this.lastJwksFetch > 60_000) {
      await this.loadJwks().catch(() => {});
      key = this.keysById.get(header.kid);
    }
    if (!key) throw new TokenError(`unknown signing key ${header.kid}`);
    return key;
  }

  async verify(token: string): Promise<AccessClaims> {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded || typeof decoded.payload === 'string') throw new TokenError('not a JWT');
    if (!acceptedAlgorithms.includes(decoded.header.alg as jwt.Algorithm)) throw new TokenError(`algorithm ${decoded.header.alg} is not accepted`);
    const key = await this.keyFor(decoded.header);
    let payload: jwt.JwtPayload;
    try {
      payload = jwt.verify(token, key, {
        algorithms: acceptedAlgorithms,
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: clockLeewaySeconds,
        clockTimestamp: Math.floor(this.clock.now() / 1000),
      }) as jwt.JwtPayload;
    } catch (error) {
      throw new TokenError((error as Error).message);
    }
    if (typeof payload.exp !== 'number') throw new TokenError('the token has no expiry');
    return { ...payload, access: Array.isArray(payload.access) ? (payload.access as AccessEntry[]) : [] } as AccessClaims;
  }

  /** A refresh token this service issued; its subject. */
  async verifyRefresh(token: string): Promise<string> {
    const claims = (await this.verify(token)) as AccessClaims & { typ?: string };
    if (claims.typ !== 'refresh' || typeof claims.sub !== 'string') throw new TokenError('not a refresh token');
    return claims.sub;
  }

  /** An access token: refresh tokens are refused where access is checked. */
  async verifyAccess(token: string): Promise<AccessClaims> {
    const claims = (await this.verify(token)) as AccessClaims & { typ?: string };
    if (claims.typ === 'refresh') throw new TokenError('a refresh token is not an access token');
    return claims;
  }
}
