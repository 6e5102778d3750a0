import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Clock } from '../clock.js';
import { schemaProblem, writeReadinessProbe, type MetadataDb } from '../metadata/database.js';
import type { StorageDriver } from '../storage/driver.js';

/** Whether the process is stopping (set at SIGTERM): readiness then fails while in-flight requests finish. */
export interface Lifecycle {
  draining: boolean;
}

/** How long one readiness check may take before it counts as failed. */
const checkTimeoutMs = 2000;
/** A storage write that needs a few blocks: after ENOSPC, readiness writes this much to see whether writes go through again. */
const storageProbeBytes = 64 * 1024;
const probeKey = 'readiness-probe';

export type Store = 'storage' | 'database';

async function within(probe: () => Promise<string | null>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const problem = await Promise.race([
      probe(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${checkTimeoutMs} ms`)), checkTimeoutMs);
      }),
    ]);
    return problem ?? 'ok';
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What /readyz reports: each store answers (the database at the schema this code needs), and the
 * process is not stopping. A write that failed for lack of space marks its store full; from then on
 * each check writes to that store, and the mark goes when a write goes through again, so readiness
 * fails exactly while writes do.
 */
export class Readiness {
  private readonly full = new Map<Store, { code: string; since: number }>();

  constructor(
    private readonly stores: { storage: StorageDriver; metadata: MetadataDb },
    readonly lifecycle: Lifecycle,
    /** This replica's name, for its probe row. */
    private readonly instance: string,
    private readonly clock: Clock,
  ) {}

  /** A write to the store failed for want of space (ENOSPC, SQLITE_FULL…). */
  reportFull(store: Store, code: string): void {
    if (!this.full.has(store)) this.full.set(store, { code, since: this.clock.now() });
  }

  async checks(): Promise<{ database: string; storage: string; draining: string }> {
    const [database, storage] = await Promise.all([within(() => this.checkDatabase()), within(() => this.checkStorage())]);
    return { database, storage, draining: this.lifecycle.draining ? 'stopping' : 'ok' };
  }

  private async checkDatabase(): Promise<string | null> {
    const full = this.full.get('database');
    if (full) {
      try {
        await writeReadinessProbe(this.stores.metadata, this.instance, this.clock.now());
        this.full.delete('database');
      } catch {
        return this.fullProblem(full);
      }
    }
    return schemaProblem(this.stores.metadata);
  }

  private async checkStorage(): Promise<string | null> {
    const full = this.full.get('storage');
    if (!full) {
      await this.stores.storage.stat(probeKey);
      return null;
    }
    try {
      const writer = await this.stores.storage.writer(probeKey);
      try {
        await pipeline(Readable.from([Buffer.alloc(storageProbeBytes)]), writer.stream);
        await writer.commit();
      } catch (error) {
        await writer.cancel().catch(() => undefined);
        throw error;
      }
      await this.stores.storage.delete(probeKey);
      this.full.delete('storage');
      return null;
    } catch {
      return this.fullProblem(full);
    }
  }

  private fullProblem(full: { code: string; since: number }): string {
    return `full: writes fail with ${full.code} since ${new Date(full.since).toISOString()}`;
  }
}
