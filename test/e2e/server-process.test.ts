import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { rawRequest } from '../helpers/raw-http.js';
import { connectionRefused, runRegistryCommand, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';

describe('the registry as a process', () => {
  it('an upload started before a restart finishes after it (state in the database, bytes in storage)', async () => {
    await withTemporaryDirectory('registry-restart-', async (root) => {
      const blob = testBlob(3_000_000);
      const first = await startServerProcess({ root });
      const started = await rawRequest(first.port, 'POST', '/v2/restart/test/blobs/uploads/');
      assert.equal(started.status, 202);
      const location = String(started.headers.location);
      const half = await rawRequest(first.port, 'PATCH', location, {
        headers: { 'Content-Range': '0-1499999', 'Content-Length': '1500000' },
        body: blob.bytes.subarray(0, 1_500_000),
      });
      assert.equal(half.status, 202);
      assert.equal(await first.stop(), 0, 'SIGTERM ends the process cleanly');

      const second = await startServerProcess({ root });
      try {
        const status = await rawRequest(second.port, 'GET', location);
        assert.equal(status.status, 204);
        assert.equal(status.headers.range, '0-1499999');
        const rest = await rawRequest(second.port, 'PATCH', location, {
          headers: { 'Content-Range': '1500000-2999999', 'Content-Length': '1500000' },
          body: blob.bytes.subarray(1_500_000),
        });
        assert.equal(rest.status, 202);
        const done = await rawRequest(second.port, 'PUT', `${location}?digest=${blob.digest}`);
        assert.equal(done.status, 201);
        const pulled = await rawRequest(second.port, 'GET', `/v2/restart/test/blobs/${blob.digest}`);
        assert.ok(pulled.body.equals(blob.bytes));

      } finally {
        assert.equal(await second.stop(), 0);
      }
      // Log lines are written as responses close; after the exit all of them are in.
      const line = second.logs.find((entry) => entry.msg === 'request' && entry.route === 'upload.patch');
      assert.ok(line, 'one log line per request');
      assert.equal(line.method, 'PATCH');
      assert.equal(line.repository, 'restart/test');
      assert.equal(line.status, 202);
      assert.equal(line.bytesIn, 1_500_000);
      assert.equal(typeof line.requestId, 'string');
      assert.equal(typeof line.durationMs, 'number');
      const pull = second.logs.find((entry) => entry.msg === 'request' && entry.route === 'blob.get');
      assert.equal(pull?.bytesOut, 3_000_000);
    });
  });

  it('SIGTERM stops accepting, lets an in-flight upload finish, then exits 0', async () => {
    await withTemporaryDirectory('registry-drain-', async (root) => {
      const server = await startServerProcess({ root });
      const blob = testBlob(1_000_000);
      const started = await rawRequest(server.port, 'POST', '/v2/drain/blobs/uploads/');
      const location = String(started.headers.location);
      const inFlight = new Promise<number>((resolve, reject) => {
        const outgoing = request(
          { host: '127.0.0.1', port: server.port, method: 'PATCH', path: location, agent: false, headers: { 'Content-Length': String(blob.bytes.length) } },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        outgoing.on('error', reject);
        outgoing.write(blob.bytes.subarray(0, 400_000), () => {
          server.child.kill('SIGTERM');
          void (async () => {
            try {
              let refused = false;
              for (let waited = 0; !refused && waited < 10_000; waited += 100) {
                await new Promise((resolve) => setTimeout(resolve, 100));
                refused = await connectionRefused(server.port);
              }
              assert.ok(refused, 'no new connections once stopping');
              outgoing.end(blob.bytes.subarray(400_000));
            } catch (error) {
              reject(error);
            }
          })();
        });
      });
      assert.equal(await inFlight, 202, 'the in-flight request completed');
      assert.equal(await server.exited, 0);
      assert.ok(server.logs.some((entry) => entry.msg === 'registry stopped'));
    });
  });

  it('a bad configuration stops the start with the key named', async () => {
    const result = await runRegistryCommand(['serve'], { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /storage\.delete\.enabled \(from REGISTRY_STORAGE_DELETE_ENABLED\): expected true or false/);
    const keys = await runRegistryCommand(['config-keys'], {});
    assert.equal(keys.code, 0);
    assert.match(keys.stdout, /http\.addr {2}\(REGISTRY_HTTP_ADDR, default ":5000"\)/);
    assert.match(keys.stdout, /storage\.filesystem\.rootdirectory {2}\(REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY/);
    assert.match(keys.stdout, /storage\.s3\.chunksize {2}\(REGISTRY_STORAGE_S3_CHUNKSIZE, default "10MiB"\)/);
    assert.match(keys.stdout, /storage\.redirect\.expiry {2}\(REGISTRY_STORAGE_REDIRECT_EXPIRY, default "20m"\)/);
  });
});
