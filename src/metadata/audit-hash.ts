import { createHash } from 'node:crypto';

/** What an audit event says; its hash covers every field, in this order, and the previous event's hash. */
export interface AuditEventContent {
  id: number;
  at: number;
  /** 'tag', 'manifest' or 'blob': what the event is about. */
  target: string;
  repository: string;
  tag: string | null;
  /** The upstream's name for a mirrored tag; null for local content. */
  upstream: string | null;
  action: string;
  from: string | null;
  to: string | null;
  mediaType: string | null;
  actor: string;
  /** How the actor proved itself: token, basic, none, or system (the registry itself). */
  authMethod: string;
  address: string | null;
  userAgent: string | null;
  requestId: string | null;
  instance: string | null;
  /** A restore: the event whose digest the tag was pointed back at. */
  restoredEvent: number | null;
  /** Extra facts as JSON text (a pull count, a policy). */
  detail: string | null;
}

/** The previous hash of the first event ever written. */
export const genesisHash = '0'.repeat(64);

/** The canonical text of an event: a JSON array, so no field's text can run into the next one's. */
export function canonicalEvent(event: AuditEventContent): string {
  return JSON.stringify([
    event.id,
    event.at,
    event.target,
    event.repository,
    event.tag,
    event.upstream,
    event.action,
    event.from,
    event.to,
    event.mediaType,
    event.actor,
    event.authMethod,
    event.address,
    event.userAgent,
    event.requestId,
    event.instance,
    event.restoredEvent,
    event.detail,
  ]);
}

/** SHA-256 (hex) of the previous event's hash and this event's canonical text. */
export function chainHash(previousHash: string, event: AuditEventContent): string {
  return createHash('sha256').update(previousHash).update('\n').update(canonicalEvent(event)).digest('hex');
}
