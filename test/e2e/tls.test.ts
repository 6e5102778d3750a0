import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request, type Agent } from 'node:https';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { OciLayout } from '../helpers/oci-layout.js';
import { startDockerDaemon } from '../helpers/docker-daemon.js';
import { rawRequest } from '../helpers/raw-http.js';
import { healthcheckScript, runRegistryCommand, startServerProcess } from '../helpers/server-process.js';
import { writeTestPolicy } from '../helpers/auth.js';
import { missingClients, run } from '../helpers/tools.js';

const openssl = (...args: string[]) => run('openssl', args, { timeoutMs: 30_000 });

/** An address of this machine that is not loopback: docker treats 127.0.0.0/8 as insecure (it would skip verification there). */
const hostAddress = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry?.family === 'IPv4' && !entry.internal)?.address;

/** A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate signed by it. */
async function makeCertificates(directory: string, extraIp: string | undefined): Promise<void> {
  await openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Test CA', '-keyout', path.join(directory, 'ca.key'), '-out', path.join(directory, 'ca.crt'));
  await writeFile(path.join(directory, 'server.ext'), `subjectAltName=IP:127.0.0.1,DNS:localhost${extraIp ? `,IP:${extraIp}` : ''}\nextendedKeyUsage=serverAuth\n`);
  await writeFile(path.join(directory, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, subject] of [['server', '/CN=127.0.0.1'], ['server2', '/CN=127.0.0.1 rotated'], ['client', '/CN=ci-client']] as const) {
    await openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, '-keyout', path.join(directory, `${name}.key`), '-out', path.join(directory, `${name}.csr`));
    const extensions = name === 'client' ? 'client.ext' : 'server.ext';
    await openssl('x509', '-req', '-in', path.join(directory, `${name}.csr`), '-CA', path.join(directory, 'ca.crt'), '-CAkey', path.join(directory, 'ca.key'), '-CAcreateserial', '-days', '2', '-extfile', path.join(directory, extensions), '-out', path.join(directory, `${name}.crt`));
  }
}

interface Answer {
  status: number;
  certificate: PeerCertificate;
  body: string;
}

