import { noteMirrorAnswer } from './answer-source.js';
import type { Clock } from '../clock.js';

/** What happened on an upstream, for /api/v1/mirror/status. */
export interface UpstreamStatus {
  name: string;
  url: string;
  /**
   * unknown: never asked since this process started (nothing can be said until it is); reachable:
   * the last request was answered; unreachable: the last one failed, or its circuit is open.
   */
  state: 'unknown' | 'reachable' | 'unreachable';
  /** Until when the upstream is not asked (after repeated failures or a 429), ISO time; null when closed. */
  circuitOpenUntil: string | null;
  consecutiveFailures: number;
  lastSuccess: { at: string } | null;
  lastFailure: { at: string; reason: string } | null;
  cacheHits: number;
  cacheMisses: number;
  staleServed: number;
  upstreamRequests: number;
  bytesFetched: number;
  bytesServed: number;
}

/**
 * One upstream's circuit breaker and counters. After `threshold` consecutive failures (or one 429)
 * the circuit opens: the upstream is not asked until the cool-off (or Retry-After) has passed, so
 * pulls served from cache do not wait on a dead upstream. The first request after that is a probe.
 */
export class UpstreamHealth {
  private failures = 0;
  private openUntil = 0;
  private lastSuccessAt: number | null = null;
  private lastFailure: { at: number; reason: string } | null = null;
  readonly counters = { cacheHits: 0, cacheMisses: 0, staleServed: 0, upstreamRequests: 0, bytesFetched: 0, bytesServed: 0 };

  constructor(
    private readonly threshold: number,
    private readonly coolOffMs: number,
    private readonly clock: Clock,
  ) {}

  /** A request answered from the cache. */
  cacheHit(): void {
    this.counters.cacheHits++;
    noteMirrorAnswer('cache');
  }

  /** A request that asks the upstream. */
  cacheMiss(): void {
    this.counters.cacheMisses++;
    noteMirrorAnswer('upstream');
  }

  /** A request answered from the cache because the upstream could not be asked. */
  servedStale(): void {
    this.counters.staleServed++;
    noteMirrorAnswer('stale');
  }

  /** Milliseconds until the upstream may be asked again; 0 when it may be asked now. */
  waitMs(): number {
    return Math.max(0, this.openUntil - this.clock.now());
  }

  succeeded(): void {
    this.failures = 0;
    this.openUntil = 0;
    this.lastSuccessAt = this.clock.now();
  }

  failed(reason: string): void {
    this.failures++;
    this.lastFailure = { at: this.clock.now(), reason };
    if (this.failures >= this.threshold) this.openUntil = this.clock.now() + this.coolOffMs;
  }

  /** A 429: leave the upstream alone for as long as it asked (or the cool-off when it did not say). */
  throttled(retryAfterMs: number | null, reason: string): void {
    this.failures++;
    this.lastFailure = { at: this.clock.now(), reason };
    this.openUntil = this.clock.now() + (retryAfterMs ?? this.coolOffMs);
  }

  status(name: string, url: string): UpstreamStatus {
    const iso = (time: number) => new Date(time).toISOString();
    const open = this.waitMs() > 0;
    return {
      name,
      url,
      state: open || this.failures > 0 ? 'unreachable' : this.lastSuccessAt !== null ? 'reachable' : 'unknown',
      circuitOpenUntil: open ? iso(this.openUntil) : null,
      consecutiveFailures: this.failures,
      lastSuccess: this.lastSuccessAt === null ? null : { at: iso(this.lastSuccessAt) },
      lastFailure: this.lastFailure === null ? null : { at: iso(this.lastFailure.at), reason: this.lastFailure.reason },
      ...this.counters,
    };
  }
}
