import { StorageNotFoundError, type StorageDriver } from '../storage/driver.js';
import type { RegistryMetrics } from './registry-metrics.js';

/**
 * The storage contract with each operation timed and its failures counted, by driver and operation.
 * A read's or write's time is until its stream is open; "not found" answers are not failures.
 */
export function meteredStorage(driver: StorageDriver, metrics: RegistryMetrics): StorageDriver {
  const timed = <T>(operation: string, run: () => Promise<T>): Promise<T> => {
    const end = metrics.storageDuration.startTimer({ driver: driver.name, operation });
    return run().then(
      (value) => {
        end();
        return value;
      },
      (error: unknown) => {
        end();
        if (!(error instanceof StorageNotFoundError)) metrics.storageErrors.inc({ driver: driver.name, operation });
        throw error;
      },
    );
  };
  const metered: StorageDriver = {
    name: driver.name,
    listing: driver.listing,
    stat: (key) => timed('stat', () => driver.stat(key)),
    read: (key, range) => timed('read', () => driver.read(key, range)),
    writer: (key) => timed('write', () => driver.writer(key)),
    append: (key, progress) => timed('append', () => driver.append(key, progress)),
    abandon: (key, progress) => timed('abandon', () => driver.abandon(key, progress)),
    move: (from, to) => timed('move', () => driver.move(from, to)),
    copy: (from, to) => timed('copy', () => driver.copy(from, to)),
    delete: (key) => timed('delete', () => driver.delete(key)),
    list: (prefix) => driver.list(prefix),
  };
  if (driver.redirectURL) {
    const redirect = driver.redirectURL.bind(driver);
    metered.redirectURL = (key, method) => timed('redirect', () => redirect(key, method));
  }
  return metered;
}