function get(port: number, options: { ca?: Buffer; cert?: Buffer; key?: Buffer; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; agent?: Agent } = {}, pathName = '/v2/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path: pathName, method: 'GET', ...options, ...(options.agent ? {} : { agent: false }) }, (response) => {
      let body = '';
      const certificate = (response.socket as TLSSocket).getPeerCertificate();
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, certificate, body }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('TLS served by the registry itself (http.tls)', { skip: missingClients('openssl', 'skopeo') }, () => {
  let directory: string;
  let layout: OciLayout;
  let ca: Buffer;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-tls-'));
    await makeCertificates(directory, hostAddress);
    ca = await readFile(path.join(directory, 'ca.crt'));
    layout = new OciLayout(path.join(directory, 'layout'));
    await layout.tag(await layout.addImage({ layers: [{ files: [{ name: 'tls.txt', size: 3000 }] }] }), 'v1');
    // skopeo and podman read CA files (*.crt) and client pairs (*.cert + *.key) from a directory.
    await mkdir(path.join(directory, 'certs'));
    await copyFile(path.join(directory, 'ca.crt'), path.join(directory, 'certs', 'ca.crt'));
    await mkdir(path.join(directory, 'client-certs'));
    await copyFile(path.join(directory, 'ca.crt'), path.join(directory, 'client-certs', 'ca.crt'));
    await copyFile(path.join(directory, 'client.crt'), path.join(directory, 'client-certs', 'client.cert'));
    await copyFile(path.join(directory, 'client.key'), path.join(directory, 'client-certs', 'client.key'));
  });
  after(async () => rm(directory, { recursive: true, force: true }));

  const tlsEnv = (extra: Record<string, string> = {}) => ({
    REGISTRY_HTTP_TLS_CERTIFICATE: path.join(directory, 'live.crt'),
    REGISTRY_HTTP_TLS_KEY: path.join(directory, 'live.key'),
    ...extra,
  });
  const useCertificate = async (name: 'server' | 'server2') => {
    await copyFile(path.join(directory, `${name}.key`), path.join(directory, 'live.key'));
    await copyFile(path.join(directory, `${name}.crt`), path.join(directory, 'live.crt'));
  };

  it('skopeo pushes and pulls over HTTPS with the CA in --dest-cert-dir/--src-cert-dir; the token realm says https; plain HTTP is answered 400', async () => {
    await useCertificate('server');
    const files = await writeTestPolicy();
    const server = await startServerProcess({ root: path.join(directory, 'storage-a'), env: tlsEnv({ REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: files.policy }) });
    try {
      const host = `127.0.0.1:${server.port}`;
      const challenge = await get(server.port, { ca });
      assert.equal(challenge.status, 401);
      assert.equal(challenge.certificate.subject.CN, '127.0.0.1');
      await assert.rejects(get(server.port), /self.signed|unable to verify|certificate/i, 'a client without the CA refuses the certificate');
      const plain = await rawRequest(server.port, 'GET', '/v2/');
      assert.equal(plain.status, 400, 'plain HTTP to the TLS port is answered, as Distribution answers it');
      assert.equal(plain.body.toString(), 'Client sent an HTTP request to an HTTPS server.\n');
      const afterwards = await get(server.port, { ca });
      assert.equal(afterwards.status, 401, 'TLS clients are served as before');
      const probe = await runRegistryCommand([], { ...tlsEnv(), REGISTRY_HTTP_ADDR: host }, healthcheckScript);
      assert.equal(probe.code, 0, `the container's health probe asks over HTTPS when http.tls is set: ${probe.stderr}`);
      const realm = await new Promise<string>((resolve, reject) => {
        request({ host: '127.0.0.1', port: server.port, path: '/v2/', ca, agent: false }, (response) => {
          response.resume();
          resolve(String(response.headers['www-authenticate']));
        }).on('error', reject).end();
      });
      assert.match(realm, new RegExp(`realm="https://${host}/auth/token"`));
    } finally {
      await server.stop();
    }
    const open = await startServerProcess({ root: path.join(directory, 'storage-b'), env: tlsEnv() });
    try {
      const host = `127.0.0.1:${open.port}`;
      await run('skopeo', ['copy', '--dest-cert-dir', path.join(directory, 'certs'), `oci:${layout.directory}:v1`, `docker://${host}/team/tls:v1`], { timeoutMs: 120_000 });
      await run('skopeo', ['copy', '--src-cert-dir', path.join(directory, 'certs'), `docker://${host}/team/tls:v1`, `dir:${path.join(directory, 'pulled')}`], { timeoutMs: 120_000 });
      const inspected = JSON.parse((await run('skopeo', ['inspect', '--cert-dir', path.join(directory, 'certs'), `docker://${host}/team/tls:v1`])).stdout) as { Digest: string };
      assert.match(inspected.Digest, /^sha256:/);
      if (!missingClients('podman')) {
        await run('podman', ['pull', '--cert-dir', path.join(directory, 'certs'), `${host}/team/tls:v1`], { timeoutMs: 120_000 });
        await run('podman', ['rmi', '-f', `${host}/team/tls:v1`], { timeoutMs: 60_000 }).catch(() => undefined);
      }
    } finally {
      await open.stop();
    }
  });

  it('rotation: new files are served to the next connection (watched, and on SIGHUP); an open connection goes on', async () => {
    await useCertificate('server');
    const server = await startServerProcess({ root: path.join(directory, 'storage-c'), env: tlsEnv() });
    try {
      const { Agent } = await import('node:https');
      const keptAlive = new Agent({ keepAlive: true, maxSockets: 1, ca });
      const before = await get(server.port, { agent: keptAlive });
      assert.equal(before.certificate.subject.CN, '127.0.0.1');
      await useCertificate('server2');
      let rotated = '';
      for (let waited = 0; waited < 10_000 && rotated !== '127.0.0.1 rotated'; waited += 250) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        rotated = String((await get(server.port, { ca })).certificate.subject.CN);
      }
      assert.equal(rotated, '127.0.0.1 rotated', 'the next connection sees the new certificate');
      const stillOpen = await get(server.port, { agent: keptAlive });
      assert.equal(stillOpen.status, 200);
      assert.equal(stillOpen.certificate.subject.CN, '127.0.0.1', 'the open connection was not dropped');
      keptAlive.destroy();
      assert.ok(server.logs.some((entry) => entry.msg === 'TLS certificate reloaded'));
      // SIGHUP reloads too (here: back to the first certificate, whose files are put back without a change the watcher would see in time).
      await useCertificate('server');
      server.child.kill('SIGHUP');
      let back = '';
      for (let waited = 0; waited < 5000 && back !== '127.0.0.1'; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        back = String((await get(server.port, { ca })).certificate.subject.CN);
      }
      assert.equal(back, '127.0.0.1');
      assert.ok(server.logs.some((entry) => entry.msg === 'TLS certificate reloaded' && entry.reason === 'SIGHUP'));
    } finally {
      await server.stop();
    }
  });

  it('mutual TLS (http.tls.clientcas): a client without a certificate the CA signed is refused; skopeo with one pushes', async () => {
    await useCertificate('server');
    const server = await startServerProcess({ root: path.join(directory, 'storage-d'), env: tlsEnv({ REGISTRY_HTTP_TLS_CLIENTCAS: path.join(directory, 'ca.crt'), REGISTRY_HTTP_TLS_MINIMUMTLS: 'tls1.3' }) });
    try {
      await assert.rejects(get(server.port, { ca }), 'no client certificate: refused in the handshake');
      const cert = await readFile(path.join(directory, 'client.crt'));
      const key = await readFile(path.join(directory, 'client.key'));
      assert.equal((await get(server.port, { ca, cert, key })).status, 200);
      await assert.rejects(get(server.port, { ca, cert, key, maxVersion: 'TLSv1.2' }), 'below http.tls.minimumtls');
      const host = `127.0.0.1:${server.port}`;
      await assert.rejects(run('skopeo', ['copy', '--dest-cert-dir', path.join(directory, 'certs'), `oci:${layout.directory}:v1`, `docker://${host}/team/mtls:v1`], { timeoutMs: 60_000 }));
      await run('skopeo', ['copy', '--dest-cert-dir', path.join(directory, 'client-certs'), `oci:${layout.directory}:v1`, `docker://${host}/team/mtls:v1`], { timeoutMs: 120_000 });
    } finally {
      await server.stop();
    }
  });

  it('docker trusts the registry through /etc/docker/certs.d/<host:port>/ca.crt, and refuses it without', { skip: missingClients('dockerd', 'docker') ?? (hostAddress ? undefined : 'no address but loopback here (docker skips verification on 127.0.0.0/8)') }, async () => {
    await useCertificate('server');
    const server = await startServerProcess({ root: path.join(directory, 'storage-docker'), env: tlsEnv({ REGISTRY_HTTP_ADDR: `${hostAddress}:0` }) });
    const host = `${hostAddress}:${server.port}`;
    const certsDirectory = path.join('/etc/docker/certs.d', host);
    const daemon = await startDockerDaemon(path.join(directory, 'docker'));
    try {
      await run('skopeo', ['copy', '--dest-daemon-host', `unix://${daemon.socket}`, `oci:${layout.directory}:v1`, 'docker-daemon:local/tls:v1'], { timeoutMs: 120_000 });
      await daemon.docker(['tag', 'local/tls:v1', `${host}/team/docker-tls:v1`]);
      await assert.rejects(daemon.docker(['push', `${host}/team/docker-tls:v1`]), /x509|certificate|unknown authority/i, 'without the CA, docker refuses the certificate');
      await mkdir(certsDirectory, { recursive: true });
      await copyFile(path.join(directory, 'ca.crt'), path.join(certsDirectory, 'ca.crt'));
      await daemon.docker(['push', `${host}/team/docker-tls:v1`]);
      await daemon.docker(['rmi', `${host}/team/docker-tls:v1`]);
      await daemon.docker(['pull', `${host}/team/docker-tls:v1`]);
    } finally {
      await daemon.stop();
      await server.stop();
      await rm(certsDirectory, { recursive: true, force: true });
    }
  });

  it('a certificate without a key stops the start with both keys named', async () => {
    const { runRegistryCommand } = await import('../helpers/server-process.js');
    const result = await runRegistryCommand(['serve'], { REGISTRY_HTTP_TLS_CERTIFICATE: path.join(directory, 'server.crt'), REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage-e') });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /http\.tls\.certificate and http\.tls\.key go together/);
  });
});
