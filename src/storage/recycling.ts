import type { Readable } from 'node:stream';

/**
 * Not part of the storage contract (a read is a Readable): an optimisation a driver may offer. A
 * read whose chunks may be handed back when the consumer is done with them (a socket has taken the
 * bytes), so that later reads fill them again: no garbage and no fresh pages per chunk. Only a
 * consumer that knows no reference to a chunk remains may hand one back. The filesystem driver's
 * reads are such streams; whoever sends a stream asks with isRecycling.
 */
export interface RecyclingReadable extends Readable {
  recycle(chunk: Buffer): void;
}

export function isRecycling(stream: Readable): stream is RecyclingReadable {
  return typeof (stream as Partial<RecyclingReadable>).recycle === 'function';
}
