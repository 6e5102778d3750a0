import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestBytes, parseDigest } from '../../src/oci/digest.js';
import { RegistryError } from '../../src/oci/errors.js';

const emptySha256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('digests', () => {
  it('parses sha256 and sha512', () => {
    assert.deepEqual(parseDigest(emptySha256), { algorithm: 'sha256', hex: emptySha256.slice(7), value: emptySha256 });
    const sha512 = digestBytes(Buffer.alloc(0), 'sha512').value;
    assert.equal(parseDigest(sha512).algorithm, 'sha512');
    assert.equal(digestBytes(Buffer.alloc(0)).value, emptySha256);
  });

  for (const bad of [
    '',
    'sha256',
    'sha256:',
    ':abc',
    'sha256:abc',
    `sha256:${'A'.repeat(64)}`,
    `sha256:${'g'.repeat(64)}`,
    `md5:${'a'.repeat(32)}`,
    `sha512:${'a'.repeat(64)}`,
    `sha256:${'a'.repeat(64)}/../x`,
    `SHA256:${'a'.repeat(64)}`,
  ]) {
    it(`rejects ${JSON.stringify(bad.slice(0, 30))} with DIGEST_INVALID`, () => {
      assert.throws(() => parseDigest(bad), (error: unknown) => error instanceof RegistryError && error.code === 'DIGEST_INVALID');
    });
  }
});
