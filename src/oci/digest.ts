import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from './errors.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

const encodedLength: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

export interface Digest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** The canonical `algorithm:hex` form. */
  readonly value: string;
}

// The grammar of the OCI image spec: algorithm-component(+separator)* ":" encoded.
const digestGrammar = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/** Parses and validates a digest; anything malformed or of an unsupported algorithm is DIGEST_INVALID. */
export function parseDigest(text: string): Digest {
  const match = digestGrammar.exec(text);
  if (!match) {
    throw new RegistryError('DIGEST_INVALID', { message: 'invalid digest format', detail: { digest: text.slice(0, 200) } });
  }
  const [, algorithm, hex] = match as unknown as [string, string, string];
  if (algorithm !== 'sha256' && algorithm !== 'sha512') {
    throw new RegistryError('DIGEST_INVALID', {
      message: `unsupported digest algorithm ${algorithm}`,
      detail: { digest: text.slice(0, 200) },
    });
  }
  if (hex.length !== encodedLength[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new RegistryError('DIGEST_INVALID', {
      message: `invalid ${algorithm} digest: expected ${encodedLength[algorithm]} lowercase hex characters`,
      detail: { digest: text.slice(0, 200) },
    });
  }
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

export function newHash(algorithm: DigestAlgorithm): Hash {
  return createHash(algorithm);
}

export function digestOf(algorithm: DigestAlgorithm, hash: Hash): Digest {
  const hex = hash.digest('hex');
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}

export function digestBytes(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return digestOf(algorithm, newHash(algorithm).update(bytes));
}
