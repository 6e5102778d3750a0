import { randomUUID } from 'node:crypto';
import type { AuditEventContent, AuditOrigin, OutboxPayloads } from '../metadata/audit.js';

/** The media type of Distribution's notification envelope, which receivers check. */
export const eventsMediaType = 'application/vnd.docker.distribution.events.v2+json';

export type NotifiedAction = 'push' | 'pull' | 'delete';

/** One event as Distribution sends it, plus what its events lack: the previous digest and the audit event id. */
export interface NotificationEvent {
  id: string;
  timestamp: string;
  action: NotifiedAction;
  target: {
    mediaType?: string;
    size?: number;
    digest: string;
    length?: number;
    repository: string;
    url?: string;
    tag?: string;
    previousDigest?: string;
    /** A mirrored tag's upstream (`repository` is then the upstream's name for it). */
    upstream?: string;
  };
  request: { id: string | null; addr: string | null; host: string | null; method: string | null; useragent: string | null };
  actor: { name: string };
  source: { addr: string | null; instanceID: string | null };
  /** The audit event: GET /api/v1/audit/events?… shows it with its chain hash. */
  audit: number;
}

/**
 * The action and digest an audit event is notified as; undefined for what is not (pulls of blobs
 * and the like never become events). A mirrored tag first seen, moved upstream or imported is a
 * push, one gone upstream or evicted a delete; a manifest garbage collection removes is a delete.
 */
function notifiedAs(event: AuditEventContent): { action: NotifiedAction; digest: string; previousDigest?: string } | undefined {
  // Changes of accounts and projects are audit events, not content: no receiver of Distribution's events expects them.
  if (event.target === 'account' || event.target === 'project') return undefined;
  if (event.upstream !== null) {
    switch (event.action) {
      case 'seen':
      case 'moved':
      case 'imported':
        return event.to ? { action: 'push', digest: event.to, ...(event.from ? { previousDigest: event.from } : {}) } : undefined;
      case 'gone':
      case 'evicted':
        return event.from ? { action: 'delete', digest: event.from } : undefined;
      default:
        return undefined;
    }
  }
  switch (event.action) {
    case 'created':
    case 'unchanged':
    case 'pushed':
      return event.to ? { action: 'push', digest: event.to } : undefined;
    case 'moved':
    case 'restored':
      return event.to ? { action: 'push', digest: event.to, ...(event.from ? { previousDigest: event.from } : {}) } : undefined;
    case 'deleted':
    case 'collected':
      return event.from ? { action: 'delete', digest: event.from } : undefined;
    case 'pulled':
      return event.to ? { action: 'pull', digest: event.to } : undefined;
    default:
      return undefined;
  }
}

/**
 * Builds each notified event's payload as the event is appended (see appendAuditEvents), so the
 * outbox row is complete in the change's own transaction and outlives the audit log's pruning.
 */
export class NotificationPayloads implements OutboxPayloads {
  payloadOf(event: AuditEventContent, extra: { size: number | null }, origin: AuditOrigin): string | null {
    const notified = notifiedAs(event);
    if (!notified) return null;
    const host = origin.host ?? null;
    const kind = event.target === 'blob' ? 'blobs' : 'manifests';
    const payload: NotificationEvent = {
      id: randomUUID(),
      timestamp: new Date(event.at).toISOString(),
      action: notified.action,
      target: {
        ...(event.mediaType ? { mediaType: event.mediaType } : {}),
        ...(extra.size !== null ? { size: extra.size, length: extra.size } : {}),
        digest: notified.digest,
        repository: event.repository,
        ...(host ? { url: `${origin.scheme ?? 'http'}://${host}/v2/${event.repository}/${kind}/${notified.digest}` } : {}),
        ...(event.tag !== null ? { tag: event.tag } : {}),
        ...(notified.previousDigest ? { previousDigest: notified.previousDigest } : {}),
        ...(event.upstream !== null ? { upstream: event.upstream } : {}),
      },
      request: { id: event.requestId, addr: event.address, host, method: origin.method ?? null, useragent: event.userAgent },
      actor: { name: event.actor === 'anonymous' ? '' : event.actor },
      source: { addr: host, instanceID: event.instance },
      audit: event.id,
    };
    return JSON.stringify(payload);
  }
}
