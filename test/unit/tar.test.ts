import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { listTarEntries, readTarEntryBytes, TarWriter } from '../../src/transfer/tar.js';
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
});
