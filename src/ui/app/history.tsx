import { useState } from 'preact/hooks';
import { formatTime, routes, shortDigest } from './format.js';
import type { Session } from './session.js';
import { Confirm, Status, useLoad } from './widgets.js';

interface Period {
  digest: string;
  from: string;
  until: string | null;
  setBy: { event: number; action: string; actor: string; authMethod: string; address: string | null; userAgent: string | null };
}

export function HistoryPage({ session, name, tag }: { session: Session; name: string; tag: string }) {
  const history = useLoad(async () => (await session.json<{ periods: Period[] }>(`/api/v1/repositories/${name}/-/tags/${tag}/history`)).body.periods, [name, tag]);
  const grants = useLoad(async () => {
    const [repository, registry] = await Promise.all([session.may('repository', name, ['pull', 'push']), session.may('registry', 'audit', ['*'])]);
    return repository.has('push') && registry.has('*');
  }, [name]);
  const [restoring, setRestoring] = useState<Period | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const restore = async (period: Period) => {
    await session.request(`/api/v1/repositories/${name}/-/tags/${tag}/restore`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ digest: period.digest }) });
    setRestoring(null);
    setNotice(`${tag} points at ${shortDigest(period.digest)} again.`);
    history.reload();
  };

  return (
    <section aria-labelledby="history-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={routes.repositories()}>Repositories</a> / <a href={routes.repository(name)}>{name}</a> / <a href={routes.image(name, tag)}>{tag}</a> / <span aria-current="page">history</span>
      </nav>
      <h1 id="history-title">
        History of {name}:{tag}
      </h1>
      {notice ? (
        <p class="notice" role="status">
          {notice}
        </p>
      ) : null}
      {restoring ? (
        <Confirm
          question={`Point ${tag} at ${shortDigest(restoring.digest)} again?`}
          details={<p>The tag moves from what it names now to the manifest it named from {formatTime(restoring.from)}; the move is recorded in the audit log under your account.</p>}
          action="Restore"
          onConfirm={() => restore(restoring)}
          onCancel={() => setRestoring(null)}
        />
      ) : null}
      <Status loaded={history}>
        {(periods) =>
          periods.length === 0 ? (
            <p>No recorded history for this tag.</p>
          ) : (
            <ol class="timeline" aria-label={`Digests ${tag} pointed at, newest first`}>
              {periods.map((period, position) => (
                <li class={position === 0 && period.until === null ? 'current' : ''}>
                  <div class="when">
                    {formatTime(period.from)} → {period.until === null ? <strong>now</strong> : formatTime(period.until)}
                  </div>
                  <div class="what">
                    <a href={routes.image(name, period.digest)}>
                      <code>{shortDigest(period.digest)}</code>
                    </a>{' '}
                    <span class="muted">
                      {period.setBy.action} by <strong>{period.setBy.actor}</strong>
                      {period.setBy.address ? ` from ${period.setBy.address}` : ''}
                      {period.setBy.userAgent ? ` (${period.setBy.userAgent})` : ''}
                    </span>
                  </div>
                  {grants.data && !(position === 0 && period.until === null) ? (
                    <button type="button" onClick={() => setRestoring(period)} aria-label={`Restore ${shortDigest(period.digest)}`}>
                      Restore this digest
                    </button>
                  ) : null}
                </li>
              ))}
            </ol>
          )
        }
      </Status>
    </section>
  );
}
