import type { AuditEventFilter, AuditEventRow } from '../metadata/audit.js';
import { parseDigest } from '../oci/digest.js';
import { invalidParameter, RegistryError } from '../oci/errors.js';
import { validateRepositoryName, validateTag } from '../oci/names.js';

const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

export const auditActions = ['created', 'moved', 'deleted', 'restored', 'unchanged', 'collected', 'pushed', 'pulled', 'seen', 'gone', 'imported', 'evicted'] as const;

/** The filter parameters of an events query, as the API and the command line name them. */
export const eventFilterKeys = ['repository', 'tag', 'digest', 'actor', 'action', 'since', 'until', 'upstream', 'source', 'target'] as const;


/** An RFC 3339 time (2026-12-01T14:00:00Z, with an offset or fractions) as milliseconds. */
export function parseTime(parameter: string, value: string): number {
  const at = rfc3339.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(at)) throw invalidParameter(parameter, 'expected an RFC 3339 time such as 2026-12-01T14:00:00Z', value);
  return at;
}

/** Checks a value with one of the name validators, naming the parameter when it fails. */
export function validated(parameter: string, value: string, validate: (value: string) => unknown): string {
  try {
    validate(value);
    return value;
  } catch (error) {
    if (error instanceof RegistryError) throw invalidParameter(parameter, error.message, value);
    throw error;
  }
}

/** The filters of an events query; every bad one is 400 PARAMETER_INVALID naming it. `value` reads one parameter. */
export function parseEventFilter(value: (key: (typeof eventFilterKeys)[number]) => string | undefined): AuditEventFilter {
  const filter: AuditEventFilter = {};
  const repository = value('repository');
  if (repository !== undefined) filter.repository = validated('repository', repository, validateRepositoryName);
  const tag = value('tag');
  if (tag !== undefined) filter.tag = validated('tag', tag, validateTag);
  const digest = value('digest');
  if (digest !== undefined) filter.digest = validated('digest', digest, parseDigest);
  const actor = value('actor');
  if (actor !== undefined) {
    if (actor.length > 255) throw invalidParameter('actor', 'longer than 255 characters');
    filter.actor = actor;
  }
  const action = value('action');
  if (action !== undefined) {
    if (!(auditActions as readonly string[]).includes(action)) throw invalidParameter('action', `expected one of ${auditActions.join(', ')}`, action);
    filter.action = action;
  }
  const target = value('target');
  if (target !== undefined) {
    if (!['tag', 'manifest', 'blob', 'account', 'project'].includes(target)) throw invalidParameter('target', 'expected tag, manifest, blob, account or project', target);
    filter.target = target;
  }
  const since = value('since');
  if (since !== undefined) filter.since = parseTime('since', since);
  const until = value('until');
  if (until !== undefined) filter.until = parseTime('until', until);
  if (filter.since !== undefined && filter.until !== undefined && filter.since > filter.until) throw invalidParameter('since', 'is after until');
  const upstream = value('upstream');
  const source = value('source');
  if (source !== undefined && !['local', 'mirror', 'all'].includes(source)) throw invalidParameter('source', 'expected local, mirror or all', source);
  if (upstream !== undefined) {
    if (source === 'local') throw invalidParameter('upstream', 'names an upstream while source is local');
    filter.upstream = upstream;
  } else if (source === 'local') {
    filter.upstream = null;
  } else if (source === 'mirror') {
    filter.mirroredOnly = true;
  }
  return filter;
}

/** An event as the API and `registry audit` show it: times as RFC 3339 (milliseconds) and as milliseconds since the epoch. */
export function eventJson(event: AuditEventRow): Record<string, unknown> {
  let detail: unknown = event.detail;
  try {
    detail = event.detail === null ? null : JSON.parse(event.detail);
  } catch {
    // Stored as text that is not JSON: shown as is.
  }
  return {
    id: event.id,
    time: new Date(event.at).toISOString(),
    timeMs: event.at,
    target: event.target,
    repository: event.repository,
    tag: event.tag,
    upstream: event.upstream,
    action: event.action,
    from: event.from,
    to: event.to,
    mediaType: event.mediaType,
    actor: event.actor,
    authMethod: event.authMethod,
    address: event.address,
    userAgent: event.userAgent,
    requestId: event.requestId,
    instance: event.instance,
    restoredEvent: event.restoredEvent,
    detail,
    prevHash: event.prevHash,
    hash: event.hash,
  };
}
