import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorCatalogue, errorEnvelope, RegistryError } from '../../src/oci/errors.js';

describe('error catalogue', () => {
  it('holds every code of the distribution spec with its status', () => {
    const expected: Record<string, number> = {
      BLOB_UNKNOWN: 404,
      BLOB_UPLOAD_INVALID: 400,
      BLOB_UPLOAD_UNKNOWN: 404,
      DIGEST_INVALID: 400,
      MANIFEST_BLOB_UNKNOWN: 400,
      MANIFEST_INVALID: 400,
      MANIFEST_UNKNOWN: 404,
      NAME_INVALID: 400,
      NAME_UNKNOWN: 404,
      SIZE_INVALID: 400,
      UNAUTHORIZED: 401,
      DENIED: 403,
      UNSUPPORTED: 405,
      TOOMANYREQUESTS: 429,
    };
    for (const [code, status] of Object.entries(expected)) {
      assert.equal(errorCatalogue[code as keyof typeof errorCatalogue]?.status, status, code);
    }
  });

  it('writes the envelope with code, message and optional detail', () => {
    assert.deepEqual(errorEnvelope(new RegistryError('NAME_UNKNOWN')), {
      errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }],
    });
    const error = new RegistryError('RANGE_INVALID', { message: 'bad chunk', detail: { at: 5 }, headers: { Range: '0-4' } });
    assert.equal(error.status, 416);
    assert.deepEqual(error.headers, { Range: '0-4' });
    assert.deepEqual(errorEnvelope(error), { errors: [{ code: 'RANGE_INVALID', message: 'bad chunk', detail: { at: 5 } }] });
  });

  it('gives the statuses the spec asks for besides 400 (409, 413, 416) codes of their own (RegistryError takes no status per throw)', () => {
    const statuses = new Map<number, string[]>();
    for (const [code, entry] of Object.entries(errorCatalogue)) statuses.set(entry.status, [...(statuses.get(entry.status) ?? []), code]);
    assert.deepEqual(statuses.get(409), ['CONFLICT']);
    assert.deepEqual(statuses.get(413), ['TOO_LARGE']);
    assert.deepEqual(statuses.get(416), ['RANGE_INVALID']);
  });

  it('docs/errors.md lists every code with its one status', async () => {
    const { readFile } = await import('node:fs/promises');
    const catalogue = await readFile('docs/errors.md', 'utf8');
    const listed = Object.fromEntries([...catalogue.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((match) => [match[1]!, Number(match[2])]));
    assert.deepEqual(listed, Object.fromEntries(Object.entries(errorCatalogue).map(([code, entry]) => [code, entry.status])));
  });
});
