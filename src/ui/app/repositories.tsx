import { useEffect, useState } from 'preact/hooks';
import { formatSize, formatTime, routes } from './format.js';
import type { Session } from './session.js';
import { ErrorNote, Table, usePagedList } from './widgets.js';

interface RepositoryRow {
  name: string;
  source: 'local' | 'mirror';
  upstream: string | null;
  tags: number;
  size: number;
  pushedAt: number | null;
  pushedBy: string | null;
}

const pageSize = 50;

export function RepositoriesPage({ session }: { session: Session }) {
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState<'name' | 'pushed'>('name');
  const [source, setSource] = useState<'' | 'local' | 'mirror'>('');
  const list = usePagedList<RepositoryRow>(session, 'repositories');

  useEffect(() => {
    const search = new URLSearchParams({ n: String(pageSize), sort });
    if (query.trim()) search.set('q', query.trim());
    if (source) search.set('source', source);
    // Typing waits a moment, so one request goes per pause, not per key.
    const timer = setTimeout(() => void list.load(`/api/v1/repositories?${search.toString()}`), 200);
    return () => clearTimeout(timer);
  }, [query, sort, source]);

  return (
    <section aria-labelledby="repositories-title">
      <h1 id="repositories-title">Repositories</h1>
      <form class="toolbar" role="search" onSubmit={(event) => event.preventDefault()}>
        <label>
          Search
          <input type="search" value={query} placeholder="name contains…" onInput={(event) => setQuery((event.target as HTMLInputElement).value)} />
        </label>
        <label>
          Sort by
          <select value={sort} onChange={(event) => setSort((event.target as HTMLSelectElement).value as 'name' | 'pushed')}>
            <option value="name">name</option>
            <option value="pushed">last push</option>
          </select>
        </label>
        <label>
          Source
          <select value={source} onChange={(event) => setSource((event.target as HTMLSelectElement).value as '' | 'local' | 'mirror')}>
            <option value="">all</option>
            <option value="local">pushed here</option>
            <option value="mirror">mirror cache</option>
          </select>
        </label>
      </form>
      {list.error ? <ErrorNote error={list.error} /> : null}
      {list.rows === null && !list.error ? <p class="loading">Loading…</p> : null}
      {list.rows !== null && list.rows.length === 0 ? <p>No repositories{query ? ` matching “${query}”` : ''} yet.</p> : null}
      {list.rows !== null && list.rows.length > 0 ? (
        <Table caption="Repositories" head={['Name', 'Source', 'Tags', 'Size', 'Last push', 'By']}>
          {list.rows.map((row) => (
            <tr key={row.name}>
              <td data-label="Name">
                <a href={routes.repository(row.name)}>{row.name}</a>
              </td>
              <td data-label="Source">{row.source === 'mirror' ? `mirror of ${row.upstream ?? '?'}` : 'local'}</td>
              <td data-label="Tags" class="number">
                {row.tags}
              </td>
              <td data-label="Size" class="number">
                {formatSize(row.size)}
              </td>
              <td data-label="Last push">{formatTime(row.pushedAt)}</td>
              <td data-label="By">{row.pushedBy ?? '—'}</td>
            </tr>
          ))}
        </Table>
      ) : null}
      {list.more}
    </section>
  );
}
