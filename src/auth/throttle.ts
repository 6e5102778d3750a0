import { systemClock, type Clock } from '../clock.js';

/**
 * Slows down password guessing: an address that failed `limit` logins within `windowMs` is refused
 * (429 with Retry-After) until the oldest of those failures leaves the window. Per process: with N
 * replicas an address gets at most N × limit guesses per window.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limit = 10,
    private readonly windowMs = 5 * 60_000,
    private readonly clock: Clock = systemClock,
  ) {}

  private recent(address: string): number[] {
    const cutoff = this.clock.now() - this.windowMs;
    const kept = (this.failures.get(address) ?? []).filter((time) => time > cutoff);
    if (kept.length === 0) this.failures.delete(address);
    else this.failures.set(address, kept);
    return kept;
  }

  /** Seconds until the address may try again; 0 when it may now. */
  retryAfterSeconds(address: string): number {
    const recent = this.recent(address);
    if (recent.length < this.limit) return 0;
    return Math.max(1, Math.ceil((recent[recent.length - this.limit]! + this.windowMs - this.clock.now()) / 1000));
  }

  failed(address: string): void {
    this.failures.set(address, [...this.recent(address), this.clock.now()]);
    // Many addresses failing once each (a spray) must not grow the map without end.
    if (this.failures.size > 10_000) for (const known of [...this.failures.keys()]) this.recent(known);
  }

  succeeded(address: string): void {
    this.failures.delete(address);
  }
}
