import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  acquireGcLock,
  claimUnrecordedBytes,
  deleteGarbageBlobs,
  deleteGarbageManifests,
  deletePending,
  expireBlobWrites,
  failInterruptedRuns,
  findGarbageBlobs,
  findGarbageManifests,
  findUnrecordedDigests,
  finishGcRun,
  finishPendingKey,
  insertGcRun,
  listPending,
  releaseGcLock,
  renewGcLock,
  type BlobRef,
  type ManifestRef,
} from '../metadata/gc.js';
import { engineOf } from '../metadata/database.js';
import { systemOrigin, type OutboxPayloads } from '../metadata/audit.js';
import type { RequestOrigin } from '../metadata/audit.js';
import { parseDigest } from '../oci/digest.js';
import type { RegistryStores } from '../registry/context.js';
import type { MirrorSettings } from '../mirror/settings.js';
import { storagePaths } from '../storage/paths.js';
import { evict, planEviction, type EvictedImage, type EvictionSettings } from './mirror-eviction.js';

export interface GcOptions {
  dryRun: boolean;
  /** Collect manifests nothing refers to (no tag, no live index or subject) too. */
  untagged: boolean;
  /** What was created or used within this window is kept. */
  graceMs: number;
  /** With untagged: only manifests of the repositories this accepts (a retention policy's); all when absent. */
  untaggedIn?: (repository: string) => boolean;
  /** The request that asked for the run (over HTTP): named in its report and in the events it records. */
  triggeredBy?: RequestOrigin;
}

/** What a run found and removed (for a dry run: would remove). */
export interface GcReport {
  id: number;
  state: 'succeeded' | 'failed';
  dryRun: boolean;
  untagged: boolean;
  graceMs: number;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  markMs: number;
  manifests: number;
  blobs: number;
  bytes: number;
  /** Bytes in storage that no row names (a crash between bytes and rows), older than the grace window. */
  orphans: number;
  orphanBytes: number;
  /** Storage keys a run that stopped early had left to delete, deleted by this one. */
  leftovers: number;
  /** Mirror cache images evicted (retention, maxsize) before the mark, and their manifests. */
  evicted: number;
  evictedManifests: number;
  /**
   * What would be garbage but is kept: by the grace window (written or used within it), and by
   * audit.timemachine (manifests a tag pointed at within it, with untagged collection, and the
   * blobs only they name). Each is counted as if the other did not keep it.
   */
  kept: { grace: KeptFigures; timeMachine: KeptFigures };
  /** For a dry run: what would go (at most `maxListed` of each). */
  wouldRemove?: { manifests: ManifestRef[]; blobs: BlobRef[]; orphans: BlobRef[]; evicted: EvictedImage[]; truncated: boolean };
  /** Who asked for it over HTTP; absent for scheduled runs and the command line. */
  startedBy?: { account: string; address: string | null; requestId: string | null };
  error?: string;
}

export interface KeptFigures {
  manifests: number;
  blobs: number;
  bytes: number;
}

const noneKept = (): KeptFigures => ({ manifests: 0, blobs: 0, bytes: 0 });

export type GcPhase = 'leftovers' | 'evict' | 'mark' | 'manifests' | 'blobs' | 'orphans';

export class GcBusyError extends Error {
  constructor(readonly holder: string) {
    super(`another garbage collection is running (${holder}); try again when it has finished`);
    this.name = 'GcBusyError';
  }
}

const leaseMs = 60_000;
/** Rows deleted per transaction: small, so that each holds the writer lock briefly. */
const batchSize = 200;
const storageConcurrency = 8;
const maxListed = 10_000;
/** Digests looked up at once in the orphan scan (well under either engine's limit of bound values). */
const lookupBatchSize = 5000;

/** Runs at most `limit` of the tasks at once. */
async function forEachConcurrently<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function chunks<T>(items: T[], size: number): T[][] {
  const result: T[][] = [];
  for (let start = 0; start < items.length; start += size) result.push(items.slice(start, start + size));
  return result;
}

