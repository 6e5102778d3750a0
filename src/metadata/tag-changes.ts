import SQLite from 'better-sqlite3';
import pg from 'pg';

/**
 * Tells whether any tag may have changed since it was last asked, whoever changed it: this process,
 * another replica, or a command beside the server. It lets a replica answer by tag from memory
 * (registry/tag-cache.ts) without a query per request. Both engines learn of changes from the
 * triggers of migration 0009, so no writer can be missed by forgetting to report itself.
 */
export interface TagChanges {
  /**
   * A value that differs from the previous one whenever a tag changed in between; null while changes
   * cannot be seen (the listener is down), when nothing may be answered from memory.
   */
  version(): number | null;
  close(): Promise<void>;
}

/** How long a read of the SQLite counter stands for the database's state (see sqliteTagChanges). */
const sqlitePollMs = 5;

/**
 * SQLite: the trigger-kept counter, read on a connection of its own. That connection sees committed
 * transactions only, so a change still open in the writing connection is never taken for the state
 * of the database. The read never waits: a busy database (a checkpoint) is "unknown" for that request.
 * A read stands for `sqlitePollMs` (one costs about as much as the rest of a cached answer): a tag
 * moved by another process (an `import` beside the server) is seen within that; this process's own
 * writers report their changes at once (TagCache.changed).
 */
export function sqliteTagChanges(file: string): TagChanges {
  const connection = new SQLite(file, { readonly: true, fileMustExist: true });
  connection.pragma('busy_timeout = 0');
  const counter = connection.prepare<[], number>("select value from change_counters where name = 'tags'").pluck();
  let known: number | null = null;
  let readAt = Number.NEGATIVE_INFINITY;
  return {
    version: () => {
      const now = performance.now();
      if (now - readAt < sqlitePollMs) return known;
      try {
        known = counter.get() ?? null;
      } catch {
        known = null;
      }
      readAt = known === null ? Number.NEGATIVE_INFINITY : now;
      return known;
    },
    close: async () => {
      connection.close();
    },
  };
}

const channel = 'registry_tags_changed';
const reconnectDelayMs = 1000;

/**
 * PostgreSQL: one connection listening on the channel the trigger notifies at each commit that
 * changed a tag. While it is down (a restart, a failover) the version is null, and coming back
 * counts as a change, so whatever was kept before the gap is dropped.
 *
 * What it leaves open: a change committed by another replica is seen here when its notification
 * arrives (milliseconds on one network), not at the commit itself; this replica's own changes are
 * reported by its writers right after their commit (TagCache.changed), so a client reads its own writes.
 */
export function postgresTagChanges(connectionString: string): TagChanges {
  let notifications = 0;
  let listening = false;
  let closed = false;
  let client: pg.Client | null = null;
  let retry: NodeJS.Timeout | null = null;

  const lost = (which: pg.Client) => {
    if (client !== which) return;
    client = null;
    listening = false;
    notifications++;
    which.end().catch(() => {});
    if (!closed) retry = setTimeout(connect, reconnectDelayMs).unref();
  };
  const connect = () => {
    retry = null;
    const next = new pg.Client({ connectionString });
    client = next;
    next.on('notification', () => notifications++);
    next.on('error', () => lost(next));
    next.on('end', () => lost(next));
    next
      .connect()
      .then(() => next.query(`listen ${channel}`))
      .then(() => {
        if (client !== next) return;
        notifications++;
        listening = true;
      })
      .catch(() => lost(next));
  };
  connect();
  return {
    version: () => (listening ? notifications : null),
    close: async () => {
      closed = true;
      if (retry) clearTimeout(retry);
      const current = client;
      client = null;
      listening = false;
      await current?.end().catch(() => {});
    },
  };
}

/** Changes are never known: nothing is answered from memory. */
export const unknownTagChanges: TagChanges = { version: () => null, close: async () => {} };
