import { setTimeout as delay } from 'node:timers/promises';

/**
 * The time, and waiting for it to pass. Passed in wherever time decides something (TTLs, grace
 * windows, leases, backoffs, schedules, throttles, pull flushing), so that tests move time instead
 * of sleeping through it. `systemClock` is the real one; nothing else reads the system's time.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves once `ms` of this clock's time has passed, or at once when `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, signal ? { signal } : {}).catch(() => undefined),
};