/** Whether a process of this host with that id is alive (a lease holder that died can be taken over at once). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Online garbage collection. The mark is a query over the reference tables; the sweep deletes rows
 * first, in bounded batches whose every row is re-checked in the deleting transaction, then the
 * bytes and links those rows named (recorded as pending deletions in that same transaction, so a run
 * that dies finishes next time). Clients keep pushing and pulling meanwhile; see metadata/gc.ts for
 * which race each re-check closes. One run at a time, across processes and replicas: a lease in the
 * database, renewed while the run goes on.
 */
export class GarbageCollector {
  private readonly hostName = hostname();
  private stopping = false;
  private readonly running = new Set<Promise<GcReport>>();

  constructor(
    private readonly stores: RegistryStores,
    private readonly logger: Logger,
    /** The mirror's upstreams, whose retention and cache size say what of the cache to evict. */
    private readonly mirror: MirrorSettings | null,
    /** audit.timemachine: manifests a tag pointed at within it are kept, so restores find them. */
    private readonly timeMachineMs: number,
    /** Receivers of the `collected` and `evicted` events (notifications.endpoints), or `noReceivers`. */
    private readonly outbox: OutboxPayloads,
  ) {}

  /**
   * What the grace window and the time machine keep: the garbage the mark would find without each,
   * less what it found. Two more marks, read-only, after the one that counts (not in markMs).
   */
  private async keptFigures(
    mark: { cutoff: number; markStarted: number; taggedSince: number; untagged: boolean },
    manifests: ManifestRef[],
    blobs: BlobRef[],
  ): Promise<{ grace: KeptFigures; timeMachine: KeptFigures }> {
    const db = this.stores.metadata;
    const found = { manifests: new Set(manifests.map((manifest) => manifest.id)), blobs: new Set(blobs.map((blob) => blob.digest)) };
    const beyond = async (cutoff: number, taggedSince: number): Promise<KeptFigures> => {
      const moreManifests = mark.untagged ? (await findGarbageManifests(db, cutoff, taggedSince)).filter((manifest) => !found.manifests.has(manifest.id)) : [];
      const moreBlobs = (await findGarbageBlobs(db, cutoff, mark.untagged, taggedSince)).filter((blob) => !found.blobs.has(blob.digest));
      return { manifests: moreManifests.length, blobs: moreBlobs.length, bytes: moreBlobs.reduce((sum, blob) => sum + blob.size, 0) };
    };
    return {
      grace: mark.cutoff === mark.markStarted ? noneKept() : await beyond(mark.markStarted, mark.taggedSince),
      timeMachine: mark.untagged && mark.taggedSince < mark.markStarted ? await beyond(mark.cutoff, mark.markStarted) : noneKept(),
    };
  }

  /** Takes the lease and records the run; throws GcBusyError when another run holds it. The run then goes on in `done`. */
  async start(options: GcOptions, onProgress: (phase: GcPhase, done: number, total: number) => void = () => {}): Promise<{ id: number; done: Promise<GcReport> }> {
    const holder = `${this.hostName}:${process.pid}:${randomUUID()}`;
    await this.acquire(holder);
    let id: number;
    try {
      await failInterruptedRuns(this.stores.metadata, holder, this.stores.clock.now());
      id = await insertGcRun(this.stores.metadata, { dryRun: options.dryRun, holder }, this.stores.clock.now());
    } catch (error) {
      await releaseGcLock(this.stores.metadata, holder);
      throw error;
    }
    const done = this.runHolding(id, holder, options, onProgress);
    this.running.add(done);
    void done.finally(() => this.running.delete(done)).catch(() => undefined);
    return { id, done };
  }

