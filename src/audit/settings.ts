import { hostname } from 'node:os';
import { ConfigError } from '../config/load.js';
import { formatDuration } from '../config/values.js';
import type { RegistryConfig } from '../config/schema.js';

/** What the audit log records beyond tag changes, and how long it keeps what. */
export interface AuditSettings {
  /** This replica's name in events. */
  instance: string;
  recordUnchanged: boolean;
  recordManifests: boolean;
  recordBlobs: boolean;
  recordPulls: boolean;
  pullFlushMs: number;
  /** 0: events are kept forever. */
  retentionMs: number;
  timeMachineMs: number;
}

export function auditSettings(config: RegistryConfig): AuditSettings {
  const audit = config.audit;
  if (audit.retention > 0 && audit.retention < audit.timemachine) {
    throw new ConfigError(`audit.retention (${formatDuration(audit.retention)}) is shorter than audit.timemachine (${formatDuration(audit.timemachine)}): a restore within the time machine needs its events`);
  }
  return {
    instance: audit.instance !== '' ? audit.instance : hostname(),
    recordUnchanged: audit.unchanged,
    recordManifests: audit.manifests,
    recordBlobs: audit.blobs,
    recordPulls: audit.pulls,
    pullFlushMs: audit.pullflush,
    retentionMs: audit.retention,
    timeMachineMs: audit.timemachine,
  };
}

export type { RequestOrigin } from '../metadata/audit.js';

export const anonymousActor = 'anonymous';

export { systemOrigin } from '../metadata/audit.js';
