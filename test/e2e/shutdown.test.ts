import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rawRequest } from '../helpers/raw-http.js';
import { connectionRefused, healthcheckScript, projectRoot, runRegistryCommand, startServerProcess } from '../helpers/server-process.js';

/** A server process whose standard output the test holds, to stall or cut it. */
async function startWithLogPipe(root: string, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['dist/src/main.js', 'serve'], {
    cwd: projectRoot,
    env: { PATH: process.env.PATH ?? '', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_HTTP_ADDR: '127.0.0.1:0', REGISTRY_HTTP_DRAINTIMEOUT: '2s', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg: string; port?: number };
      if (entry.msg === 'registry listening') resolve(entry.port!);
    });
    void exited.then((code) => reject(new Error(`exited with ${code}`)));
  });
  return { child, port, exited };
}

async function serves(port: number, requests: number): Promise<number> {
  let answered = 0;
  for (let index = 0; index < requests; index++) if ((await rawRequest(port, 'GET', '/v2/')).status === 200) answered++;
  return answered;
}

async function exitsWithin(exited: Promise<number | null>, ms: number): Promise<number | null | 'still running'> {
  return Promise.race([exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms))]);
}

describe('shutdown always finishes', () => {
  let directory: string;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-shutdown-'));
  });
  after(async () => rm(directory, { recursive: true, force: true }));

  it('a log reader that stops reading: the registry serves on, and SIGTERM ends it within the drain timeout', async () => {
    const server = await startWithLogPipe(path.join(directory, 'stalled'));
    try {
      server.child.stdout!.pause();
      // More log lines than a pipe holds (64 KiB): the reader is not taking them.
      assert.equal(await serves(server.port, 1500), 1500, 'every request answered');
      server.child.kill('SIGTERM');
      assert.equal(await exitsWithin(server.exited, 2000 + 8000), 0, 'exits within the drain timeout and its margin');
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('a log reader that went away (EPIPE): the registry serves on, and SIGTERM ends it', async () => {
    const server = await startWithLogPipe(path.join(directory, 'cut'));
    try {
      server.child.stdout!.destroy();
      assert.equal(await serves(server.port, 300), 300);
      server.child.kill('SIGTERM');
      assert.equal(await exitsWithin(server.exited, 10_000), 0);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('npm start, then SIGTERM to npm: the registry stops too (the start command hands it the signal)', async () => {
    const npm = spawn('npm', ['start', '--silent'], {
      cwd: projectRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'npm'), REGISTRY_HTTP_ADDR: '127.0.0.1:0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: npm.stdout! }).on('line', (line) => {
          if (!line.startsWith('{')) return;
          const entry = JSON.parse(line) as { msg: string; port?: number };
          if (entry.msg === 'registry listening') resolve(entry.port!);
        });
        void exited.then((code) => reject(new Error(`npm start exited with ${code}`)));
      });
      assert.equal(await serves(port, 1), 1);
      npm.kill('SIGTERM');
      assert.notEqual(await exitsWithin(exited, 15_000), 'still running', 'npm exits');
      let refused = false;
      for (let waited = 0; !refused && waited < 10_000; waited += 200) {
        refused = await connectionRefused(port);
        if (!refused) await new Promise((resolve) => setTimeout(resolve, 200));
      }
      assert.ok(refused, 'nothing listens any more: the server under npm stopped too');
    } finally {
      npm.kill('SIGKILL');
    }
  });

  it('SIGTERM the moment the port opens (the start not yet finished) still drains, exits 0 and writes its log', async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const server = await startServerProcess({ root: path.join(directory, `early-${attempt}`) });
      server.child.kill('SIGTERM');
      assert.equal(await server.exited, 0, `attempt ${attempt}: ${JSON.stringify(server.logs.map((entry) => entry.msg))}`);
      assert.ok(server.logs.some((entry) => entry.msg === 'signal received'));
      assert.equal(server.logs.at(-1)?.msg, 'registry stopped');
    }
  });

  it('/readyz turns 503 the moment SIGTERM arrives (http.shutdowndelay), while requests are still served', async () => {
    const server = await startServerProcess({ root: path.join(directory, 'ready'), env: { REGISTRY_HTTP_SHUTDOWNDELAY: '2s' } });
    // The container's HEALTHCHECK reads the address from the same variables the server was given.
    const probe = () => runRegistryCommand([], { REGISTRY_HTTP_ADDR: `127.0.0.1:${server.port}` }, healthcheckScript);
    assert.equal((await rawRequest(server.port, 'GET', '/readyz')).status, 200);
    assert.equal((await probe()).code, 0, 'the health probe passes while the registry is ready');
    server.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ready = await rawRequest(server.port, 'GET', '/readyz');
    assert.equal(ready.status, 503);
    assert.equal((JSON.parse(ready.body.toString()) as { checks: { draining: string } }).checks.draining, 'stopping');
    const draining = await probe();
    assert.equal(draining.code, 1, 'the health probe fails while the registry is stopping');
    assert.match(draining.stderr, /\/readyz answered 503/);
    assert.equal((await rawRequest(server.port, 'GET', '/v2/')).status, 200, 'still serving during the delay');
    assert.equal((await rawRequest(server.port, 'GET', '/healthz')).status, 200, 'alive');
    assert.equal(await server.exited, 0);
    assert.ok(!server.logs.some((entry) => entry.msg === 'request' && (entry.path === '/readyz' || entry.path === '/healthz')), 'probes are not logged at info');
    const stopped = await probe();
    assert.equal(stopped.code, 1, 'the health probe fails when nothing listens');
    assert.match(stopped.stderr, /\/readyz: .*ECONNREFUSED/);
  });
});

describe('the debug listener (http.debug.addr)', () => {
  it('serves Prometheus metrics apart from the registry\'s port, as Distribution does', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'registry-metrics-'));
    const server = await startServerProcess({ root: directory, env: { REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0', REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'true' } });
    try {
      const listening = server.logs.find((entry) => entry.msg === 'registry listening') as { metrics?: { port: number; path: string } };
      assert.equal(listening.metrics?.path, '/metrics');
      await rawRequest(server.port, 'GET', '/v2/');
      const scraped = await rawRequest(listening.metrics!.port, 'GET', '/metrics');
      assert.equal(scraped.status, 200);
      assert.match(String(scraped.headers['content-type']), /text\/plain/);
      assert.match(scraped.body.toString(), /registry_http_requests_total\{route="base",method="GET",status="200"\} 1/);
      assert.match(scraped.body.toString(), /registry_database_query_duration_seconds_count\{engine="sqlite"\} \d+/);
      assert.equal((await rawRequest(server.port, 'GET', '/metrics')).status, 404, 'not on the registry\'s own port');
      assert.equal(await server.stop(), 0);
    } finally {
      await server.stop();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
