import type { Clock } from '../../src/clock.js';

/**
 * A clock a test moves: time stands still until `advance`, and what sleeps on it wakes when its
 * time has come. `sleepers` tells the test that the code it watches is waiting, without a guess at
 * how long that takes.
 */
export class ManualClock implements Clock {
  private current: number;
  private readonly sleeping = new Set<{ until: number; wake: () => void }>();
  private readonly watchers = new Set<{ count: number; resolve: () => void }>();

  constructor(start = Date.now()) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper = {
        until: this.current + ms,
        wake: () => {
          this.sleeping.delete(sleeper);
          signal?.removeEventListener('abort', sleeper.wake);
          resolve();
        },
      };
      this.sleeping.add(sleeper);
      signal?.addEventListener('abort', sleeper.wake, { once: true });
      for (const watcher of [...this.watchers]) {
        if (this.sleeping.size >= watcher.count) {
          this.watchers.delete(watcher);
          watcher.resolve();
        }
      }
    });
  }

  /** Moves time on by `ms`; every sleep that ends by then wakes. */
  advance(ms: number): void {
    this.current += ms;
    for (const sleeper of [...this.sleeping]) if (sleeper.until <= this.current) sleeper.wake();
  }

  /**
   * Brings the clock up to the system's time, where it is behind: for comparisons with times the
   * test cannot move, such as the modification times of files written meanwhile.
   */
  catchUp(): void {
    this.current = Math.max(this.current, Date.now());
  }

  /** How many are sleeping on this clock now. */
  get sleepers(): number {
    return this.sleeping.size;
  }

  /** Resolves once at least `count` sleep on this clock. */
  waitForSleepers(count = 1): Promise<void> {
    if (this.sleeping.size >= count) return Promise.resolve();
    return new Promise((resolve) => this.watchers.add({ count, resolve }));
  }
}