  /** Ends runs of this process at their next batch (marked failed, the lease released), for a shutdown. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running]);
  }

  async run(options: GcOptions, onProgress?: (phase: GcPhase, done: number, total: number) => void): Promise<GcReport> {
    return (await this.start(options, onProgress)).done;
  }

  private async acquire(holder: string): Promise<void> {
    const db = this.stores.metadata;
    let current = await acquireGcLock(db, holder, leaseMs, this.stores.clock.now());
    if (current === holder) return;
    // A holder on this host whose process is gone (killed) is not waited for until its lease ends.
    const [host, pid] = current.split(':');
    if (host === this.hostName && Number(pid) !== process.pid && !processAlive(Number(pid))) current = await acquireGcLock(db, holder, leaseMs, this.stores.clock.now(), current);
    if (current !== holder) throw new GcBusyError(current);
  }

  private async runHolding(id: number, holder: string, options: GcOptions, onProgress: (phase: GcPhase, done: number, total: number) => void): Promise<GcReport> {
    const db = this.stores.metadata;
    const clock = this.stores.clock;
    const started = clock.now();
    const timer = performance.now();
    let lost = false;
    const heartbeat = setInterval(() => {
      renewGcLock(db, holder, leaseMs, clock.now()).then(
        (held) => {
          if (!held) lost = true;
        },
        (error: unknown) => this.logger.warn({ err: error }, 'garbage collection lease renewal failed'),
      );
    }, leaseMs / 3);
    heartbeat.unref();
    const report: GcReport = {
      id,
      state: 'succeeded',
      dryRun: options.dryRun,
      untagged: options.untagged,
      graceMs: options.graceMs,
      startedAt: new Date(started).toISOString(),
      finishedAt: '',
      durationMs: 0,
      markMs: 0,
      manifests: 0,
      blobs: 0,
      bytes: 0,
      orphans: 0,
      orphanBytes: 0,
      leftovers: 0,
      evicted: 0,
      evictedManifests: 0,
      kept: { grace: noneKept(), timeMachine: noneKept() },
      ...(options.triggeredBy ? { startedBy: { account: options.triggeredBy.actor, address: options.triggeredBy.address, requestId: options.triggeredBy.requestId } } : {}),
    };
    try {
      await this.sweep(report, { ...options, holder, lost: () => lost }, onProgress);
    } catch (error) {
      report.state = 'failed';
      report.error = (error as Error).message;
      this.logger.error({ err: error, gcRun: id }, 'garbage collection failed');
    } finally {
      clearInterval(heartbeat);
    }
    report.finishedAt = new Date(clock.now()).toISOString();
    report.durationMs = Math.round(performance.now() - timer);
    try {
      await finishGcRun(db, id, report.state, report, clock.now());
    } finally {
      await releaseGcLock(db, holder);
    }
    const { wouldRemove, ...summary } = report;
    this.logger.info({ gc: summary, ...(wouldRemove ? { wouldRemoveListed: wouldRemove.manifests.length + wouldRemove.blobs.length + wouldRemove.orphans.length } : {}) }, 'garbage collection finished');
    return report;
  }

  private async sweep(
    report: GcReport,
    run: GcOptions & { holder: string; lost: () => boolean },
    onProgress: (phase: GcPhase, done: number, total: number) => void,
  ): Promise<void> {
    const { storage, metadata: db, clock } = this.stores;
    const lease = { holder: run.holder, leaseMs };
    const trigger = run.triggeredBy;
    const recordedAs = {
      origin: { ...systemOrigin('gc', run.holder), ...(trigger ? { address: trigger.address, userAgent: trigger.userAgent, requestId: trigger.requestId } : {}) },
      detail: trigger ? JSON.stringify({ triggeredBy: trigger.actor }) : null,
      outbox: this.outbox,
    };
    const stillHeld = () => {
      if (run.lost()) throw new Error('the garbage collection lease was lost: stopping');
      if (this.stopping) throw new Error('stopped: the registry is shutting down (the next run carries on)');
    };
    const bytesKeyOf = (digest: string) => storagePaths.blobData(parseDigest(digest));
    /**
     * A deleting transaction, then on SQLite as long a pause: there it holds the one writer lock,
     * and the servers' writes (pushes, and with better-sqlite3 their whole process) wait for it, so
     * a run leaves them at least half of the lock's time. PostgreSQL locks rows only.
     */
    const paced = engineOf(db) === 'sqlite';
    const deleting = async <T>(transaction: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      const result = await transaction();
      // Real time, not the clock's: what is shared is the lock's time.
      if (paced) await new Promise((resolve) => setTimeout(resolve, performance.now() - started));
      return result;
    };
    const finishPending = async (keys: string[]) => {
      await forEachConcurrently(keys, storageConcurrency, (key) => storage.delete(key));
      await deletePending(db, keys);
    };

