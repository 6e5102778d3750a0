import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export interface TestBlob {
  bytes: Buffer;
  digest: string;
  sha512: string;
}

export function testBlob(size: number): TestBlob {
  const bytes = randomBytes(size);
  return {
    bytes,
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    sha512: `sha512:${createHash('sha512').update(bytes).digest('hex')}`,
  };
}

/**
 * A stream of `size` bytes made by repeating one random block, and the sha256 of it all, computed
 * as the stream is read (available once it has ended).
 */
export function patternStream(size: number, blockSize = 1024 * 1024): { stream: Readable; digest: () => string } {
  const block = randomBytes(blockSize);
  const hash = createHash('sha256');
  let remaining = size;
  let result: string | undefined;
  const stream = new Readable({
    highWaterMark: blockSize,
    read() {
      if (remaining === 0) {
        result = `sha256:${hash.digest('hex')}`;
        this.push(null);
        return;
      }
      const piece = remaining >= block.length ? block : block.subarray(0, remaining);
      remaining -= piece.length;
      hash.update(piece);
      this.push(piece);
    },
  });
  return {
    stream,
    digest: () => {
      if (!result) throw new Error('stream not fully read yet');
      return result;
    },
  };
}

/** The sha256 digest of a pattern stream without streaming it anywhere. */
export async function digestOfStream(stream: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}
