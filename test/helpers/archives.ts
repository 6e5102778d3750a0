import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { once } from 'node:events';
import { listTarEntries, readTarEntryBytes, TarWriter } from '../../src/transfer/tar.js';

/**
 * One raw ustar header (no data follows it), as another tool could write it: a symbolic link ('2'),
 * a hard link ('1'), a file ('0') or a PAX header ('x'), with any name and size (a number, or the
 * size field's own bytes, however wrong), its checksum right.
 */
export function rawTarHeader(name: string, type: '0' | '1' | '2' | 'x', linkName = '', size: number | Buffer = 0): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  if (typeof size === 'number') header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  else size.copy(header, 124, 0, 12);
  header.write(type, 156);
  header.write(linkName, 157, 100, 'utf8');
  header.write('ustar\0', 257);
  header.write('00', 263);
  header.fill(0x20, 148, 156);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
}

export interface ArchiveChanges {
  /** New bytes for an entry, by name; undefined keeps it as it is. */
  replace?: (name: string, bytes: Buffer) => Buffer | undefined;
  /** Entries left out. */
  drop?: (name: string) => boolean;
  /** Files added after the entries. */
  add?: Array<{ name: string; bytes: Buffer }>;
  /** Raw blocks (headers, data) written after the entries, before the end of the archive. */
  append?: Buffer[];
}

/** Copies a tar archive's regular files into a new one, changed as told: a damaged or crafted bundle. */
export async function rewriteArchive(source: string, target: string, changes: ArchiveChanges): Promise<void> {
  const input = await open(source, 'r');
  const output = createWriteStream(target);
  try {
    const tar = new TarWriter(output);
    for (const entry of await listTarEntries(input)) {
      if (entry.type !== 'file' || changes.drop?.(entry.name)) continue;
      const bytes = await readTarEntryBytes(input, entry);
      await tar.file(entry.name, changes.replace?.(entry.name, bytes) ?? bytes);
    }
    for (const file of changes.add ?? []) await tar.file(file.name, file.bytes);
    for (const block of changes.append ?? []) if (!output.write(block)) await once(output, 'drain');
    await tar.finish();
  } finally {
    await input.close();
  }
}