    if (!run.dryRun) {
      // What a run that stopped early left: its rows are gone, so its keys go first.
      for (let batch = await listPending(db, batchSize); batch.length > 0; batch = await listPending(db, batchSize)) {
        stillHeld();
        // Links a delete left (no digest): a push may write one again meanwhile, so each goes only while still pending.
        for (const entry of batch) if (entry.digest === null) await finishPendingKey(db, entry.key, () => storage.delete(entry.key));
        await finishPending(batch.filter((entry) => entry.digest !== null).map((entry) => entry.key));
        report.leftovers += batch.length;
        onProgress('leftovers', report.leftovers, report.leftovers);
      }
      // Claims of writers that died a day ago keep their digests no longer.
      await expireBlobWrites(db, clock.now());
    }

    // Mirror cache eviction first: it only removes cache rows; the sweep below frees the bytes.
    stillHeld();
    let evicted: EvictedImage[] = [];
    if (this.mirror) {
      const evictionSettings: EvictionSettings = {
        retentionMs: new Map(this.mirror.upstreams.map((upstream) => [upstream.name, upstream.retentionMs])),
        maxBytes: this.mirror.cacheMaxBytes,
        graceMs: run.graceMs,
      };
      const evictionPlan = await planEviction(db, evictionSettings, clock.now());
      evicted = evictionPlan.map((image) => ({ ...image.from, digest: image.digest, manifests: image.members.length, reason: image.reason }));
      if (!run.dryRun) {
        evicted = await evict(db, evictionPlan, run.graceMs, clock.now(), this.outbox);
        for (const image of evicted) this.logger.debug({ ...image }, 'garbage collection evicted a cached image');
      }
      onProgress('evict', 1, 1);
    }
    report.evicted = evicted.length;
    report.evictedManifests = evicted.reduce((sum, image) => sum + image.manifests, 0);

    stillHeld();
    const markStarted = clock.now();
    const markTimer = performance.now();
    const cutoff = markStarted - run.graceMs;
    const taggedSince = markStarted - this.timeMachineMs;
    onProgress('mark', 0, 1);
    const inScope = (manifest: { repository: string }) => !run.untaggedIn || run.untaggedIn(manifest.repository);
    const manifests = run.untagged ? (await findGarbageManifests(db, cutoff, taggedSince)).filter(inScope) : [];
    // Limited to some repositories, the blobs their manifests free are only known once they are gone.
    const blobs = await findGarbageBlobs(db, cutoff, run.untagged && !run.untaggedIn, taggedSince);
    const orphans = await this.findOrphans(cutoff);
    report.markMs = Math.round(performance.now() - markTimer);
    report.kept = await this.keptFigures({ cutoff, markStarted, taggedSince, untagged: run.untagged && !run.untaggedIn }, manifests, blobs);
    onProgress('mark', 1, 1);

    if (run.dryRun) {
      report.manifests = manifests.length;
      report.blobs = blobs.length;
      report.bytes = blobs.reduce((sum, blob) => sum + blob.size, 0);
      report.orphans = orphans.length;
      report.orphanBytes = orphans.reduce((sum, blob) => sum + blob.size, 0);
      report.wouldRemove = {
        manifests: manifests.slice(0, maxListed),
        blobs: blobs.slice(0, maxListed),
        orphans: orphans.slice(0, maxListed),
        evicted: evicted.slice(0, maxListed),
        truncated: Math.max(manifests.length, blobs.length, orphans.length, evicted.length) > maxListed,
      };
      return;
    }

