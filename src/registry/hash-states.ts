import type { Hash } from 'node:crypto';
import type { DigestAlgorithm } from '../oci/digest.js';

interface HashState {
  algorithm: DigestAlgorithm;
  /** How many bytes of the upload the hash has seen. */
  size: number;
  hash: Hash;
}

/**
 * Running digests of uploads in progress, kept in this process so finishing an upload needs no re-read.
 * Only a cache: an upload whose state is missing or behind (restart, another replica) is hashed by
 * reading it back once it is complete.
 */
export class HashStates {
  private readonly states = new Map<string, HashState>();

  constructor(private readonly capacity = 10_000) {}

  /** A copy of the state for this upload, algorithm and size, if held. */
  take(uploadId: string, algorithm: DigestAlgorithm, size: number): Hash | undefined {
    const state = this.states.get(uploadId);
    if (!state || state.algorithm !== algorithm || state.size !== size) return undefined;
    return state.hash.copy();
  }

  remember(uploadId: string, algorithm: DigestAlgorithm, size: number, hash: Hash): void {
    this.states.delete(uploadId);
    this.states.set(uploadId, { algorithm, size, hash });
    if (this.states.size > this.capacity) {
      const oldest = this.states.keys().next().value;
      if (oldest !== undefined) this.states.delete(oldest);
    }
  }

  forget(uploadId: string): void {
    this.states.delete(uploadId);
  }
}
