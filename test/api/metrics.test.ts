import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryMetrics } from '../../src/metrics/registry-metrics.js';
import { basic, passwords, writeTestPolicy } from '../helpers/auth.js';
import { allManifestTypes, imageManifest, pushManifest } from '../helpers/images.js';
import { createTestRegistry } from '../helpers/test-registry.js';
import { mirrorConfigFor, startTestUpstream } from '../helpers/upstream.js';

/** The value of one series in the exposition text, or undefined when it is absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('Prometheus metrics', () => {
  it('count and time requests by route, method and status; bytes in and out; storage and database operations; uploads in progress', async () => {
    const metrics = new RegistryMetrics({ processMetrics: true });
    const registry = await createTestRegistry({ metrics });
    try {
      const image = imageManifest();
      await pushManifest(registry.request, 'team/app', 'v1', image);
      await registry.request.get('/v2/team/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      await registry.request.get('/v2/team/app/manifests/nope').set('Accept', allManifestTypes).expect(404);
      await registry.request.get(`/v2/team/app/blobs/${image.blobs[1]!.digest}`).expect(200);
      await registry.request.post('/v2/team/app/blobs/uploads/').expect(202);
      // Requests are counted when their response has closed, a moment after the client has it.
      let text = '';
      for (let waited = 0; waited < 5000; waited += 20) {
        text = await metrics.text();
        if (sample(text, 'registry_http_requests_total', { route: 'upload.start', method: 'POST', status: '202' }) === 1) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(sample(text, 'registry_http_requests_total', { route: 'manifest.get', method: 'GET', status: '200' }), 1);
      assert.equal(sample(text, 'registry_http_requests_total', { route: 'manifest.get', method: 'GET', status: '404' }), 1);
      assert.equal(sample(text, 'registry_http_requests_total', { route: 'manifest.put', method: 'PUT', status: '201' }), 1);
      assert.equal(sample(text, 'registry_http_request_duration_seconds_count', { route: 'manifest.get', status: '200' }), 1);
      assert.equal(sample(text, 'registry_http_request_bytes_total', { route: 'manifest.put' }), image.bytes.length);
      assert.equal(sample(text, 'registry_http_response_bytes_total', { route: 'blob.get' }), image.blobs[1]!.bytes.length);
      assert.ok((sample(text, 'registry_storage_operation_duration_seconds_count', { driver: registry.storage.name, operation: 'stat' }) ?? 0) > 0);
      assert.ok((sample(text, 'registry_database_query_duration_seconds_count', { engine: 'sqlite' }) ?? 0) > 0);
      assert.equal(sample(text, 'registry_uploads_in_progress'), 1, 'the upload started and left open');
      assert.ok(sample(text, 'process_resident_memory_bytes') !== undefined, 'Node process metrics');
      assert.ok(!text.includes('team/app'), 'no repository names in labels');
    } finally {
      await registry.close();
    }
  });

  it('count auth outcomes, garbage collection runs and the mirror\'s cache', async () => {
    const files = await writeTestPolicy();
    const metrics = new RegistryMetrics({ processMetrics: false });
    const registry = await createTestRegistry({ metrics, auth: { mode: 'htpasswd', policy: files.policy, htpasswd: { path: files.htpasswd } } });
    try {
      await registry.request.get('/v2/').expect(401);
      await registry.request.get('/v2/').set('Authorization', basic('alice', passwords.alice)).expect(200);
      await registry.request.delete('/v2/team-a/x/manifests/v1').set('Authorization', basic('bob', passwords.bob)).expect(403);
      const run = await registry.request.post('/api/v1/gc?dryrun=false').set('Authorization', basic('olga', passwords.olga)).expect(202);
      for (let attempt = 0; attempt < 100; attempt++) {
        const state = (await registry.request.get(`/api/v1/gc/${run.body.id as number}`).set('Authorization', basic('olga', passwords.olga))).body.state as string;
        if (state !== 'running') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const text = await metrics.text();
      assert.equal(sample(text, 'registry_auth_total', { outcome: 'unauthorized' }), 1);
      assert.equal(sample(text, 'registry_auth_total', { outcome: 'denied' }), 1);
      assert.ok((sample(text, 'registry_auth_total', { outcome: 'granted' }) ?? 0) >= 2);
      assert.equal(sample(text, 'registry_gc_runs_total', { state: 'succeeded' }), 1);
      assert.equal(sample(text, 'registry_gc_last_run', { figure: 'freed_bytes' }), 0);
    } finally {
      await registry.close();
    }

    const upstream = await startTestUpstream();
    const mirrored = new RegistryMetrics({ processMetrics: false });
    const mirror = await createTestRegistry({ metrics: mirrored, mirror: mirrorConfigFor(upstream) });
    try {
      const image = imageManifest();
      await pushManifest(await upstream.pusher(['repository:team-a/app:pull,push']), 'team-a/app', 'v1', image);
      for (let pull = 0; pull < 2; pull++) await mirror.request.get('/v2/central/team-a/app/manifests/v1').set('Accept', allManifestTypes).expect(200);
      const text = await mirrored.text();
      assert.ok((sample(text, 'registry_mirror_upstream_requests_total', { upstream: 'central' }) ?? 0) >= 1);
      assert.ok((sample(text, 'registry_mirror_cache_hits_total', { upstream: 'central' }) ?? 0) >= 1, 'the second pull is a hit');
      assert.equal(sample(text, 'registry_mirror_circuit_open', { upstream: 'central' }), 0);
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });
});
