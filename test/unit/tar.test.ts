import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { listTarEntries, readTarEntryBytes, TarFormatError, TarWriter } from '../../src/transfer/tar.js';
import { rawTarHeader } from '../helpers/archives.js';
import { run } from '../helpers/tools.js';

async function withDirectory(body: (directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(path.join(tmpdir(), 'registry-tar-'));
  try {
    await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

describe('tar', () => {
  it('writes archives GNU tar lists and extracts byte for byte, and reads them back by offset', () =>
    withDirectory(async (directory) => {
      const archive = path.join(directory, 'out.tar');
      const tar = new TarWriter(createWriteStream(archive));
      const long = `blobs/sha512/${'a'.repeat(128)}`;
      const streamed = Buffer.alloc(700_000, 7);
      await tar.file('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
      await tar.directory('blobs');
      await tar.file(long, Buffer.from('long name'));
      await tar.streamedFile('blobs/sha256/big', streamed.length, Readable.from([streamed.subarray(0, 300_000), streamed.subarray(300_000)]));
      await tar.file('empty', Buffer.alloc(0));
      await tar.finish();
      const listed = (await run('tar', ['-tf', archive])).stdout.trim().split('\n');
      assert.deepEqual(listed, ['oci-layout', 'blobs/', long, 'blobs/sha256/big', 'empty']);
      await mkdir(path.join(directory, 'x'));
      await run('tar', ['-xf', archive, '-C', path.join(directory, 'x')]);
      const handle = await open(archive, 'r');
      try {
        const entries = await listTarEntries(handle);
        assert.deepEqual(entries.map((entry) => [entry.name, entry.type, entry.size]), [
          ['oci-layout', 'file', 30],
          ['blobs/', 'directory', 0],
          [long, 'file', 9],
          ['blobs/sha256/big', 'file', streamed.length],
          ['empty', 'file', 0],
        ]);
        assert.deepEqual(await readTarEntryBytes(handle, entries[3]!), streamed);
      } finally {
        await handle.close();
      }
    }));

  it('refuses a stream shorter or longer than announced', () =>
    withDirectory(async (directory) => {
      const tar = new TarWriter(createWriteStream(path.join(directory, 'bad.tar')));
      await assert.rejects(tar.streamedFile('x', 10, Readable.from([Buffer.alloc(5)])), /ended after 5 of 10 bytes/);
      const other = new TarWriter(createWriteStream(path.join(directory, 'bad2.tar')));
      await assert.rejects(other.streamedFile('x', 10, Readable.from([Buffer.alloc(11)])), /longer than its 10 bytes/);
    }));

  it('reads PAX and GNU long names written by GNU tar, with ./ prefixes', () =>
    withDirectory(async (directory) => {
      const source = path.join(directory, 'src');
      const deep = `${'d'.repeat(90)}/${'e'.repeat(90)}/${'f'.repeat(120)}`;
      await mkdir(path.join(source, path.dirname(deep)), { recursive: true });
      await writeFile(path.join(source, deep), 'deep file');
      for (const format of ['pax', 'gnu']) {
        const archive = path.join(directory, `${format}.tar`);
        await run('tar', [`--format=${format}`, '-cf', archive, '-C', source, '.']);
        const handle = await open(archive, 'r');
        try {
          const entries = await listTarEntries(handle);
          const file = entries.find((entry) => entry.type === 'file');
          assert.equal(file?.name, deep, format);
          assert.equal((await readTarEntryBytes(handle, file!)).toString(), 'deep file');
        } finally {
          await handle.close();
        }
      }
    }));

  it('refuses what is not a tar archive', () =>
    withDirectory(async (directory) => {
      const file = path.join(directory, 'not.tar');
      await writeFile(file, Buffer.alloc(2048, 1));
      const handle = await open(file, 'r');
      try {
        await assert.rejects(listTarEntries(handle), /not a tar archive/);
      } finally {
        await handle.close();
      }
    }));

  const craftedHeader = (name: string, sizeField: Buffer, type: '0' | 'x' = '0') => rawTarHeader(name, type, '', sizeField);

  /** Lists the archive, giving up after a few seconds: a reader that loops is a failure, not a hang. */
  async function listWithin(file: string): Promise<unknown> {
    const handle = await open(file, 'r');
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        listTarEntries(handle),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('the reader did not finish within 5 s')), 5000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      await handle.close();
    }
  }

  it('refuses sizes a header cannot hold (negative, not octal, past 2^53, past the file) at once, without looping', () =>
    withDirectory(async (directory) => {
      const negative256 = Buffer.alloc(12, 0xff);
      const huge256 = Buffer.from([0x80, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
      const cases: Array<[string, Buffer, RegExp]> = [
        ['negative', Buffer.from('-1000\0'), /size "-1000" is not an octal number/],
        ['not octal', Buffer.from('00000000089\0'), /size "00000000089" is not an octal number/],
        ['base-256 negative', negative256, /negative size/],
        ['base-256 past 2^53', huge256, /size too large/],
        ['past the end', Buffer.from('77777777777\0'), /cut short/],
      ];
      for (const [label, field, message] of cases) {
        const file = path.join(directory, `${label}.tar`);
        await writeFile(file, Buffer.concat([craftedHeader('a', field), Buffer.alloc(2048)]));
        await assert.rejects(listWithin(file), (error: unknown) => error instanceof TarFormatError && message.test(error.message), label);
      }
      // A PAX header giving a negative size for the entry after it.
      const records = Buffer.from('14 size=-1000\n');
      const pax = Buffer.concat([craftedHeader('PaxHeader', Buffer.from(`${records.length.toString(8).padStart(11, '0')}\0`), 'x'), records, Buffer.alloc(512 - records.length)]);
      const file = path.join(directory, 'pax.tar');
      await writeFile(file, Buffer.concat([pax, craftedHeader('a', Buffer.from('00000000000\0')), Buffer.alloc(1024)]));
      await assert.rejects(listWithin(file), (error: unknown) => error instanceof TarFormatError && /size "-1000" is not a number of bytes/.test(error.message));
    }));
});
