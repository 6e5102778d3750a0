import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { imageManifest, pushManifest, type TestManifest } from '../helpers/images.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

/** A small deterministic generator (mulberry32): the same seed sends the same requests. */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values that have broken parsers elsewhere: empty, huge, negative, not numbers, bad encodings, other grammars. */
const nasty = [
  '',
  ' ',
  '0',
  '-1',
  '1e3',
  'NaN',
  '99999999999999999999999',
  '%00',
  '%',
  '%zz',
  '..',
  '../..',
  '..%2F..%2Fetc',
  '\u0000',
  '☃',
  'a'.repeat(3000),
  'sha256:',
  'sha256:zz',
  `sha256:${'A'.repeat(64)}`,
  `sha512:${'a'.repeat(64)}`,
  `md5:${'a'.repeat(32)}`,
  '<script>alert(1)</script>',
  "'; drop table tags; --",
  '{}',
  '[]',
  'true',
  'null',
  '2026-13-45T99:99:99Z',
  '1970-01-01T00:00:00Z',
  '-',
  '/',
  '*',
];

/**
 * Parameters, path segments and headers of every kind of endpoint filled with hostile values: the
 * registry may refuse any of them, never with a server error. Seeded, so a failure is repeatable.
 */
describe('fuzzing the API\'s parameters: no value makes a server error', () => {
  let registry: TestRegistry;
  let image: TestManifest;
  before(async () => {
    registry = await createTestRegistry();
    image = imageManifest();
    await pushManifest(registry.request, 'team/app', 'v1', image);
  });
  after(async () => registry?.close());

  it('answers 1,500 hostile requests with no 5xx', async () => {
    const random = generator(20261203);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    const value = () => (random() < 0.8 ? pick(nasty) : Array.from({ length: 1 + Math.floor(random() * 40) }, () => String.fromCharCode(32 + Math.floor(random() * 95))).join(''));
    const q = () => encodeURIComponent(value());
    const segment = () => encodeURIComponent(value()) || 'x';
    const digest = image.digest;
    const templates: Array<() => { method: 'get' | 'head' | 'put' | 'post' | 'patch' | 'delete'; path: string; headers?: Record<string, string>; body?: string }> = [
      () => ({ method: 'get', path: `/v2/_catalog?n=${q()}&last=${q()}` }),
      () => ({ method: 'get', path: `/v2/team/app/tags/list?n=${q()}&last=${q()}` }),
      () => ({ method: 'get', path: `/v2/${segment()}/tags/list` }),
      () => ({ method: pick(['get', 'head', 'delete'] as const), path: `/v2/team/app/manifests/${segment()}` }),
      () => ({ method: 'get', path: `/v2/team/app/manifests/v1`, headers: { Accept: value().replace(/[^\x20-\x7e]/g, '') } }),
      () => ({ method: 'put', path: `/v2/team/app/manifests/${segment()}`, headers: { 'Content-Type': pick(['application/vnd.oci.image.manifest.v1+json', value().replace(/[^\x20-\x7e]/g, '')]) }, body: pick([value(), '{"schemaVersion":2,"config":' + value() + '}']) }),
      () => ({ method: pick(['get', 'head', 'delete'] as const), path: `/v2/team/app/blobs/${segment()}`, headers: { Range: `bytes=${value().replace(/[^\x20-\x7e]/g, '')}` } }),
      () => ({ method: 'get', path: `/v2/team/app/blobs/${image.blobs[1]!.digest}`, headers: { Range: `bytes=${q()}-${q()}` } }),
      () => ({ method: 'post', path: `/v2/team/app/blobs/uploads/?digest=${q()}&mount=${q()}&from=${q()}`, body: value() }),
      () => ({ method: pick(['get', 'patch', 'put', 'delete'] as const), path: `/v2/team/app/blobs/uploads/${segment()}?digest=${q()}`, headers: { 'Content-Range': value().replace(/[^\x20-\x7e]/g, '') }, body: value() }),
      () => ({ method: 'get', path: `/v2/team/app/referrers/${segment()}?artifactType=${q()}` }),
      () => ({ method: 'get', path: `/v2/team/app/referrers/${digest}?artifactType=${q()}` }),
      () => ({ method: 'get', path: `/api/v1/audit/events?repository=${q()}&tag=${q()}&actor=${q()}&action=${q()}&digest=${q()}&since=${q()}&until=${q()}&n=${q()}&cursor=${q()}&format=${q()}` }),
      () => ({ method: 'get', path: `/api/v1/repositories/team/app/-/tags/${segment()}?at=${q()}` }),
      () => ({ method: 'get', path: `/api/v1/repositories/${segment()}/-/tags/v1/history` }),
      () => ({ method: 'post', path: `/api/v1/repositories/team/app/-/tags/${segment()}/restore`, headers: { 'Content-Type': 'application/json' }, body: pick([value(), `{"digest":${JSON.stringify(value())}}`, `{"event":${value()}}`]) }),
      () => ({ method: 'get', path: `/api/v1/repositories?n=${q()}&last=${q()}&q=${q()}&sort=${q()}` }),
      () => ({ method: 'get', path: `/api/v1/repositories/team/app/-/tags?n=${q()}&last=${q()}&filter=${q()}` }),
      () => ({ method: 'post', path: `/api/v1/gc?dryrun=${q()}` }),
      () => ({ method: 'get', path: `/api/v1/gc/${segment()}` }),
      () => ({ method: 'post', path: `/api/v1/retention?dryrun=${q()}` }),
      () => ({ method: 'get', path: `/ui/${segment()}` }),
      () => ({ method: 'get', path: `/auth/token?scope=${q()}&service=${q()}` }),
    ];
    const serverErrors: string[] = [];
    for (let index = 0; index < 1500; index++) {
      const spec = pick(templates)();
      let call = registry.request[spec.method](spec.path);
      for (const [name, headerValue] of Object.entries(spec.headers ?? {})) call = call.set(name, headerValue);
      const response = spec.body !== undefined ? await call.send(spec.body) : await call;
      if (response.status >= 500) serverErrors.push(`${spec.method.toUpperCase()} ${spec.path.slice(0, 200)} → ${response.status} ${JSON.stringify(response.body).slice(0, 200)}`);
      // A GC started by the fuzzer runs on; the next one waits its turn (409) — not an error.
      if (spec.path.startsWith('/api/v1/gc?dryrun=true') || spec.path.startsWith('/api/v1/gc?dryrun=false')) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(serverErrors, []);
    await registry.request.get('/v2/team/app/manifests/v1').set('Accept', image.mediaType).expect(200);
  });
});
