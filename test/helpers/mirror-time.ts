import Database from 'better-sqlite3';

/**
 * Lets time pass for a registry process's mirror cache without waiting for it: every cached tag
 * counts as checked upstream `byMs` earlier, in the process's SQLite database. (A registry in this
 * test process takes a ManualClock instead; one in a process of its own keeps its own time.)
 */
export function ageMirrorCache(databaseFile: string, byMs: number): void {
  const database = new Database(databaseFile, { timeout: 5000 });
  try {
    database.prepare('update mirror_tags set checked_at = checked_at - ?').run(byMs);
  } finally {
    database.close();
  }
}
