import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PolicyError } from './policy.js';

export type SigningAlgorithm = 'ES256' | 'RS256';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  algorithm: SigningAlgorithm;
  /** The `kid` tokens carry: the key's id in the libtrust form Distribution and Harbor use. */
  kid: string;
}

const base32Alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let output = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      output += base32Alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) output += base32Alphabet[(value << (5 - bits)) & 31];
  return output;
}

/**
 * A public key's id as libtrust computes it (and so Distribution's token verifier): the first 240
 * bits of the SHA-256 of the DER SubjectPublicKeyInfo, base32, in twelve groups of four.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const digest = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest();
  const encoded = base32(digest.subarray(0, 30));
  return encoded.match(/.{4}/g)!.join(':');
}

function algorithmOf(privateKey: KeyObject, file: string): SigningAlgorithm {
  if (privateKey.asymmetricKeyType === 'rsa') return 'RS256';
  if (privateKey.asymmetricKeyType === 'ec' && privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new PolicyError(`${file}: the token signing key must be RSA or EC P-256`);
}

function signingKeyFrom(privateKey: KeyObject, file: string): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, algorithm: algorithmOf(privateKey, file), kid: libtrustKeyId(publicKey) };
}

/**
 * The key the built-in token service signs with: the PEM file configured, or else one generated at the
 * first start and kept at `generatedFile` (mode 0600), so tokens survive restarts.
 */
export function loadSigningKey(configuredFile: string, generatedFile: string, algorithm: SigningAlgorithm): SigningKey {
  const file = configuredFile !== '' ? configuredFile : generatedFile;
  if (configuredFile !== '' || existsSync(generatedFile)) {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (error) {
      throw new PolicyError(`cannot read token signing key ${file}: ${(error as Error).message}`);
    }
    return signingKeyFrom(createPrivateKey(pem), file);
  }
  const { privateKey } =
    algorithm === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 3072 });
  mkdirSync(path.dirname(generatedFile), { recursive: true, mode: 0o700 });
  writeFileSync(generatedFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  return signingKeyFrom(privateKey, generatedFile);
}

/** The certificates of a PEM bundle (an external issuer's signing certificates). */
export function loadCertificateBundle(file: string): X509Certificate[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new PolicyError(`cannot read certificate bundle ${file}: ${(error as Error).message}`);
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new PolicyError(`${file}: no PEM certificate in it`);
  return blocks.map((block) => new X509Certificate(block));
}
