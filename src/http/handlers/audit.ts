import { Readable } from 'node:stream';
import type { AuditService, RestoreTarget } from '../../audit/audit-service.js';
import { eventFilterKeys, eventJson, parseEventFilter, parseTime, validated } from '../../audit/filters.js';
import { invalidParameter as invalid } from '../../oci/errors.js';
import { parseDigest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { validateTag } from '../../oci/names.js';
import type { RepositoryContents } from '../../mirror/mirrored-content.js';
import type { RegistryContext } from '../context.js';
import { decodeSegment, pageSizeOf, pagination, queryParameter, readSmallBody, requestOrigin, setNextPageLink } from '../request-parts.js';
import { auditAccess } from '../../auth/scopes.js';
import type { RouteParams } from '../route-types.js';

const defaultPage = 100;
const maxPage = 1000;
function wantsLines(ctx: RegistryContext): boolean {
  const format = queryParameter(ctx, 'format');
  if (format !== undefined && format !== '' && format !== 'json' && format !== 'jsonl') throw invalid('format', 'expected json or jsonl', format);
  return format === 'jsonl' || (format !== 'json' && /application\/x-ndjson/i.test(ctx.get('accept')));
}


const maxRestoreBody = 4096;

export function auditHandlers(audit: AuditService, content: RepositoryContents) {
  /** Local names read local events; a mirrored name reads its upstream's. */
  const tagSubject = (params: RouteParams) => content.of(params, undefined).historyOf(validateTag(decodeSegment(params.reference)));
  return {
    /** GET /api/v1/audit/events: newest first, `n` per page, `last` the id of the previous page's last event; or every event as JSON lines, oldest first. */
    async events(ctx: RegistryContext): Promise<void> {
      const filter = parseEventFilter((key) => queryParameter(ctx, key) || undefined);
      if (wantsLines(ctx)) {
        ctx.type = 'application/x-ndjson';
        ctx.set('Content-Disposition', 'attachment; filename="audit-events.jsonl"');
        const lines = audit.exportEvents(filter);
        ctx.body = Readable.from(
          (async function* () {
            for await (const event of lines) yield `${JSON.stringify(eventJson(event))}\n`;
          })(),
        );
        return;
      }
      const { last } = pagination(ctx);
      if (last !== undefined && !/^\d{1,15}$/.test(last)) {
        throw new RegistryError('PAGINATION_NUMBER_INVALID', { message: 'last must be the id of an event', detail: { parameter: 'last', value: last.slice(0, 50) } });
      }
      const pageSize = pageSizeOf(ctx, { default: defaultPage, max: maxPage });
      const events = await audit.events({ ...filter, ...(last !== undefined ? { before: Number(last) } : {}) }, pageSize + 1);
      const page = events.slice(0, pageSize);
      const lastShown = page.at(-1);
      if (events.length > pageSize && lastShown) setNextPageLink(ctx, { limit: pageSize, last: String(lastShown.id), keep: eventFilterKeys });
      ctx.body = { events: page.map(eventJson) };
    },

    /** GET /api/v1/audit/verify: 200 when the chain is whole, 409 naming the first event that is not. */
    async verify(ctx: RegistryContext): Promise<void> {
      const result = await audit.verify();
      ctx.status = result.ok ? 200 : 409;
      ctx.body = result;
    },

    /** GET /api/v1/repositories/<name>/tags/<tag>/history: the tag's periods, newest first. */
    async history(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const subject = tagSubject(params);
      const periods = await audit.history(subject.repository, subject.tag, subject.upstream);
      ctx.body = {
        name: params.repository,
        tag: subject.tag,
        ...(subject.upstream ? { upstream: subject.upstream, upstreamRepository: subject.repository } : {}),
        periods: periods.map((period) => ({
          ...period,
          from: new Date(period.from).toISOString(),
          until: period.until === null ? null : new Date(period.until).toISOString(),
        })),
      };
    },

    /** GET /api/v1/repositories/<name>/tags/<tag>?at=<RFC 3339>: the digest the tag pointed at then (now, without `at`), and the event that set it. */
    async at(ctx: RegistryContext, params: RouteParams): Promise<void> {
      const subject = tagSubject(params);
      const atText = queryParameter(ctx, 'at');
      const { at, event } = await audit.tagAt(subject.repository, subject.tag, atText ? parseTime('at', atText) : undefined, subject.upstream);
      ctx.body = { name: params.repository, tag: subject.tag, at: new Date(at).toISOString(), digest: event.to, since: new Date(event.at).toISOString(), event: eventJson(event) };
    },

    /** POST /api/v1/repositories/<name>/tags/<tag>/restore {"digest"} or {"event"}: needs push on the repository and the audit grant. */
    async restore(ctx: RegistryContext, params: RouteParams): Promise<void> {
      if (ctx.state.grant && !ctx.state.grant.allows(auditAccess.type, auditAccess.name, '*')) {
        throw new RegistryError('DENIED', { message: 'restoring a tag needs the audit grant (registry:audit:*) besides push', detail: [auditAccess] });
      }
      const tag = validateTag(decodeSegment(params.reference));
      const body = await readSmallBody(ctx, maxRestoreBody, () => invalid('body', `larger than ${maxRestoreBody} bytes`));
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw invalid('body', 'expected JSON: {"digest": "sha256:…"} or {"event": <id>}');
      }
      const fields = (parsed ?? {}) as Record<string, unknown>;
      let target: RestoreTarget;
      if (typeof fields.digest === 'string' && fields.event === undefined) target = { digest: validated('digest', fields.digest, parseDigest) };
      else if (typeof fields.event === 'number' && Number.isSafeInteger(fields.event) && fields.event > 0 && fields.digest === undefined) target = { event: fields.event };
      else throw invalid('body', 'expected {"digest": "sha256:…"} or {"event": <id>}, one of them');
      const restored = await audit.restore(params.repository, tag, target, requestOrigin(ctx));
      ctx.body = { name: params.repository, tag, from: restored.from, to: restored.to, restoredEvent: restored.restoredEvent, event: restored.eventId, changed: restored.eventId !== null };
    },
  };
}
