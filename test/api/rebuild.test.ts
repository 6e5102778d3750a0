import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openMetadataDatabase, type MetadataDatabase } from '../../src/metadata/database.js';
import { rebuildMetadata } from '../../src/registry/rebuild.js';
import { imageManifest, indexOf, pushManifest } from '../helpers/images.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('rebuild from storage with pieces missing', () => {
  let registry: TestRegistry;
  let fresh: MetadataDatabase;
  before(async () => {
    registry = await createTestRegistry();
    fresh = await openMetadataDatabase(`sqlite:${path.join(registry.root, 'rebuilt.db')}`);
  });
  after(async () => {
    await fresh.close();
    await registry.close();
  });

  it('leaves out what storage cannot back, reports it, and records nothing half', async () => {
    const intact = imageManifest();
    const broken = imageManifest();
    await pushManifest(registry.request, 'team/app', 'intact', intact);
    await pushManifest(registry.request, 'team/app', broken.digest, broken);
    const index = indexOf([{ manifest: broken, architecture: 'amd64' }]);
    await pushManifest(registry.request, 'team/app', 'multi', index);
    const layer = broken.blobs[1]!.digest.slice(7);
    await registry.storage.delete(`blobs/sha256/${layer.slice(0, 2)}/${layer}/data`);

    const progress: number[] = [];
    const summary = await rebuildMetadata({ storage: registry.storage, metadata: fresh.db, clock: registry.clock }, ({ done }) => progress.push(done));
    assert.equal(summary.repositories, 1);
    assert.equal(summary.manifests, 1);
    assert.equal(summary.tags, 1);
    assert.deepEqual(
      summary.skipped.map((entry) => entry.what).sort(),
      [broken.digest, index.digest, 'tag multi'].sort(),
    );
    assert.equal(progress.at(-1), 3, 'progress reaches every manifest');
    const manifests = await fresh.db.selectFrom('manifests').select('digest').execute();
    assert.deepEqual(manifests.map((row) => row.digest), [intact.digest]);
    await assert.rejects(rebuildMetadata({ storage: registry.storage, metadata: fresh.db, clock: registry.clock }), /already holds manifests/);
  });
});
