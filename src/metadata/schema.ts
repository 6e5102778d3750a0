import type { ColumnType, Generated } from 'kysely';

/** Times are milliseconds since the epoch; sizes are bytes. Both fit a JavaScript number. */
export interface RepositoriesTable {
  id: Generated<number>;
  name: string;
  created_at: number;
  /** The last tag push or restore (migration 0010's trigger on the audit log), and its actor. */
  pushed_at: ColumnType<number | null, number | null | undefined, number | null>;
  pushed_by: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface BlobsTable {
  digest: string;
  size: number;
  created_at: number;
  /** The last use (HEAD, mount), at a one-second resolution: the grace window counts from it. */
  used_at: ColumnType<number, number | undefined, number>;
}

export interface RepositoryBlobsTable {
  repository_id: number;
  digest: string;
  created_at: number;
}

export interface UploadsTable {
  id: string;
  repository_id: number;
  /** Bytes received and committed so far. */
  size: number;
  /** Driver-specific state of the upload (e.g. an S3 multipart upload), JSON. */
  storage_state: string | null;
  started_at: number;
  updated_at: number;
  /** Who opened it: the account, or `address:<ip>` for an anonymous client; null for sessions from before 0011. */
  owner: ColumnType<string | null, string | null | undefined, string | null>;
}

/** An account kept in the database (migration 0012). */
export interface AccountsTable {
  name: string;
  password_hash: string;
  /** 1: a system admin, who may do everything. */
  admin: number;
  /** 1: may not sign in; its tokens are refused. */
  disabled: number;
  created_at: number;
  updated_at: number;
}

/** A project: the first path component of repository names (migration 0013). */
export interface ProjectsTable {
  name: string;
  /** 1: anyone may pull, signed in or not. */
  public: number;
  /** Bytes its repositories may hold; null: no quota. */
  quota_storage: number | null;
  created_at: number;
  updated_at: number;
}

/** An account's role in a project: guest, developer, maintainer or admin. */
export interface ProjectMembersTable {
  project: string;
  account: string;
  role: string;
  created_at: number;
}

/** A robot account of a project (migration 0014). */
export interface RobotsTable {
  /** `robot$<project>+<name>`. */
  name: string;
  project: string;
  secret_hash: string;
  /** JSON: [{repositories: [globs inside the project], actions: [pull, push, delete]}]. */
  access: string;
  /** null: it never expires. */
  expires_at: number | null;
  disabled: number;
  created_at: number;
  updated_at: number;
}

/** One row, counted up by every change of accounts: replicas compare it with the copy they hold. */
export interface DirectoryVersionTable {
  name: string;
  value: number;
}

/** One row per replica, written by a readiness check after a write failed for lack of space. */
export interface ReadinessProbesTable {
  instance: string;
  written_at: number;
}

export interface ManifestsTable {
  id: Generated<number>;
  repository_id: number;
  digest: string;
  media_type: string;
  artifact_type: string | null;
  subject_digest: string | null;
  size: number;
  payload: Uint8Array;
  created_at: number;
  /** The last GET or HEAD by digest, at a one-second resolution. */
  used_at: ColumnType<number, number | undefined, number>;
}

/** Blobs (config and layers) a manifest names. */
export interface ManifestBlobsTable {
  manifest_id: number;
  digest: string;
}

/** Manifests an index names. */
export interface ManifestChildrenTable {
  parent_id: number;
  child_id: number;
}

export interface TagsTable {
  id: Generated<number>;
  repository_id: number;
  name: string;
  manifest_id: number;
  created_at: number;
  updated_at: number;
  /** The last pull by tag (recorded when audit.pulls is on), in batches. */
  pulled_at: ColumnType<number | null, number | null | undefined, number | null>;
}

/** A manifest fetched from an upstream repository (pull-through cache). */
export interface MirrorManifestsTable {
  upstream: string;
  repository: string;
  digest: string;
  media_type: string;
  size: number;
  payload: Uint8Array;
  fetched_at: number;
  /** The last time it was served, at a one-second resolution (what cache eviction goes by). */
  used_at: ColumnType<number, number | undefined, number>;
}

/** A tag as last seen upstream, and when it was last checked there. */
export interface MirrorTagsTable {
  upstream: string;
  repository: string;
  tag: string;
  digest: string;
  checked_at: number;
  updated_at: number;
}

/** Changes of a mirrored tag: first seen upstream, moved, gone upstream, imported from a bundle, evicted from the cache. */
export type MirrorTagAction = 'seen' | 'moved' | 'gone' | 'imported' | 'evicted';

/** One event of the audit log (see migration 0007 and audit-hash.ts). */
export interface AuditEventsTable {
  id: number;
  at: number;
  target: string;
  repository: string;
  tag: string | null;
  upstream: string | null;
  action: string;
  from_digest: string | null;
  to_digest: string | null;
  media_type: string | null;
  actor: string;
  auth_method: string;
  address: string | null;
  user_agent: string | null;
  request_id: string | null;
  instance: string | null;
  restored_event: number | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
}

/** The head of the audit chain (one row), and where pruning cut its start. */
export interface AuditChainTable {
  name: string;
  last_id: number;
  last_hash: string;
  /** Events up to this id were pruned; the first kept one's prev_hash is cut_hash. */
  cut_id: number;
  cut_hash: string;
  cut_at: number | null;
}

/** The upstream's referrers of a digest: its descriptors as JSON, and when they were last asked for. */
export interface MirrorReferrersTable {
  upstream: string;
  repository: string;
  subject: string;
  descriptors: string;
  checked_at: number;
}

/** A blob fetched from (and so known to be served by) an upstream repository. */
export interface MirrorBlobsTable {
  upstream: string;
  repository: string;
  digest: string;
  fetched_at: number;
}

/** Bytes being written into blobs/ before their rows: garbage collection keeps the digest meanwhile. */
export interface BlobWritesTable {
  id: string;
  digest: string;
  started_at: number;
}

/** Storage keys whose rows garbage collection removed, to delete. */
export interface GcPendingTable {
  key: string;
  /** The digest of the bytes or of the manifest a link names: writers of that digest wait until the key is gone. */
  digest: string | null;
  created_at: number;
}

/** The lease of the one collection that may run. */
export interface GcLockTable {
  name: string;
  holder: string;
  expires_at: number;
}

export interface GcRunsTable {
  id: Generated<number>;
  state: 'running' | 'succeeded' | 'failed';
  /** 1 for a dry run (an integer: SQLite has no booleans). */
  dry_run: number;
  holder: string;
  started_at: number;
  finished_at: number | null;
  /** The report, JSON. */
  report: string | null;
}

/** A notification waiting for (or past) delivery: the payload of one audit event, under its id. */
export interface NotificationOutboxTable {
  id: number;
  created_at: number;
  payload: string;
}

/** Delivery to one configured endpoint. */
export interface NotificationEndpointsTable {
  name: string;
  /** Every outbox row up to this id was delivered, ignored or dropped for this endpoint. */
  delivered_through: number;
  delivered: ColumnType<number, number | undefined, number>;
  ignored: ColumnType<number, number | undefined, number>;
  failed: ColumnType<number, number | undefined, number>;
  dropped: ColumnType<number, number | undefined, number>;
  /** Consecutive failed attempts of the next row. */
  attempts: ColumnType<number, number | undefined, number>;
  /** 1 once attempts reached the threshold, until a delivery succeeds. */
  failing: ColumnType<number, number | undefined, number>;
  next_attempt_at: ColumnType<number, number | undefined, number>;
  last_success_at: number | null;
  last_failure_at: number | null;
  last_failure: string | null;
  holder: string | null;
  lease_until: ColumnType<number, number | undefined, number>;
}

export interface MetadataSchema {
  repositories: RepositoriesTable;
  blobs: BlobsTable;
  repository_blobs: RepositoryBlobsTable;
  uploads: UploadsTable;
  manifests: ManifestsTable;
  manifest_blobs: ManifestBlobsTable;
  manifest_children: ManifestChildrenTable;
  tags: TagsTable;
  mirror_manifests: MirrorManifestsTable;
  mirror_tags: MirrorTagsTable;
  mirror_blobs: MirrorBlobsTable;
  mirror_referrers: MirrorReferrersTable;
  blob_writes: BlobWritesTable;
  gc_pending: GcPendingTable;
  gc_lock: GcLockTable;
  gc_runs: GcRunsTable;
  audit_events: AuditEventsTable;
  audit_chain: AuditChainTable;
  notification_outbox: NotificationOutboxTable;
  notification_endpoints: NotificationEndpointsTable;
  readiness_probes: ReadinessProbesTable;
  accounts: AccountsTable;
  directory_version: DirectoryVersionTable;
  projects: ProjectsTable;
  project_members: ProjectMembersTable;
  robots: RobotsTable;
}
