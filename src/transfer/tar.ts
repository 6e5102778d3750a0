import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';

/**
 * Just enough tar (POSIX ustar, with PAX and GNU extensions read) for OCI image layout archives:
 * regular files and directories, written as a stream and read back from a file by offset.
 */

const block = 512;
/** Largest size the 11 octal digits of a ustar header hold; larger ones are written base-256 (GNU). */
const maxOctalSize = 8 ** 11 - 1;
/** Largest PAX or GNU long-name header read: names and a few numbers, never this much. */
const maxExtensionBytes = 1024 * 1024;

/** The ustar name and prefix fields for a name, or null when it does not fit them (a PAX header carries it). */
function ustarName(name: string): { stored: string; prefix: string } | null {
  if (Buffer.byteLength(name) <= 100) return { stored: name, prefix: '' };
  const cut = name.lastIndexOf('/', 155);
  if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100 || Buffer.byteLength(name.slice(0, cut)) > 155) return null;
  return { stored: name.slice(cut + 1), prefix: name.slice(0, cut) };
}

/** A PAX record: its length counts itself, in decimal. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body) + 1;
  while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
  return `${length}${body}`;
}

function header(name: string, size: number, type: '0' | '5' | 'x'): Buffer {
  const bytes = Buffer.alloc(block);
  const field = (value: string, offset: number, length: number) => bytes.write(value, offset, length, 'utf8');
  const { stored, prefix } = ustarName(name) ?? { stored: name.slice(-100).replace(/^\/+/, ''), prefix: '' };
  field(stored, 0, 100);
  field(type === '5' ? '0000755\0' : '0000644\0', 100, 8);
  field('0000000\0', 108, 8);
  field('0000000\0', 116, 8);
  if (size <= maxOctalSize) {
    field(`${size.toString(8).padStart(11, '0')}\0`, 124, 12);
  } else {
    bytes[124] = 0x80;
    let rest = BigInt(size);
    for (let index = 135; index > 124; index--) {
      bytes[index] = Number(rest & 0xffn);
      rest >>= 8n;
    }
  }
  field('00000000000\0', 136, 12);
  field('        ', 148, 8);
  field(type, 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  field(prefix, 345, 155);
  let checksum = 0;
  for (const byte of bytes) checksum += byte;
  field(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return bytes;
}

/** Writes a tar archive to a stream, entry after entry, with backpressure. */
export class TarWriter {
  constructor(private readonly out: Writable) {}

  private async write(bytes: Buffer): Promise<void> {
    if (!this.out.write(bytes)) await once(this.out, 'drain');
  }

  /** The header of an entry, after a PAX header naming it when the name does not fit ustar. */
  private async header(name: string, size: number, type: '0' | '5'): Promise<void> {
    if (!ustarName(name)) {
      const records = Buffer.from(paxRecord('path', name));
      await this.write(header('PaxHeader', records.length, 'x'));
      await this.write(records);
      await this.pad(records.length);
    }
    await this.write(header(name, size, type));
  }

  async directory(name: string): Promise<void> {
    await this.header(name.endsWith('/') ? name : `${name}/`, 0, '5');
  }

  async file(name: string, bytes: Buffer): Promise<void> {
    await this.header(name, bytes.length, '0');
    await this.write(bytes);
    await this.pad(bytes.length);
  }

  /** A file whose bytes come from a stream; it must yield exactly `size` bytes. */
  async streamedFile(name: string, size: number, source: Readable, onBytes?: (count: number) => void): Promise<void> {
    await this.header(name, size, '0');
    let written = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      written += chunk.length;
      if (written > size) throw new Error(`tar: ${name} is longer than its ${size} bytes`);
      await this.write(chunk);
      onBytes?.(chunk.length);
    }
    if (written !== size) throw new Error(`tar: ${name} ended after ${written} of ${size} bytes`);
    await this.pad(size);
  }

  private async pad(size: number): Promise<void> {
    const padding = (block - (size % block)) % block;
    if (padding > 0) await this.write(Buffer.alloc(padding));
  }

  /** The two zero blocks that end an archive; then ends the stream. */
  async finish(): Promise<void> {
    await this.write(Buffer.alloc(block * 2));
    this.out.end();
    await once(this.out, 'finish');
  }
}

export interface TarEntry {
  /** Normalised: no leading `./` or `/`. */
  name: string;
  type: 'file' | 'directory' | 'other';
  size: number;
  /** Where the entry's bytes start in the file. */
  offset: number;
}

/** An archive that is not a well-formed tar file: said in one line, with where. */
export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarFormatError';
  }
}

/**
 * A number field: octal digits (ustar), or base-256 with the high bit set (GNU, for sizes past 8 GiB).
 * Anything else, a negative base-256 value, or one past 2^53 is not a number a header can hold.
 */
