import { useEffect, useState } from 'preact/hooks';
import { formatTime, routes, shortDigest } from './format.js';
import type { Session } from './session.js';
import { ErrorNote, Status, Table, useLoad, usePagedList } from './widgets.js';

interface AuditEvent {
  id: number;
  time: string;
  target: string;
  repository: string;
  tag: string | null;
  upstream: string | null;
  action: string;
  from: string | null;
  to: string | null;
  actor: string;
  address: string | null;
  /** For a change of an account or a project: what it changed (`account`, `project`, `robot`). */
  detail?: { account?: string; project?: string; robot?: string } | string | null;
}

/** What an event is about, in the Repository column: a repository, a mirrored one, or an account or project of the directory. */
function subjectOf(event: AuditEvent) {
  if (event.target === 'account' || event.target === 'project') {
    const detail = typeof event.detail === 'object' && event.detail !== null ? event.detail : {};
    const named = event.target === 'account' ? detail.account : [detail.project, detail.robot ?? detail.account].filter(Boolean).join(': ');
    return `${event.target} ${named ?? ''}`;
  }
  return event.upstream ? `${event.upstream}: ${event.repository}` : <a href={routes.repository(event.repository)}>{event.repository}</a>;
}

const auditFilters = ['repository', 'tag', 'actor', 'action', 'digest', 'since', 'until'] as const;

export function OperationsNav({ current }: { current: 'audit' | 'gc' | 'mirror' }) {
  const link = (page: typeof current, href: string, label: string) => (
    <a href={href} aria-current={current === page ? 'page' : undefined}>
      {label}
    </a>
  );
  return (
    <nav class="tabs" aria-label="Operations">
      {link('audit', routes.audit(), 'Audit events')}
      {link('gc', routes.gc(), 'Garbage collection')}
      {link('mirror', routes.mirror(), 'Mirror')}
    </nav>
  );
}

export function AuditPage({ session }: { session: Session }) {
  const [filters, setFilters] = useState<Record<string, string>>({});
  const list = usePagedList<AuditEvent>(session, 'events');
  const search = (event?: Event) => {
    event?.preventDefault();
    const query = new URLSearchParams({ n: '100' });
    for (const [key, value] of Object.entries(filters)) if (value.trim()) query.set(key, value.trim());
    void list.load(`/api/v1/audit/events?${query.toString()}`);
  };
  useEffect(() => search(), []);
  return (
    <section aria-labelledby="audit-title">
      <OperationsNav current="audit" />
      <h1 id="audit-title">Audit events</h1>
      <form class="filters" onSubmit={search}>
        {auditFilters.map((key) => (
          <label>
            {key}
            <input
              value={filters[key] ?? ''}
              placeholder={key === 'since' || key === 'until' ? '2026-12-01T00:00:00Z' : ''}
              onInput={(event) => setFilters({ ...filters, [key]: (event.target as HTMLInputElement).value })}
            />
          </label>
        ))}
        <button type="submit" class="primary">
          Search
        </button>
      </form>
      {list.error ? <ErrorNote error={list.error} /> : null}
      {list.rows ? (
        list.rows.length === 0 ? (
          <p>No events match.</p>
        ) : (
          <Table caption="Audit events" head={['#', 'Time', 'Repository', 'Tag', 'Action', 'From', 'To', 'Actor', 'Address']}>
            {list.rows.map((event) => (
              <tr>
                <td data-label="#" class="number">
                  {event.id}
                </td>
                <td data-label="Time">{formatTime(event.time)}</td>
                <td data-label="Repository">{subjectOf(event)}</td>
                <td data-label="Tag">{event.tag && !event.upstream ? <a href={routes.history(event.repository, event.tag)}>{event.tag}</a> : (event.tag ?? '—')}</td>
                <td data-label="Action">{event.action}</td>
                <td data-label="From">{event.from ? <code>{shortDigest(event.from)}</code> : '—'}</td>
                <td data-label="To">{event.to ? <code>{shortDigest(event.to)}</code> : '—'}</td>
                <td data-label="Actor">{event.actor}</td>
                <td data-label="Address">{event.address ?? '—'}</td>
              </tr>
            ))}
          </Table>
        )
      ) : null}
      {list.more}
    </section>
  );
}

interface GcRun {
  id: number;
  state: string;
  dryRun: boolean;
  holder: string;
  startedAt: string;
  finishedAt: string | null;
  report: Record<string, unknown> | null;
}

