/**
 * One task per key at a time: callers that ask for a key while its task runs get that task's result
 * (or failure) instead of starting another.
 */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** The task running for the key, if any. */
  current(key: string): Promise<T> | undefined {
    return this.running.get(key);
  }

  /**
   * Runs the task, or joins the one running for the key. The key stays taken until the task settles,
   * and then until `busyUntil(result)` does (a fetch that goes on streaming after it started).
   */
  run(key: string, task: () => Promise<T>, busyUntil?: (result: T) => Promise<unknown> | undefined): Promise<T> {
    const existing = this.running.get(key);
    if (existing) return existing;
    const started = task();
    this.running.set(key, started);
    started
      .then((result) => busyUntil?.(result))
      .catch(() => undefined)
      .finally(() => {
        if (this.running.get(key) === started) this.running.delete(key);
      });
    return started;
  }
}
