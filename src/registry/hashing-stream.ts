import type { Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { RegistryError } from '../oci/errors.js';

/** Passes bytes through while counting them and feeding a hash (if given); refuses more than `limit` bytes. */
export class HashingStream extends Transform {
  bytes = 0;

  constructor(
    readonly hash: Hash | null,
    private readonly limit = Number.POSITIVE_INFINITY,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      callback(new RegistryError('SIZE_INVALID', { message: `body is longer than the ${this.limit} bytes announced` }));
      return;
    }
    this.hash?.update(chunk);
    callback(null, chunk);
  }
}
