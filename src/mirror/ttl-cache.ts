import type { Logger } from 'pino';
import { RegistryError } from '../oci/errors.js';
import type { MirrorTarget } from './addressing.js';
import { SingleFlight } from './single-flight.js';
import type { Upstreams } from './upstreams.js';

/** What a TTL-cached answer was when last asked for, and when that was. */
export interface CachedAnswer<T> {
  value: T;
  checkedAt: number;
}

/**
 * A stale answer of one key is a warning at most this often, debug lines between: an offline site
 * serves every pull of a cached tag stale, and one line per tag per hour says so.
 */
export const staleWarningEveryMs = 3_600_000;
/** Keys whose last warning is remembered at most; the oldest are forgotten first. */
const maxWarnedKeys = 10_000;

/**
 * Answers kept for an upstream's TTL (a tag's manifest, a referrers list): served from cache while
 * fresh; else asked upstream, once however many clients wait (single flight per key); when the
 * upstream cannot answer, the cached answer is served stale and logged.
 */
export class TtlCache<T> {
  private readonly flights = new SingleFlight<T>();
  private readonly warnedAt = new Map<string, number>();

  constructor(
    private readonly upstreams: Upstreams,
    private readonly logger: Logger,
    /** The log line of a stale answer. */
    private readonly staleMessage: string,
  ) {}

  serve(
    target: MirrorTarget,
    key: string,
    cached: CachedAnswer<T> | undefined,
    options: { revalidate: boolean; logFields: Record<string, unknown> },
    askUpstream: () => Promise<T>,
  ): Promise<T> {
    const health = this.upstreams.health(target);
    if (cached && !options.revalidate && this.upstreams.clock.now() - cached.checkedAt < target.upstream.ttlMs) {
      health.cacheHit();
      return Promise.resolve(cached.value);
    }
    health.cacheMiss();
    return this.flights.run(key, async () => {
      try {
        return await askUpstream();
      } catch (error) {
        if (!(error instanceof RegistryError && error.code === 'UNAVAILABLE') || !cached) throw error;
        health.servedStale();
        this.logStale(key, { upstream: target.upstream.name, repository: target.repository, ...options.logFields, reason: error.message });
        return cached.value;
      }
    });
  }

  private logStale(key: string, fields: Record<string, unknown>): void {
    const now = this.upstreams.clock.now();
    const last = this.warnedAt.get(key);
    if (last !== undefined && now - last < staleWarningEveryMs) {
      this.logger.debug(fields, this.staleMessage);
      return;
    }
    this.warnedAt.delete(key);
    this.warnedAt.set(key, now);
    if (this.warnedAt.size > maxWarnedKeys) this.warnedAt.delete(this.warnedAt.keys().next().value as string);
    this.logger.warn({ ...fields, nextWarningIn: '1h' }, this.staleMessage);
  }
}
