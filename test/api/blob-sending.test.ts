import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { truncate } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { testBlob, type TestBlob } from '../helpers/blobs.js';
import { pushBlob } from '../helpers/push.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';
import { parseDigest } from '../../src/oci/digest.js';
import { storagePaths } from '../../src/storage/paths.js';

const MiB = 1024 * 1024;

interface Pulled {
  status: number;
  bytes: Buffer;
  complete: boolean;
}

/**
 * A GET read to its end or until the server cuts it; `complete` when the whole body arrived. With
 * `onFirstBytes`, reading waits for it once the first bytes are in.
 */
function pull(port: number, urlPath: string, headers: Record<string, string> = {}, onFirstBytes?: () => Promise<void>): Promise<Pulled> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (chunks.length === 1 && onFirstBytes) {
          response.pause();
          onFirstBytes().then(() => response.resume(), reject);
        }
      });
      const done = () => resolve({ status: response.statusCode ?? 0, bytes: Buffer.concat(chunks), complete: response.complete });
      response.once('end', done);
      response.once('error', done);
      response.once('aborted', done);
    });
    outgoing.once('error', reject);
    outgoing.end();
  });
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

// Filesystem reads hand their chunks back once the socket has taken them and read into them again:
// what could go wrong is a chunk filled again while its bytes are still on their way.
describe('blob GETs from the filesystem: chunks read into again only once sent', () => {
  let registry: TestRegistry;
  let port: number;
  let blobs: TestBlob[];
  const logLines: Array<Record<string, unknown>> = [];
  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    });
    registry = await createTestRegistry({ storage: 'filesystem', logger: pino({ level: 'warn' }, sink) });
    blobs = [testBlob(24 * MiB), testBlob(9 * MiB + 17), testBlob(3 * MiB + 1)];
    for (const blob of blobs) await pushBlob(registry.request, 'team/app', blob);
    ({ port } = await registry.listen());
  });
  after(async () => registry.close());

  it('twenty pulls and ranges at once, with chunk sizes changing as they start and end, each get exactly their bytes', async () => {
    const jobs: Array<Promise<void>> = [];
    for (let index = 0; index < 20; index++) {
      const blob = blobs[index % blobs.length]!;
      const url = `/v2/team/app/blobs/${blob.digest}`;
      if (index % 4 === 3) {
        const start = 1_000_003 + index;
        const end = blob.bytes.length - 2 * index - 1;
        jobs.push(
          pull(port, url, { Range: `bytes=${start}-${end}` }).then((pulled) => {
            assert.equal(pulled.status, 206);
            assert.ok(pulled.bytes.equals(blob.bytes.subarray(start, end + 1)), `range ${index} differs`);
          }),
        );
      } else {
        jobs.push(
          pull(port, url).then((pulled) => {
            assert.equal(pulled.status, 200);
            assert.equal(pulled.bytes.length, blob.bytes.length);
            assert.equal(sha256(pulled.bytes), blob.digest, `pull ${index} differs`);
          }),
        );
      }
    }
    await Promise.all(jobs);
  });

  it('a blob whose file is cut short under a pull: the answer is cut off (never padded or stuck), a warning is logged, the next request is served', async () => {
    const blob = testBlob(32 * MiB);
    await pushBlob(registry.request, 'team/cut', blob);
    const file = path.join(registry.root, 'storage', storagePaths.blobData(parseDigest(blob.digest)));
    // The first bytes have arrived: the file is cut to 1 MiB before the client reads on.
    const pulled = await pull(port, `/v2/team/cut/blobs/${blob.digest}`, {}, () => truncate(file, MiB));
    assert.equal(pulled.status, 200);
    assert.equal(pulled.complete, false, 'the client can tell the answer is incomplete');
    assert.ok(pulled.bytes.length < blob.bytes.length);
    assert.ok(pulled.bytes.equals(blob.bytes.subarray(0, pulled.bytes.length)), 'what arrived is the start of the blob');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const warnings = logLines.filter((line) => line.level === 40);
    assert.ok(warnings.some((line) => line.msg === 'response stream failed' && String(line.path).includes('team/cut')), JSON.stringify(warnings));
    const next = await pull(port, `/v2/team/app/blobs/${blobs[2]!.digest}`);
    assert.equal(sha256(next.bytes), blobs[2]!.digest);
  });
});
