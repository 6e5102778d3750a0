import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeContent, formatBytes, plural } from '../../src/cli/report.js';

describe('how transfer commands word their figures', () => {
  it('prints sizes in the unit that fits, small ones in bytes and KiB rather than 0.0 MiB', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(3 * 1024 + 512), '3.5 KiB');
    assert.equal(formatBytes(12 * 1024 * 1024), '12.0 MiB');
    assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5 GiB');
  });

  it('says 1 image and 2 images', () => {
    assert.equal(plural(1, 'image'), '1 image');
    assert.equal(plural(0, 'image'), '0 images');
    assert.equal(describeContent({ images: 1, manifests: 1, blobs: 1, bytes: 2048 }), '1 image: 1 manifest, 1 blob (2.0 KiB)');
    assert.equal(describeContent({ images: 3, manifests: 5, blobs: 8, bytes: 100 }), '3 images: 5 manifests, 8 blobs (100 B)');
  });
});
