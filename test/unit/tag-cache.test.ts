import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TagChanges } from '../../src/metadata/tag-changes.js';
import { TagCache } from '../../src/registry/tag-cache.js';

/** A change signal the test moves by hand, as the database's triggers or notifications would. */
function handSignal(): TagChanges & { value: number | null } {
  const signal = { value: 0 as number | null, version: () => signal.value, close: async () => {} };
  return signal;
}

/** A load the test finishes when it wants, to let a change land while a read is in its query. */
function heldLoad<V>(value: V): { load: () => Promise<V>; release(): void; calls: number } {
  let release = () => {};
  const held = {
    calls: 0,
    load: () => {
      held.calls++;
      return new Promise<V>((resolve) => (release = () => resolve(value)));
    },
    release: () => release(),
  };
  return held;
}

describe('answers kept by tag', () => {
  const sizeOf = (value: string) => value.length;

  it('answers from memory until a tag changes, then asks again', async () => {
    const signal = handSignal();
    const cache = new TagCache<string>(signal, 1000, sizeOf);
    let loads = 0;
    const load = async () => `digest-${++loads}`;
    assert.equal(await cache.read('app\nlatest', load), 'digest-1');
    assert.equal(await cache.read('app\nlatest', load), 'digest-1');
    signal.value = 1;
    assert.equal(await cache.read('app\nlatest', load), 'digest-2');
    cache.changed();
    assert.equal(await cache.read('app\nlatest', load), 'digest-3');
    assert.equal(loads, 3);
  });

  it('does not keep what a read loaded before a change it did not see (a writer of this process)', async () => {
    const cache = new TagCache<string>(handSignal(), 1000, sizeOf);
    const stale = heldLoad('old-digest');
    const reading = cache.read('app\nlatest', stale.load);
    cache.changed();
    stale.release();
    assert.equal(await reading, 'old-digest', 'the read that began before the change answers what it found');
    assert.equal(await cache.read('app\nlatest', async () => 'new-digest'), 'new-digest', 'but its answer was not kept');
  });

  it('does not keep what a read loaded before a change another replica made, once the change is seen', async () => {
    const signal = handSignal();
    const cache = new TagCache<string>(signal, 1000, sizeOf);
    const stale = heldLoad('old-digest');
    const reading = cache.read('app\nlatest', stale.load);
    signal.value = 1;
    assert.equal(await cache.read('app\nother', async () => 'other-digest'), 'other-digest');
    stale.release();
    await reading;
    assert.equal(await cache.read('app\nlatest', async () => 'new-digest'), 'new-digest');
  });

  it('keeps nothing while changes cannot be seen (the listener is down)', async () => {
    const signal = handSignal();
    signal.value = null;
    const cache = new TagCache<string>(signal, 1000, sizeOf);
    let loads = 0;
    for (let index = 0; index < 3; index++) await cache.read('app\nlatest', async () => `digest-${++loads}`);
    assert.equal(loads, 3);
    signal.value = 7;
    await cache.read('app\nlatest', async () => `digest-${++loads}`);
    await cache.read('app\nlatest', async () => `digest-${++loads}`);
    assert.equal(loads, 4, 'back to memory once changes are seen again');
  });

  it('keeps at most its byte budget, dropping the least recently read first, and never a value past a quarter of it', async () => {
    const cache = new TagCache<string>(handSignal(), 100, sizeOf);
    const loaded: string[] = [];
    const read = (key: string, value: string) =>
      cache.read(key, async () => {
        loaded.push(key);
        return value;
      });
    await read('a', 'x'.repeat(25));
    await read('b', 'x'.repeat(25));
    await read('c', 'x'.repeat(25));
    await read('a', 'unused');
    await read('d', 'x'.repeat(25));
    await read('e', 'x'.repeat(25));
    assert.deepEqual(loaded, ['a', 'b', 'c', 'd', 'e']);
    await read('a', 'x'.repeat(25));
    await read('b', 'x'.repeat(25));
    assert.deepEqual(loaded.slice(5), ['b'], 'b went first (a was read after it), a stayed');
    await read('big', 'x'.repeat(26));
    await read('big', 'x'.repeat(26));
    assert.deepEqual(loaded.slice(6), ['big', 'big']);
  });

  it('keeps nothing for a lookup that found nothing', async () => {
    const cache = new TagCache<string>(handSignal(), 1000, sizeOf);
    let loads = 0;
    await cache.read('app\nmissing', async () => (loads++, undefined));
    await cache.read('app\nmissing', async () => (loads++, undefined));
    assert.equal(loads, 2);
  });
});
