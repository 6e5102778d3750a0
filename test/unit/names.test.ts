import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryError } from '../../src/oci/errors.js';
import { isValidTag, validateRepositoryName } from '../../src/oci/names.js';

describe('repository names', () => {
  for (const good of ['a', 'library/alpine', 'my-org/my.app/sub_dir', 'a__b', 'a---b', '0', `${'a'.repeat(255)}`]) {
    it(`accepts ${good.slice(0, 40)}`, () => assert.equal(validateRepositoryName(good), good));
  }
  for (const bad of ['', 'A', 'a/', '/a', 'a//b', '.', '..', 'a/../b', 'a/./b', 'a..b', 'a___b', '-a', 'a-', 'a%2fb', 'a b', 'a\\b', `${'a'.repeat(256)}`]) {
    it(`rejects ${JSON.stringify(bad.slice(0, 40))} with NAME_INVALID`, () => {
      assert.throws(() => validateRepositoryName(bad), (error: unknown) => error instanceof RegistryError && error.code === 'NAME_INVALID');
    });
  }
});

describe('tags', () => {
  it('follows [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}', () => {
    for (const good of ['latest', 'v1.2.3', '_x', 'A-b.c_d', 'a'.repeat(128)]) assert.ok(isValidTag(good), good);
    for (const bad of ['', '.x', '-x', 'a/b', 'a:b', 'a'.repeat(129)]) assert.ok(!isValidTag(bad), bad);
  });
});