export function GcPage({ session }: { session: Session }) {
  const runs = useLoad(async () => (await session.json<{ runs: GcRun[] }>('/api/v1/gc')).body.runs, []);
  const [error, setError] = useState<Error | null>(null);
  const start = async () => {
    try {
      const { body } = await session.json<{ id: number }>('/api/v1/gc?dryrun=true', { method: 'POST' });
      window.location.hash = routes.gcRun(body.id);
    } catch (caught) {
      setError(caught as Error);
    }
  };
  return (
    <section aria-labelledby="gc-title">
      <OperationsNav current="gc" />
      <h1 id="gc-title">Garbage collection</h1>
      <p>
        <button type="button" class="primary" onClick={start}>
          Start a dry run
        </button>{' '}
        <span class="muted">A dry run lists what a collection would remove and removes nothing.</span>
      </p>
      {error ? <ErrorNote error={error} /> : null}
      <Status loaded={runs}>
        {(list) =>
          list.length === 0 ? (
            <p>No runs yet.</p>
          ) : (
            <Table caption="Garbage collection runs" head={['Run', 'Kind', 'State', 'Started', 'Finished', 'By']}>
              {list.map((run) => (
                <tr>
                  <td data-label="Run">
                    <a href={routes.gcRun(run.id)}>#{run.id}</a>
                  </td>
                  <td data-label="Kind">{run.dryRun ? 'dry run' : 'collection'}</td>
                  <td data-label="State">{run.state}</td>
                  <td data-label="Started">{formatTime(run.startedAt)}</td>
                  <td data-label="Finished">{formatTime(run.finishedAt)}</td>
                  <td data-label="By">{run.holder}</td>
                </tr>
              ))}
            </Table>
          )
        }
      </Status>
    </section>
  );
}

export function GcRunPage({ session, id }: { session: Session; id: string }) {
  const [tick, setTick] = useState(0);
  const run = useLoad(async () => (await session.json<GcRun>(`/api/v1/gc/${id}`)).body, [id, tick]);
  if (run.data?.state === 'running') setTimeout(() => setTick(tick + 1), 1000);
  return (
    <section aria-labelledby="gc-run-title">
      <OperationsNav current="gc" />
      <h1 id="gc-run-title">Garbage collection run #{id}</h1>
      <Status loaded={run}>
        {(shown) => (
          <>
            <dl class="facts">
              <dt>Kind</dt>
              <dd>{shown.dryRun ? 'dry run' : 'collection'}</dd>
              <dt>State</dt>
              <dd>
                <span role="status">{shown.state}</span>
              </dd>
              <dt>Started</dt>
              <dd>{formatTime(shown.startedAt)}</dd>
              <dt>Finished</dt>
              <dd>{formatTime(shown.finishedAt)}</dd>
            </dl>
            <h2>Report</h2>
            <pre class="json" tabIndex={0} aria-label="Report">
              {shown.report ? JSON.stringify(shown.report, null, 2) : 'No report yet.'}
            </pre>
          </>
        )}
      </Status>
    </section>
  );
}

interface UpstreamStatus {
  name: string;
  url: string;
  state: string;
  circuitOpenUntil: string | null;
  consecutiveFailures: number;
  lastSuccess: { at: string } | null;
  lastFailure: { at: string; reason: string } | null;
  cacheHits: number;
  cacheMisses: number;
  staleServed: number;
}

export function MirrorPage({ session }: { session: Session }) {
  const status = useLoad(async () => (await session.json<{ upstreams: UpstreamStatus[] }>('/api/v1/mirror/status')).body.upstreams, []);
  return (
    <section aria-labelledby="mirror-title">
      <OperationsNav current="mirror" />
      <h1 id="mirror-title">Mirror</h1>
      {status.error && 'status' in status.error && status.error.status === 404 ? (
        <p>This registry mirrors no upstream (mirror.upstreams is empty).</p>
      ) : (
        <Status loaded={status}>
          {(upstreams) => (
            <Table caption="Upstreams" head={['Upstream', 'URL', 'State', 'Last success', 'Last failure', 'Hits', 'Misses', 'Stale served']}>
              {upstreams.map((upstream) => (
                <tr>
                  <td data-label="Upstream">{upstream.name}</td>
                  <td data-label="URL">{upstream.url}</td>
                  <td data-label="State">
                    {upstream.state}
                    {upstream.circuitOpenUntil ? ` (not asked until ${formatTime(upstream.circuitOpenUntil)})` : ''}
                  </td>
                  <td data-label="Last success">{upstream.lastSuccess ? formatTime(upstream.lastSuccess.at) : '—'}</td>
                  <td data-label="Last failure">{upstream.lastFailure ? `${formatTime(upstream.lastFailure.at)}: ${upstream.lastFailure.reason}` : '—'}</td>
                  <td data-label="Hits" class="number">
                    {upstream.cacheHits}
                  </td>
                  <td data-label="Misses" class="number">
                    {upstream.cacheMisses}
                  </td>
                  <td data-label="Stale served" class="number">
                    {upstream.staleServed}
                  </td>
                </tr>
              ))}
            </Table>
          )}
        </Status>
      )}
    </section>
  );
}
