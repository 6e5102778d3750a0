import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';

/** Starts an upload, then sends half of `size` bytes and holds the rest back: the session holds a socket and a file. */
function halfUpload(port: number, size: number): Promise<{ status: number | 'reset'; finish(): void }> {
  return new Promise((resolve) => {
    const start = request({ port, host: '127.0.0.1', method: 'POST', path: '/v2/team/app/blobs/uploads/', agent: false }, (response) => {
      response.resume();
      if (response.statusCode !== 202) return resolve({ status: response.statusCode ?? 0, finish: () => {} });
      const patch = request({ port, host: '127.0.0.1', method: 'PATCH', path: String(response.headers.location), agent: false, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': size } }, (answer) => {
        answer.resume();
        resolve({ status: answer.statusCode ?? 0, finish: () => {} });
      });
      patch.on('error', () => resolve({ status: 'reset', finish: () => {} }));
      patch.write(Buffer.alloc(size / 2, 1));
      // Still waiting after a while: the PATCH is held open; finish() ends it.
      setTimeout(() => resolve({ status: 202, finish: () => patch.end(Buffer.alloc(size / 2, 1)) }), 1500);
    });
    start.on('error', () => resolve({ status: 'reset', finish: () => {} }));
    start.end();
  });
}

describe('a registry process under more clients than it has room for', () => {
  it('with too few file handles (ulimit -n 64), uploads that cannot open a file are 503 with Retry-After, never 500', () =>
    withTemporaryDirectory('registry-emfile-', async (directory) => {
      const server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_HTTP_MAXCONNECTIONSPERADDRESS: '0' } });
      try {
        // Lowered once it runs (loading its modules takes more than this at once).
        await promisify(execFile)('prlimit', ['--pid', String(server.pid), '--nofile=64:64']);
        const uploads = await Promise.all(Array.from({ length: 100 }, () => halfUpload(server.port, 64 * 1024)));
        const statuses = uploads.map((upload) => upload.status);
        assert.ok(!statuses.includes(500), `no 500: ${statuses.join(' ')}`);
        assert.ok(statuses.includes(503), `some sessions could not open a file: ${statuses.join(' ')}`);
        for (const upload of uploads) upload.finish();
        // Once the others are done, the registry serves again.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const after = await halfUpload(server.port, 1024);
        after.finish();
        assert.equal(after.status, 202);
      } finally {
        await server.stop();
      }
      assert.ok(server.logs.some((line) => String(line.msg).startsWith('out of file handles (EMFILE)')), 'the log names EMFILE');
    }));

  it('http.maxconnectionsperaddress (REGISTRY_HTTP_MAXCONNECTIONSPERADDRESS) closes connections past it', () =>
    withTemporaryDirectory('registry-connections-', async (directory) => {
      const server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_HTTP_MAXCONNECTIONSPERADDRESS: '2' } });
      try {
        const sockets: Array<ReturnType<typeof connect>> = [];
        const answered = () =>
          new Promise<boolean>((resolve) => {
            const socket = connect(server.port, '127.0.0.1');
            sockets.push(socket);
            socket.on('error', () => undefined);
            socket.once('close', () => resolve(false));
            socket.once('data', () => resolve(true));
            socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
          });
        const results = [await answered(), await answered(), await answered()];
        assert.deepEqual(results, [true, true, false]);
        for (const socket of sockets) socket.destroy();
      } finally {
        await server.stop();
      }
      // Read once the process has ended: every line of its log is in by then.
      assert.ok(server.logs.some((line) => line.msg === 'connection refused: http.maxconnectionsperaddress reached for this address'));
    }));
});
