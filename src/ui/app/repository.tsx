import { useEffect, useState } from 'preact/hooks';
import { formatSize, formatTime, kindLabel, routes, shortDigest } from './format.js';
import type { Session } from './session.js';
import { Confirm, Copyable, ErrorNote, Table, useLoad, usePagedList } from './widgets.js';

export interface TagRow {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  platforms: string[];
  pushedAt: number;
  pushedBy: string | null;
  pulledAt: number | null;
}

const pageSize = 100;

type Deletion = { kind: 'tag'; tag: TagRow } | { kind: 'manifest'; tag: TagRow };

export function RepositoryPage({ session, name }: { session: Session; name: string }) {
  const [glob, setGlob] = useState('');
  const list = usePagedList<TagRow>(session, 'tags');
  const [deletion, setDeletion] = useState<Deletion | null>(null);
  const [generation, setGeneration] = useState(0);
  const grants = useLoad(() => session.may('repository', name, ['pull', 'push', 'delete']), [name]);
  const mayDelete = grants.data?.has('delete') ?? false;
  useEffect(() => {
    const search = new URLSearchParams({ n: String(pageSize) });
    if (glob.trim()) search.set('glob', glob.trim());
    const timer = setTimeout(() => void list.load(`/api/v1/repositories/${name}/-/tags?${search.toString()}`), 200);
    return () => clearTimeout(timer);
  }, [name, glob, generation]);

  const host = window.location.host;
  const example = list.rows?.[0]?.name ?? 'latest';
  const sameDigest = (tag: TagRow) => (list.rows ?? []).filter((other) => other.digest === tag.digest && other.name !== tag.name).map((other) => other.name);

  const remove = async (target: Deletion) => {
    const reference = target.kind === 'tag' ? target.tag.name : target.tag.digest;
    await session.request(`/v2/${name}/manifests/${reference}`, { method: 'DELETE' });
    setDeletion(null);
    setGeneration((value) => value + 1);
  };

  return (
    <section aria-labelledby="repository-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={routes.repositories()}>Repositories</a> / <span aria-current="page">{name}</span>
      </nav>
      <h1 id="repository-title">{name}</h1>
      <div class="pull-lines" aria-label="Pull commands">
        <Copyable text={`docker pull ${host}/${name}:${example}`} label="docker pull command" />
        <Copyable text={`podman pull ${host}/${name}:${example}`} label="podman pull command" />
      </div>
      <form class="toolbar" role="search" onSubmit={(event) => event.preventDefault()}>
        <label>
          Tags matching
          <input type="search" value={glob} placeholder="v1.*" onInput={(event) => setGlob((event.target as HTMLInputElement).value)} />
        </label>
      </form>
      {deletion ? (
        <Confirm
          question={deletion.kind === 'tag' ? `Delete tag ${deletion.tag.name}?` : `Delete manifest ${shortDigest(deletion.tag.digest)}?`}
          details={
            deletion.kind === 'tag' ? (
              <p>The tag goes; the manifest {shortDigest(deletion.tag.digest)} stays{sameDigest(deletion.tag).length ? `, still tagged ${sameDigest(deletion.tag).join(', ')}` : ' (untagged, until garbage collection)'}.</p>
            ) : (
              <p>
                The manifest goes, and with it every tag on it:{' '}
                <strong>{[deletion.tag.name, ...sameDigest(deletion.tag)].join(', ')}</strong>
                {list.more ? ' (and any on later pages)' : ''}.
              </p>
            )
          }
          action="Delete"
          danger
          onConfirm={() => remove(deletion)}
          onCancel={() => setDeletion(null)}
        />
      ) : null}
      {list.error ? <ErrorNote error={list.error} /> : null}
      {list.rows === null && !list.error ? <p class="loading">Loading…</p> : null}
      {list.rows !== null && list.rows.length === 0 ? <p>No tags{glob ? ` matching “${glob}”` : ''}.</p> : null}
      {list.rows !== null && list.rows.length > 0 ? (
        <Table caption={`Tags of ${name}`} head={['Tag', 'Digest', 'Type', 'Size', 'Platforms', 'Pushed', 'By', 'Last pulled', '']}>
          {list.rows.map((row) => (
            <tr key={row.name}>
              <td data-label="Tag">
                <a href={routes.image(name, row.name)}>{row.name}</a>
              </td>
              <td data-label="Digest">
                <Copyable text={row.digest} shown={shortDigest(row.digest)} label={`digest of ${row.name}`} />
              </td>
              <td data-label="Type">{kindLabel(row.mediaType, row.artifactType)}</td>
              <td data-label="Size" class="number">
                {formatSize(row.size)}
              </td>
              <td data-label="Platforms">{row.platforms.length ? row.platforms.join(', ') : '—'}</td>
              <td data-label="Pushed">{formatTime(row.pushedAt)}</td>
              <td data-label="By">{row.pushedBy ?? '—'}</td>
              <td data-label="Last pulled">{formatTime(row.pulledAt)}</td>
              <td class="row-actions">
                <a href={routes.history(name, row.name)}>History</a>
                {mayDelete ? (
                  <>
                    <button type="button" class="link danger" onClick={() => setDeletion({ kind: 'tag', tag: row })} aria-label={`Delete tag ${row.name}`}>
                      Delete tag
                    </button>
                    <button type="button" class="link danger" onClick={() => setDeletion({ kind: 'manifest', tag: row })} aria-label={`Delete manifest of ${row.name}`}>
                      Delete manifest
                    </button>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </Table>
      ) : null}
      {list.more}
    </section>
  );
}
