import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { interpretRangeHeader, parseContentRange } from '../../src/http/range.js';
import { RegistryError } from '../../src/oci/errors.js';

describe('Range header', () => {
  const size = 100;
  const cases: Array<[string | undefined, ReturnType<typeof interpretRangeHeader>]> = [
    [undefined, { kind: 'whole' }],
    ['bytes=0-9', { kind: 'partial', range: { start: 0, end: 9 } }],
    ['bytes=90-', { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=90-1000', { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=-10', { kind: 'partial', range: { start: 90, end: 99 } }],
    ['bytes=-1000', { kind: 'partial', range: { start: 0, end: 99 } }],
    ['bytes=100-', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=9-0', { kind: 'whole' }],
    ['bytes=0-1,5-6', { kind: 'whole' }],
    ['items=0-1', { kind: 'whole' }],
    ['bytes=abc', { kind: 'whole' }],
    ['bytes=-', { kind: 'whole' }],
  ];
  for (const [header, expected] of cases) {
    it(`${header ?? '(none)'} → ${expected.kind}`, () => assert.deepEqual(interpretRangeHeader(header, size), expected));
  }
  it('nothing is satisfiable in an empty object', () => {
    assert.deepEqual(interpretRangeHeader('bytes=0-0', 0), { kind: 'unsatisfiable' });
  });
});

describe('Content-Range of an upload chunk', () => {
  it('accepts start-end with or without a unit and total', () => {
    assert.deepEqual(parseContentRange('0-99'), { start: 0, end: 99 });
    assert.deepEqual(parseContentRange('bytes 100-199/*'), { start: 100, end: 199 });
    assert.deepEqual(parseContentRange('bytes=5-9/10'), { start: 5, end: 9 });
    assert.equal(parseContentRange(undefined), undefined);
  });
  for (const bad of ['x', '1-', '-1', '1--2', 'bytes 1-2-3', '99999999999999999-1']) {
    it(`rejects ${bad}`, () => {
      assert.throws(() => parseContentRange(bad), (error: unknown) => error instanceof RegistryError && error.code === 'BLOB_UPLOAD_INVALID');
    });
  }
});
