import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OciLayout } from '../helpers/oci-layout.js';
import { runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const immutable = JSON.stringify([{ repositories: ['prod/**'], tags: ['v*'] }]);

/** A release pipeline pushing to a registry whose release tags are immutable. */
describe('immutable tags with skopeo', { skip: missingClients('skopeo') }, () => {
  let directory: string;
  let server: ServerProcess;
  let layout: OciLayout;
  let host: string;
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });
  const fails = async (...args: string[]): Promise<string> => {
    try {
      await skopeo(...args);
    } catch (error) {
      return String((error as Error).message);
    }
    throw new Error(`skopeo ${args.join(' ')} succeeded`);
  };

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-immutable-'));
    server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_TAGS_IMMUTABLE: immutable } });
    host = `127.0.0.1:${server.port}`;
    layout = new OciLayout(path.join(directory, 'layout'));
    for (const name of ['first', 'second']) await layout.tag(await layout.addImage({ layers: [{ files: [{ name: `${name}.txt`, size: 3000 }] }] }), name);
  });
  after(async () => {
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('a release tag is pushed once; a retry of the same image succeeds; another image or a delete fails with the rule named', async () => {
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:first`, `docker://${host}/prod/api:v1.2.0`);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:first`, `docker://${host}/prod/api:v1.2.0`);
    const moved = await fails('copy', '--dest-tls-verify=false', `oci:${layout.directory}:second`, `docker://${host}/prod/api:v1.2.0`);
    assert.match(moved, /prod\/api:v1\.2\.0 is immutable \(tags\.immutable\[0\]/);
    const deleted = await fails('delete', '--tls-verify=false', `docker://${host}/prod/api:v1.2.0`);
    assert.match(deleted, /denied|immutable/i);
    await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:second`, `docker://${host}/prod/api:latest`);
    const inspected = JSON.parse((await skopeo('inspect', '--tls-verify=false', `docker://${host}/prod/api:v1.2.0`)).stdout) as { Digest: string };
    const first = JSON.parse((await skopeo('inspect', '--tls-verify=false', `oci:${layout.directory}:first`)).stdout) as { Digest: string };
    assert.equal(inspected.Digest, first.Digest, 'still the first image');
  });

  it('registry retention run: a dry run lists, a run deletes the old tags, never the immutable one or latest', async () => {
    const policies = JSON.stringify([{ repositories: ['prod/**'], keep: { mostRecent: 1 } }]);
    const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage'), REGISTRY_TAGS_IMMUTABLE: immutable, REGISTRY_RETENTION_POLICIES: policies };
    for (const tag of ['build-1', 'build-2', 'build-3']) await skopeo('copy', '--dest-tls-verify=false', `oci:${layout.directory}:second`, `docker://${host}/prod/api:${tag}`);
    const dry = await runRegistryCommand(['retention', 'run', '--dry-run', '--json'], env);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = (JSON.parse(dry.stdout) as { deleted: Array<{ tag: string }> }).deleted.map((entry) => entry.tag).sort();
    assert.deepEqual(planned, ['build-1', 'build-2'], 'the newest build stays, v1.2.0 is immutable, latest is not named');
    const real = await runRegistryCommand(['retention', 'run'], env);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, /deleted 2 tags in 1 repository under 1 policy/);
    const tags = JSON.parse((await skopeo('list-tags', '--tls-verify=false', `docker://${host}/prod/api`)).stdout) as { Tags: string[] };
    assert.deepEqual(tags.Tags.sort(), ['build-3', 'latest', 'v1.2.0']);
  });

  it('registry tags check says which rule covers a tag', async () => {
    const env = { REGISTRY_TAGS_IMMUTABLE: immutable };
    const covered = await runRegistryCommand(['tags', 'check', 'prod/api:v1.2.0'], env);
    assert.equal(covered.code, 0, covered.stderr);
    assert.match(covered.stdout, /prod\/api:v1\.2\.0 is immutable \(tags\.immutable\[0\]: repositories prod\/\*\*, tags v\*\)/);
    const free = await runRegistryCommand(['tags', 'check', 'prod/api:latest'], env);
    assert.equal(free.code, 1);
    assert.match(free.stdout, /not covered by any immutable rule/);
  });
});
