import type { ManifestRow } from '../metadata/manifests.js';
import type { TagChanges } from '../metadata/tag-changes.js';

interface Stamp {
  version: number;
  local: number;
}

/**
 * Answers that depend only on what tags name (a manifest by tag, a repository's whole tag list),
 * kept in memory, least recently used first out past `maxBytes`, and all dropped whenever a tag may
 * have changed (TagChanges) or a writer of this process says it changed one (`changed`).
 *
 * The race it closes: a reader that queried the database before a change committed must not keep
 * what it read after the change is known. Each read takes a stamp before its query and keeps its
 * answer only if no change was seen since the stamp; a change seen later drops it then.
 */
export class TagCache<V> {
  private readonly entries = new Map<string, { value: V; bytes: number }>();
  private bytes = 0;
  private seen: number | null = null;
  private local = 0;

  constructor(
    private readonly changes: TagChanges,
    private readonly maxBytes: number,
    private readonly sizeOf: (value: V) => number,
  ) {}

  /** The value under `key`, from memory when nothing changed since it was kept, else from `load` (undefined: nothing to keep). */
  async read(key: string, load: () => Promise<V | undefined>): Promise<V | undefined> {
    const stamp = this.stamp();
    if (stamp) {
      const kept = this.entries.get(key);
      if (kept) {
        this.entries.delete(key);
        this.entries.set(key, kept);
        return kept.value;
      }
    }
    const value = await load();
    if (stamp && value !== undefined) this.keep(key, stamp, value);
    return value;
  }

  /** Called by this process's writers once their change of a tag has committed. */
  changed(): void {
    this.local++;
    this.clear();
  }

  private stamp(): Stamp | null {
    const version = this.changes.version();
    if (version !== this.seen) {
      this.clear();
      this.seen = version;
    }
    return version === null ? null : { version, local: this.local };
  }

  private keep(key: string, stamp: Stamp, value: V): void {
    if (stamp.version !== this.seen || stamp.local !== this.local) return;
    const bytes = this.sizeOf(value);
    if (bytes > this.maxBytes / 4) return;
    const previous = this.entries.get(key);
    if (previous) {
      this.entries.delete(key);
      this.bytes -= previous.bytes;
    }
    this.entries.set(key, { value, bytes });
    this.bytes += bytes;
    for (const [oldest, entry] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
  }

  private clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}

/** What a replica keeps by tag, at most about 64 MiB in all. */
export interface TagCaches {
  manifests: TagCache<ManifestRow>;
  tagLists: TagCache<string[]>;
  changed(): void;
}

const manifestCacheBytes = 32 * 1024 * 1024;
const tagListCacheBytes = 32 * 1024 * 1024;
/** A kept entry's bookkeeping beside its bytes (key, map slot, object). */
const entryOverhead = 200;

export function createTagCaches(changes: TagChanges): TagCaches {
  const manifests = new TagCache<ManifestRow>(changes, manifestCacheBytes, (row) => row.payload.byteLength + entryOverhead);
  const tagLists = new TagCache<string[]>(changes, tagListCacheBytes, (tags) => tags.reduce((sum, tag) => sum + 2 * tag.length + 16, entryOverhead));
  return {
    manifests,
    tagLists,
    changed: () => {
      manifests.changed();
      tagLists.changed();
    },
  };
}
