import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { testBlob } from '../helpers/blobs.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startS3Server } from '../helpers/s3-server.js';
import { projectRoot, runRegistryCommand, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';

const MiB = 1024 * 1024;

async function pushBlob(port: number, repository: string, bytes: Buffer, digest: string): Promise<void> {
  const started = await rawRequest(port, 'POST', `/v2/${repository}/blobs/uploads/`);
  const location = String(started.headers.location);
  const put = await rawRequest(port, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { body: bytes, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.equal(put.status, 201);
}

/** GETs `urlPath` and closes the connection the moment `bytes` bytes have arrived. */
function pullThenClose(port: number, urlPath: string, requestId: string, bytes: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: urlPath, agent: false, headers: { 'X-Request-Id': requestId } }, (response) => {
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) {
          outgoing.destroy();
          resolve();
        }
      });
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve() : reject(error)));
    outgoing.end();
  });
}

describe('the request log a person reads', () => {
  it('JSON lines carry level names and ISO times; the query keeps only what says what was meant; HEAD sends 0 bytes', async () => {
    await withTemporaryDirectory('registry-logs-', async (directory) => {
      const server = await startServerProcess({ root: path.join(directory, 'storage') });
      const blob = testBlob(4096);
      await pushBlob(server.port, 'team/app', blob.bytes, blob.digest);
      await rawRequest(server.port, 'GET', '/v2/_catalog?n=5&last=a&private=do-not-log');
      const head = await rawRequest(server.port, 'HEAD', `/v2/team/app/blobs/${blob.digest}`);
      assert.equal(head.headers['content-length'], '4096');
      await server.stop();
      const listening = server.logs.find((entry) => entry.msg === 'registry listening')!;
      assert.equal(listening.level, 'info');
      assert.match(String(listening.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const requests = server.logs.filter((entry) => entry.msg === 'request');
      assert.equal(requests.find((entry) => entry.route === 'catalog')?.query, 'n=5&last=a');
      const put = requests.find((entry) => entry.route === 'upload.complete');
      assert.equal(put?.query, `digest=${encodeURIComponent(blob.digest)}`);
      const headLine = requests.find((entry) => entry.method === 'HEAD');
      assert.equal(headLine?.bytesOut, 0, 'a HEAD answer has no body');
      assert.equal(headLine?.status, 200);
    });
  });

  it('log.formatter text: one readable line per request', async () => {
    await withTemporaryDirectory('registry-logs-text-', async (directory) => {
      const child = spawn(process.execPath, ['dist/src/main.js', 'serve'], {
        cwd: projectRoot,
        env: { PATH: process.env.PATH ?? '', REGISTRY_LOG_FORMATTER: 'text', REGISTRY_HTTP_ADDR: '127.0.0.1:0', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const lines: string[] = [];
      const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (line) => {
          lines.push(line);
          const listening = / INFO  registry listening .*port=(\d+)/.exec(line);
          if (listening) resolve(Number(listening[1]));
        });
        void closed.then(() => reject(new Error(`exited before listening: ${lines.join('\n')}`)));
      });
      await rawRequest(port, 'GET', '/v2/team/app/manifests/v1');
      child.kill('SIGTERM');
      await closed;
      const line = lines.find((text) => text.includes('/v2/team/app/manifests/v1'));
      assert.match(line ?? '', /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO  GET \/v2\/team\/app\/manifests\/v1 404 \d+B [\d.]+ms requestId=\S+ route=manifest\.get repository=team\/app remote=127\.0\.0\.1$/);
      assert.ok(lines.every((text) => !text.startsWith('{')), 'no JSON line');
    });
  });

  it('a pull read to its last byte is a completed request at info, even when the client closes at once (as curl does)', async () => {
    await withTemporaryDirectory('registry-logs-complete-', async (directory) => {
      const server = await startServerProcess({ root: path.join(directory, 'storage') });
      const blob = testBlob(32 * MiB);
      await pushBlob(server.port, 'team/big', blob.bytes, blob.digest);
      for (let attempt = 0; attempt < 6; attempt++) {
        await pullThenClose(server.port, `/v2/team/big/blobs/${blob.digest}`, `whole-${attempt}`, blob.bytes.length);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      await server.stop();
      for (let attempt = 0; attempt < 6; attempt++) {
        const line = server.logs.find((entry) => entry.requestId === `whole-${attempt}`);
        assert.equal(line?.msg, 'request', `attempt ${attempt}: ${JSON.stringify(line)}`);
        assert.equal(line?.completed, true);
        assert.equal(line?.bytesOut, blob.bytes.length);
      }
    });
  });

  it('a client that goes away in the middle of a pull is a debug line with its request id and path, no warning or stack', async () => {
    await withTemporaryDirectory('registry-logs-gone-', async (directory) => {
      const server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_LOG_LEVEL: 'debug' } });
      const blob = testBlob(64 * MiB);
      await pushBlob(server.port, 'team/big', blob.bytes, blob.digest);
      const blobPath = `/v2/team/big/blobs/${blob.digest}`;
      // The first bytes arrived: the client leaves, as docker does when a pull is cancelled.
      await pullThenClose(server.port, blobPath, 'gone-client-1', 1);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await server.stop();
      const gone = server.logs.filter((entry) => entry.requestId === 'gone-client-1');
      assert.ok(gone.length > 0, 'the request is logged');
      assert.ok(gone.every((entry) => entry.level === 'debug'), JSON.stringify(gone));
      assert.ok(gone.some((entry) => entry.msg === 'client went away' && entry.path === blobPath && entry.completed === false));
      const loud = server.logs.filter((entry) => entry.level === 'warn' || entry.level === 'error');
      assert.deepEqual(loud, [], 'nothing above debug');
    });
  });

  it('log.accesslog.disabled (Distribution\'s variable): no request lines at info, the same lines at debug; start-up and errors still written', async () => {
    await withTemporaryDirectory('registry-logs-accesslog-', async (directory) => {
      const quiet = await startServerProcess({ root: path.join(directory, 'quiet'), env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' } });
      await rawRequest(quiet.port, 'GET', '/v2/team/app/manifests/v1', { headers: { 'X-Request-Id': 'quiet-1' } });
      await quiet.stop();
      assert.ok(quiet.logs.some((entry) => entry.msg === 'registry listening'), 'start-up line written');
      assert.deepEqual(quiet.logs.filter((entry) => entry.requestId === 'quiet-1'), [], 'no request line at info');
      assert.ok(!quiet.logs.some((entry) => Array.isArray(entry.keys)), 'the key is not reported as ignored');

      const debug = await startServerProcess({ root: path.join(directory, 'debug'), env: { REGISTRY_LOG_ACCESSLOG_DISABLED: 'true', REGISTRY_LOG_LEVEL: 'debug' } });
      await rawRequest(debug.port, 'GET', '/v2/team/app/manifests/v1', { headers: { 'X-Request-Id': 'debug-1' } });
      await debug.stop();
      const line = debug.logs.find((entry) => entry.requestId === 'debug-1');
      assert.equal(line?.level, 'debug');
      assert.equal(line?.msg, 'request');
      assert.equal(line?.status, 404);
    });
  });
});

describe('process warnings in the registry\'s own format', () => {
  it('on S3, the AWS SDK\'s Node version notice is one JSON log line when serving and one line on the command line, never raw lines of standard error', async () => {
    const s3 = await startS3Server();
    try {
      await s3.createBucket('warnings');
      const { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _kept, ...env } = s3.registryEnv('warnings');
      await withTemporaryDirectory('registry-warnings-', async (directory) => {
        const server = await startServerProcess({ root: directory, env });
        await rawRequest(server.port, 'GET', '/readyz');
        await server.stop();
        assert.doesNotMatch(server.stderr(), /Warning|AWS SDK/, 'nothing raw on standard error');
        const warnings = server.logs.filter((entry) => entry.warning !== undefined);
        const sdkWarns = Number(process.versions.node.split('.')[0]) < 22;
        if (sdkWarns) {
          assert.equal(warnings.length, 1, 'the notice, once');
          assert.equal(warnings[0]!.level, 'warn');
          assert.match(String(warnings[0]!.msg), /^NodeVersionSupportWarning: The AWS SDK for JavaScript \(v3\) versions published/);
        } else {
          assert.equal(warnings.length, 0);
        }
        const command = await runRegistryCommand(['gc', '--dry-run'], { ...env, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: directory });
        assert.equal(command.code, 0, command.stderr);
        const lines = command.stderr.split('\n').filter(Boolean);
        assert.deepEqual(lines.map((line) => line.startsWith('registry: warning: NodeVersionSupportWarning')), sdkWarns ? [true] : []);
      });
    } finally {
      await s3.dispose();
    }
  });
});