    // Manifests, in rounds: one an index still names waits until the index has gone. Only what the
    // mark found is a candidate (a manifest that became garbage since waits for the next run).
    const marked = new Set(manifests.map((manifest) => manifest.id));
    let remaining = manifests;
    while (remaining.length > 0) {
      let deletedThisRound = 0;
      for (const batch of chunks(remaining, batchSize)) {
        stillHeld();
        const deleted = await deleting(() =>
          deleteGarbageManifests(db, batch, cutoff, taggedSince, lease, recordedAs, (manifest) => storagePaths.repositoryManifest(manifest.repository, parseDigest(manifest.digest)), clock.now()),
        );
        await finishPending(deleted.map((manifest) => storagePaths.repositoryManifest(manifest.repository, parseDigest(manifest.digest))));
        for (const manifest of deleted) this.logger.debug({ repository: manifest.repository, digest: manifest.digest }, 'garbage collection deleted a manifest');
        deletedThisRound += deleted.length;
        report.manifests += deleted.length;
        onProgress('manifests', report.manifests, manifests.length);
      }
      if (deletedThisRound === 0) break;
      remaining = (await findGarbageManifests(db, cutoff, taggedSince)).filter((manifest) => marked.has(manifest.id));
    }

    // Blobs (with untagged: also those the deleted manifests were the last to name).
    const blobCandidates = run.untagged ? await findGarbageBlobs(db, cutoff, false) : blobs;
    let blobsDone = 0;
    for (const batch of chunks(blobCandidates.map((blob) => blob.digest), batchSize)) {
      stillHeld();
      const deleted = await deleting(() => deleteGarbageBlobs(db, batch, cutoff, lease, bytesKeyOf, clock.now()));
      await finishPending(deleted.map((blob) => bytesKeyOf(blob.digest)));
      report.blobs += deleted.length;
      report.bytes += deleted.reduce((sum, blob) => sum + blob.size, 0);
      blobsDone += batch.length;
      onProgress('blobs', blobsDone, blobCandidates.length);
    }

    // Bytes no row names, older than the grace window.
    let orphansDone = 0;
    const sizes = new Map(orphans.map((orphan) => [orphan.digest, orphan.size]));
    for (const batch of chunks(orphans.map((orphan) => orphan.digest), batchSize)) {
      stillHeld();
      const claimed = await deleting(() => claimUnrecordedBytes(db, batch, lease, bytesKeyOf, clock.now()));
      await finishPending(claimed.map(bytesKeyOf));
      report.orphans += claimed.length;
      report.orphanBytes += claimed.reduce((sum, digest) => sum + (sizes.get(digest) ?? 0), 0);
      orphansDone += batch.length;
      onProgress('orphans', orphansDone, orphans.length);
    }
  }

  /**
   * Objects under blobs/ that no row names and that were written before the cutoff: a walk of the
   * blob keys (the one part of a run whose cost grows with all that is stored), one two-hex-digit
   * prefix at a time, several at once, looked up in the database a few thousand at a time.
   */
  private async findOrphans(cutoff: number): Promise<BlobRef[]> {
    const { storage, metadata } = this.stores;
    const orphans: BlobRef[] = [];
    const check = async (digests: string[]) => {
      for (const digest of await findUnrecordedDigests(metadata, digests)) {
        const info = await storage.stat(storagePaths.blobData(parseDigest(digest)));
        if (info && info.modifiedAt.getTime() < cutoff) orphans.push({ digest, size: info.size });
      }
    };
    // A filesystem lists one directory per call: its 256 prefixes are walked several at once. An
    // object store lists a thousand keys per call however deep they are: one listing is cheaper.
    const prefixes: string[] = [];
    if (storage.listing === 'directory') {
      for (const algorithm of ['sha256', 'sha512']) {
        for (let value = 0; value < 256; value++) prefixes.push(`blobs/${algorithm}/${value.toString(16).padStart(2, '0')}`);
      }
    } else {
      prefixes.push('blobs');
    }
    let batch: string[] = [];
    await forEachConcurrently(prefixes, storageConcurrency, async (prefix) => {
      for await (const key of storage.list(prefix)) {
        const digest = storagePaths.blobDigestOf(key);
        if (!digest) continue;
        batch.push(digest);
        if (batch.length >= lookupBatchSize) {
          const full = batch;
          batch = [];
          await check(full);
        }
      }
    });
    if (batch.length > 0) await check(batch);
    return orphans;
  }
}