function readNumber(bytes: Buffer, what: string, position: number): number {
  const first = bytes[0] ?? 0;
  if (first & 0x80) {
    if (first & 0x40) throw new TarFormatError(`tar header at byte ${position}: negative ${what}`);
    let value = BigInt(first & 0x3f);
    for (let index = 1; index < bytes.length; index++) value = (value << 8n) | BigInt(bytes[index] ?? 0);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarFormatError(`tar header at byte ${position}: ${what} too large`);
    return Number(value);
  }
  const text = bytes.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`tar header at byte ${position}: ${what} ${JSON.stringify(text.slice(0, 20))} is not an octal number`);
  const value = parseInt(text, 8);
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`tar header at byte ${position}: ${what} too large`);
  return value;
}

function text(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8');
}

function normalise(name: string): string {
  return name.replace(/^(\.\/|\/)+/, '');
}

/** PAX extended header records: `<length> <key>=<value>\n`. */
function paxRecords(bytes: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let position = 0;
  while (position < bytes.length) {
    const space = bytes.indexOf(0x20, position);
    if (space === -1) break;
    const length = Number(bytes.subarray(position, space).toString('ascii'));
    if (!Number.isSafeInteger(length) || length <= 0) break;
    const record = bytes.subarray(space + 1, position + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    position += length;
  }
  return records;
}

/**
 * Every entry of a tar file, by offset (the bytes are not read). Sizes are checked before they are
 * used: each header lies past the one before it, and no entry reaches past the end of the file, so
 * a crafted header can neither loop the reader nor make it allocate what the file does not hold.
 */
export async function listTarEntries(file: FileHandle): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const { size: fileSize } = await file.stat();
  const headerBytes = Buffer.alloc(block);
  let position = 0;
  let pending: { name?: string; size?: number } = {};
  while (position + block <= fileSize) {
    await file.read(headerBytes, 0, block, position);
    if (headerBytes.every((byte) => byte === 0)) break;
    let checksum = 0;
    for (let index = 0; index < block; index++) checksum += index >= 148 && index < 156 ? 0x20 : (headerBytes[index] ?? 0);
    let stored: number;
    try {
      stored = readNumber(headerBytes.subarray(148, 156), 'checksum', position);
    } catch {
      stored = -1;
    }
    if (checksum !== stored) throw new TarFormatError(`not a tar archive (bad header checksum at byte ${position})`);
    const typeFlag = String.fromCharCode(headerBytes[156] ?? 0x30);
    const ownSize = readNumber(headerBytes.subarray(124, 136), 'size', position);
    const extension = typeFlag === 'x' || typeFlag === 'L' || typeFlag === 'g';
    const size = extension ? ownSize : (pending.size ?? ownSize);
    const dataOffset = position + block;
    const next = dataOffset + Math.ceil(size / block) * block;
    // The last entry's padding may be missing; its bytes may not.
    if (dataOffset + size > fileSize) throw new TarFormatError(`tar archive is cut short (entry at byte ${position} holds ${size} bytes past the end)`);
    if (next <= position) throw new TarFormatError(`tar header at byte ${position} does not lead past itself`);
    if (typeFlag === 'x' || typeFlag === 'L') {
      if (size > maxExtensionBytes) throw new TarFormatError(`tar header at byte ${position}: a ${size}-byte extended header (at most ${maxExtensionBytes})`);
      const data = Buffer.alloc(size);
      await file.read(data, 0, size, dataOffset);
      if (typeFlag === 'L') pending.name = text(data);
      else {
        const records = paxRecords(data);
        if (records.has('path')) pending.name = records.get('path');
        if (records.has('size')) {
          const text = records.get('size')!;
          if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) throw new TarFormatError(`PAX header at byte ${position}: size ${JSON.stringify(text.slice(0, 20))} is not a number of bytes`);
          pending.size = Number(text);
        }
      }
    } else if (typeFlag !== 'g') {
      const prefix = headerBytes.subarray(257, 263).toString('ascii').startsWith('ustar') ? text(headerBytes.subarray(345, 500)) : '';
      const ownName = text(headerBytes.subarray(0, 100));
      const name = pending.name ?? (prefix ? `${prefix}/${ownName}` : ownName);
      const type = typeFlag === '0' || typeFlag === '\0' || typeFlag === '7' ? 'file' : typeFlag === '5' ? 'directory' : 'other';
      entries.push({ name: normalise(name), type, size, offset: dataOffset });
      pending = {};
    }
    position = next;
  }
  return entries;
}

/** The bytes of one entry, as a stream. */
export function readTarEntry(path: string, entry: TarEntry): Readable {
  return entry.size === 0 ? Readable.from([]) : createReadStream(path, { start: entry.offset, end: entry.offset + entry.size - 1 });
}

/** A small entry whole. */
export async function readTarEntryBytes(file: FileHandle, entry: TarEntry): Promise<Buffer> {
  const bytes = Buffer.alloc(entry.size);
  await file.read(bytes, 0, entry.size, entry.offset);
  return bytes;
}
