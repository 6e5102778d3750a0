import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StorageDriver } from './driver.js';

/** Writes a small object whole (a manifest, a tag link): visible only once complete. */
export async function putSmallObject(storage: StorageDriver, key: string, bytes: Uint8Array): Promise<void> {
  const writer = await storage.writer(key);
  try {
    await pipeline(Readable.from([Buffer.from(bytes)]), writer.stream);
    await writer.commit();
  } catch (error) {
    await writer.cancel();
    throw error;
  }
}

/** Reads a small object whole. */
export async function getSmallObject(storage: StorageDriver, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.read(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
