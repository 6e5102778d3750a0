import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { OciLayout, type BlobDescriptor } from '../helpers/oci-layout.js';
import { rawRequest } from '../helpers/raw-http.js';
import { pushSignature } from '../helpers/signatures.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const skip = missingClients('skopeo');
const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Digest of the manifest a reference names, as skopeo reads it. */
async function digestOf(reference: string, options: string[] = []): Promise<string> {
  const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ...options, reference], { timeoutMs: 120_000 });
  return sha256(raw.stdout);
}

describe('offline sites: mirror sync, export and import', { skip }, () => {
  let directory: string;
  let source: ServerProcess;
  let image: BlobDescriptor & { layers: BlobDescriptor[] };
  let index: BlobDescriptor;
  let signature: string;
  const rootOf = (name: string) => path.join(directory, name);
  const command = (args: string[], env: Record<string, string> = {}) => runRegistryCommand(args, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: rootOf('source'), ...env });

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-transfer-'));
    source = await startServerProcess({ root: rootOf('source') });
    const layout = new OciLayout(rootOf('layout'));
    image = await layout.addImage({ layers: [{ files: [{ name: 'etc/app.conf', size: 20_000 }] }, { files: [{ name: 'bin/app', size: 3 * 1024 * 1024 }] }] });
    await layout.tag(image, 'app');
    const amd64 = await layout.addImage({ layers: [{ files: [{ name: 'bin/amd64', size: 100_000 }] }], architecture: 'amd64' });
    const arm64 = await layout.addImage({ layers: [{ files: [{ name: 'bin/arm64', size: 120_000 }] }], architecture: 'arm64' });
    index = await layout.addIndex([amd64, arm64]);
    await layout.tag(index, 'multi');
    const host = `127.0.0.1:${source.port}`;
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.directory}:app`, `docker://${host}/team/app:v1`]);
    await run('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout.directory}:multi`, `docker://${host}/team/multi:v2`]);
    await run('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout.directory}:multi`, `docker://${host}/team/multi:v3`]);
    signature = await pushSignature(source.port, 'team/app', image);
  });
  after(async () => {
    await source?.stop();
    await rm(directory, { recursive: true, force: true });
  });

  it('export writes an OCI archive skopeo reads; import into an empty registry keeps every digest and the referrers', async () => {
    const bundle = path.join(directory, 'bundle.tar');
    const exported = await command(['export', '--out', bundle, 'team/app:v1', 'team/multi:v2']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^exported 2 images: 5 manifests, 8 blobs \([\d.]+ MiB\) to /);
    assert.equal(await digestOf(`oci-archive:${bundle}:team/app:v1`), image.digest);
    assert.equal(await digestOf(`oci-archive:${bundle}:team/multi:v2`), index.digest);

    const imported = await runRegistryCommand(['import', bundle], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: rootOf('imported') });
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /^imported 2 images: 5 manifests, 8 blobs \([\d.]+ MiB\) into this registry's stores; 8 blobs stored \([\d.]+ MiB\), 0 already there\n$/);
    assert.equal(imported.stdout.match(/\(([\d.]+ MiB)\)/)?.[1], exported.stdout.match(/\(([\d.]+ MiB)\)/)?.[1], 'the same size as the export said');
    const target = await startServerProcess({ root: rootOf('imported') });
    try {
      const host = `127.0.0.1:${target.port}`;
      assert.equal(await digestOf(`docker://${host}/team/app:v1`), image.digest);
      assert.equal(await digestOf(`docker://${host}/team/multi:v2`), index.digest);
      const out = path.join(directory, 'pulled');
      await run('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${host}/team/multi:v2`, `oci:${out}:multi`]);
      const pulledIndex = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      assert.equal(pulledIndex.manifests[0]?.digest, index.digest);
      for (const layer of image.layers) {
        const blob = await rawRequest(target.port, 'GET', `/v2/team/app/blobs/${layer.digest}`);
        assert.equal(sha256(blob.body), layer.digest);
      }
      const referrers = (await rawRequest(target.port, 'GET', `/v2/team/app/referrers/${image.digest}`)).json() as { manifests: Array<{ digest: string }> };
      assert.deepEqual(referrers.manifests.map((entry) => entry.digest), [signature]);
      const tags = (await rawRequest(target.port, 'GET', '/v2/team/multi/tags/list')).json() as { tags: string[] };
      assert.deepEqual(tags.tags, ['v2'], 'only what was exported');
    } finally {
      await target.stop();
    }
    const again = await runRegistryCommand(['import', bundle], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: rootOf('imported') });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /; 0 blobs stored \(0 B\), 8 already there/, 'a second import finds every blob there');
  });

  it('imports into a running registry over HTTP, with token auth', async () => {
    const bundle = path.join(directory, 'bundle.tar');
    const policy = path.join(directory, 'policy.yaml');
    await writeFile(policy, `users:\n  loader: { password: "${bcrypt.hashSync('loader-secret', 4)}" }\nrules:\n  - { accounts: [loader], repositories: ["**"], actions: [pull, push] }\n`);
    const target = await startServerProcess({ root: rootOf('remote'), env: { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: policy } });
    try {
      const url = `http://127.0.0.1:${target.port}`;
      const refused = await runRegistryCommand(['import', bundle, '--to', url, '--creds', 'loader:wrong'], {});
      assert.equal(refused.code, 1);
      const imported = await runRegistryCommand(['import', bundle, '--to', url, '--creds', 'loader:loader-secret'], {});
      assert.equal(imported.code, 0, imported.stderr);
      const creds = ['--creds', 'loader:loader-secret'];
      assert.equal(await digestOf(`docker://127.0.0.1:${target.port}/team/app:v1`, creds), image.digest);
      assert.equal(await digestOf(`docker://127.0.0.1:${target.port}/team/multi:v2`, creds), index.digest);
    } finally {
      await target.stop();
    }
  });

  it('refuses a corrupt archive and stores nothing from the bad blob', async () => {
    const bundle = path.join(directory, 'bundle.tar');
    const bytes = await readFile(bundle);
    const layerHex = image.layers[1]!.digest.slice('sha256:'.length);
    const at = bytes.indexOf(Buffer.from(`blobs/sha256/${layerHex}`));
    assert.ok(at >= 0);
    bytes[at + 512 + 4096] = (bytes[at + 512 + 4096] ?? 0) ^ 0xff;
    const corrupt = path.join(directory, 'corrupt.tar');
    await writeFile(corrupt, bytes);
    const result = await runRegistryCommand(['import', corrupt], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: rootOf('corrupt') });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`blob sha256:${layerHex}`));
    await assert.rejects(stat(path.join(rootOf('corrupt'), 'blobs', 'sha256', layerHex.slice(0, 2), layerHex, 'data')));
  });

  it('mirror sync caches a list from the upstream (tag patterns, chosen platforms), reruns skip it all, and the cache serves offline and exports', async () => {
    const config = path.join(directory, 'mirror.yaml');
    await writeFile(
      config,
      ['mirror:', '  upstreams:', '    central:', `      url: http://127.0.0.1:${source.port}`, '      timeout: 5s', ''].join('\n'),
    );
    const list = path.join(directory, 'images.yaml');
    await writeFile(list, ['images:', '  - central/team/app:v1', '  - name: central/team/multi', "    tags: ['v*']", '    platforms: [linux/arm64]', ''].join('\n'));
    const env = { REGISTRY_CONFIG: config, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: rootOf('mirror') };
    const first = await runRegistryCommand(['mirror', 'sync', '--file', list], env);
    assert.equal(first.code, 0, first.stderr);
    // Distinct objects: app:v1 and its signature; one index for v2 and v3, of which the arm64 image is kept.
    assert.match(first.stdout, /^synced 3 images: 4 manifests, 6 blobs \([\d.]+ MiB\); 6 blobs fetched \([\d.]+ MiB\), 0 already cached, 0 failed\n$/);
    assert.match(first.stderr, /central\/team\/multi:v3 \[#+\]/, 'a progress bar per image');
    const second = await runRegistryCommand(['mirror', 'sync', '--file', list], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /; 0 blobs fetched \(0 B\), 6 already cached, 0 failed/);

    const missing = path.join(directory, 'missing.yaml');
    await writeFile(missing, ['images:', '  - central/team/app:nope', '  - central/team/app:v1', ''].join('\n'));
    const partial = await runRegistryCommand(['mirror', 'sync', '--file', missing], env);
    assert.equal(partial.code, 1);
    assert.match(partial.stdout, /1 failed\n\s+failed central\/team\/app:nope/);

    await source.stop();
    const mirror = await startServerProcess({ root: rootOf('mirror'), env: { REGISTRY_CONFIG: config } });
    try {
      assert.equal(await digestOf(`docker://127.0.0.1:${mirror.port}/central/team/app:v1`), image.digest);
      const layer = image.layers[1]!;
      const blob = await rawRequest(mirror.port, 'GET', `/v2/central/team/app/blobs/${layer.digest}`);
      assert.equal(sha256(blob.body), layer.digest);
      const referrers = (await rawRequest(mirror.port, 'GET', `/v2/central/team/app/referrers/${image.digest}`)).json() as { manifests: Array<{ digest: string; artifactType?: string }> };
      assert.deepEqual(referrers.manifests.map((entry) => [entry.digest, entry.artifactType]), [[signature, 'application/vnd.example.signature']], 'the signature was synced, and is listed offline');
      const signed = await rawRequest(mirror.port, 'GET', `/v2/central/team/app/manifests/${signature}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(signed.status, 200);
      assert.equal(sha256(signed.body), signature);
    } finally {
      await mirror.stop();
    }
    const bundle = path.join(directory, 'from-cache.tar');
    const exported = await runRegistryCommand(['export', '--out', bundle, 'central/team/app:v1'], env);
    assert.equal(exported.code, 0, exported.stderr);
    assert.equal(await digestOf(`oci-archive:${bundle}:central/team/app:v1`), image.digest);
    const archived = JSON.parse((await run('tar', ['-xOf', bundle, 'index.json'])).stdout) as { manifests: Array<{ digest: string }> };
    assert.ok(archived.manifests.some((entry) => entry.digest === signature), 'the export from the cache carries the signature');
    source = await startServerProcess({ root: rootOf('source') });
  });
});
