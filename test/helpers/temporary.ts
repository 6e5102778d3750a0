import { accessSync, constants, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';

/**
 * Where tests keep their temporary data. Loaded first in every test process (`node --import`, see
 * package.json), it points TMPDIR at /dev/shm where the machine has a tmpfs there, so that
 * os.tmpdir(), and every helper and client process built on it, writes to memory: SQLite's and the
 * blob writes' fsyncs then cost nothing (the API suite: 4 m 31 s on disk, 1 m 48 s on tmpfs).
 *
 * A test whose point is the disk takes its directory from `onDisk`, with its reason.
 */

/** The system's temporary directory, as it was before this module moved it. */
const diskTemporaryRoot = tmpdir();

/** Why a test keeps its data on disk rather than in memory. */
export type DiskReason =
  /** A process killed mid-write must find on disk what its fsyncs promised. */
  'crash consistency';

/** A temporary directory on disk, for the tests DiskReason names. */
export function onDisk(_reason: DiskReason): string {
  return diskTemporaryRoot;
}

function usableTmpfs(directory: string): boolean {
  try {
    accessSync(directory, constants.W_OK);
    // 0x01021994: TMPFS_MAGIC.
    return statfsSync(directory).type === 0x01021994;
  } catch {
    return false;
  }
}

if (process.env.REGISTRY_TEST_TMPFS !== '0' && usableTmpfs('/dev/shm')) process.env.TMPDIR = '/dev/shm';
