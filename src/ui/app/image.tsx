import type { ComponentChildren } from 'preact';
import { formatSize, formatTime, isIndex, manifestAccept, mediaTypeLabel, routes, shortDigest } from './format.js';
import type { Session } from './session.js';
import { Copyable, Status, Table, useLoad } from './widgets.js';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

interface Manifest {
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

interface ImageConfig {
  created?: string;
  architecture?: string;
  os?: string;
  config?: { Entrypoint?: string[] | null; Cmd?: string[] | null; Env?: string[] | null; Labels?: Record<string, string> | null; WorkingDir?: string; User?: string };
  history?: Array<{ created?: string; created_by?: string; empty_layer?: boolean; comment?: string }>;
}

interface LoadedManifest {
  digest: string;
  mediaType: string;
  text: string;
  manifest: Manifest;
}

const configTypes = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

function platformOf(descriptor: Descriptor): string {
  const platform = descriptor.platform;
  return platform ? [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/') : '—';
}

/** The manifest as stored, pretty; the digests of manifests it names (an index's children, a subject) link to them. */
function ManifestJson({ name, text, manifest }: { name: string; text: string; manifest: Manifest }) {
  let pretty = text;
  try {
    pretty = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // Shown as stored.
  }
  const manifestDigests = new Set([...(manifest.manifests ?? []).map((child) => child.digest), ...(manifest.subject ? [manifest.subject.digest] : [])]);
  const parts: ComponentChildren[] = [];
  let last = 0;
  for (const match of pretty.matchAll(/"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"/g)) {
    const digest = match[1]!;
    parts.push(pretty.slice(last, match.index + 1));
    parts.push(manifestDigests.has(digest) ? <a href={routes.image(name, digest)}>{digest}</a> : <span class="digest">{digest}</span>);
    last = match.index + 1 + digest.length;
  }
  parts.push(pretty.slice(last));
  return (
    <pre class="json" tabIndex={0} aria-label="Manifest JSON">
      {parts}
    </pre>
  );
}

function ConfigView({ session, name, config }: { session: Session; name: string; config: Descriptor }) {
  const loaded = useLoad(async () => (await session.json<ImageConfig>(`/v2/${name}/blobs/${config.digest}`)).body, [name, config.digest]);
  return (
    <section aria-labelledby="config-title">
      <h2 id="config-title">Config</h2>
      <Status loaded={loaded}>
        {(image) => (
          <dl class="facts">
            <dt>Created</dt>
            <dd>{image.created ? formatTime(image.created) : '—'}</dd>
            <dt>Platform</dt>
            <dd>{[image.os, image.architecture].filter(Boolean).join('/') || '—'}</dd>
            <dt>Entrypoint</dt>
            <dd>
              <code>{image.config?.Entrypoint ? JSON.stringify(image.config.Entrypoint) : '—'}</code>
            </dd>
            <dt>Cmd</dt>
            <dd>
              <code>{image.config?.Cmd ? JSON.stringify(image.config.Cmd) : '—'}</code>
            </dd>
            <dt>Working directory</dt>
            <dd>{image.config?.WorkingDir || '—'}</dd>
            <dt>User</dt>
            <dd>{image.config?.User || '—'}</dd>
            <dt>Environment</dt>
            <dd>{image.config?.Env?.length ? <ul class="plain">{image.config.Env.map((line) => <li><code>{line}</code></li>)}</ul> : '—'}</dd>
            <dt>Labels</dt>
            <dd>
              {image.config?.Labels && Object.keys(image.config.Labels).length ? (
                <ul class="plain">
                  {Object.entries(image.config.Labels).map(([key, value]) => (
                    <li>
                      <code>
                        {key}={value}
                      </code>
                    </li>
                  ))}
                </ul>
              ) : (
                '—'
              )}
            </dd>
            <dt>History</dt>
            <dd>
              {image.history?.length ? (
                <ol class="history-steps">
                  {image.history.map((step) => (
                    <li>
                      <code>{step.created_by ?? step.comment ?? ''}</code>
                      {step.empty_layer ? <span class="muted"> (no layer)</span> : null}
                    </li>
                  ))}
                </ol>
              ) : (
                '—'
              )}
            </dd>
          </dl>
        )}
      </Status>
    </section>
  );
}

function Referrers({ session, name, digest }: { session: Session; name: string; digest: string }) {
  const loaded = useLoad(async () => (await session.json<{ manifests?: Descriptor[] }>(`/v2/${name}/referrers/${digest}`)).body.manifests ?? [], [name, digest]);
  return (
    <section aria-labelledby="referrers-title">
      <h2 id="referrers-title">Referrers</h2>
      <Status loaded={loaded}>
        {(referrers) =>
          referrers.length === 0 ? (
            <p>No signatures, SBOMs or attestations refer to this manifest.</p>
          ) : (
            <Table caption="Referrers" head={['Artifact type', 'Digest', 'Size']}>
              {referrers.map((referrer) => (
                <tr>
                  <td data-label="Artifact type">{referrer.artifactType ?? mediaTypeLabel(referrer.mediaType)}</td>
                  <td data-label="Digest">
                    <a href={routes.image(name, referrer.digest)}>{shortDigest(referrer.digest)}</a>
                  </td>
                  <td data-label="Size" class="number">
                    {formatSize(referrer.size)}
                  </td>
                </tr>
              ))}
            </Table>
          )
        }
      </Status>
    </section>
  );
}

export function ImagePage({ session, name, reference }: { session: Session; name: string; reference: string }) {
  const loaded = useLoad(async (): Promise<LoadedManifest> => {
    const response = await session.request(`/v2/${name}/manifests/${reference}`, { headers: { Accept: manifestAccept } });
    const text = await response.text();
    const manifest = JSON.parse(text) as Manifest;
    return { digest: response.headers.get('docker-content-digest') ?? reference, mediaType: response.headers.get('content-type') ?? manifest.mediaType ?? '', text, manifest };
  }, [name, reference]);
  const isTag = !reference.includes(':');
  return (
    <section aria-labelledby="image-title">
      <nav class="crumbs" aria-label="Breadcrumb">
        <a href={routes.repositories()}>Repositories</a> / <a href={routes.repository(name)}>{name}</a> / <span aria-current="page">{isTag ? reference : shortDigest(reference)}</span>
      </nav>
      <h1 id="image-title">
        {name}
        {isTag ? `:${reference}` : `@${shortDigest(reference)}`}
      </h1>
      {isTag ? (
        <p>
          <a href={routes.history(name, reference)}>History of tag {reference}</a>
        </p>
      ) : null}
      <Status loaded={loaded}>
        {({ digest, mediaType, text, manifest }) => {
          const layers = manifest.layers ?? [];
          const total = layers.reduce((sum, layer) => sum + layer.size, (manifest.config?.size ?? 0) + text.length);
          return (
            <>
              <dl class="facts">
                <dt>Digest</dt>
                <dd>
                  <Copyable text={digest} label="manifest digest" />
                </dd>
                <dt>Media type</dt>
                <dd>{mediaTypeLabel(mediaType)}</dd>
                {manifest.artifactType ? (
                  <>
                    <dt>Artifact type</dt>
                    <dd>{manifest.artifactType}</dd>
                  </>
                ) : null}
                {manifest.subject ? (
                  <>
                    <dt>Refers to</dt>
                    <dd>
                      <a href={routes.image(name, manifest.subject.digest)}>{shortDigest(manifest.subject.digest)}</a>
                    </dd>
                  </>
                ) : null}
                {!isIndex(mediaType) ? (
                  <>
                    <dt>Size</dt>
                    <dd>{formatSize(total)}</dd>
                  </>
                ) : null}
              </dl>
              {isIndex(mediaType) ? (
                <section aria-labelledby="platforms-title">
                  <h2 id="platforms-title">Platforms</h2>
                  <Table caption="Platforms" head={['Platform', 'Manifest', 'Type', 'Size']}>
                    {(manifest.manifests ?? []).map((child) => (
                      <tr>
                        <td data-label="Platform">{platformOf(child)}</td>
                        <td data-label="Manifest">
                          <a href={routes.image(name, child.digest)}>{shortDigest(child.digest)}</a>
                        </td>
                        <td data-label="Type">{child.artifactType ?? mediaTypeLabel(child.mediaType)}</td>
                        <td data-label="Size" class="number">
                          {formatSize(child.size)}
                        </td>
                      </tr>
                    ))}
                  </Table>
                </section>
              ) : (
                <>
                  {manifest.config && configTypes.has(manifest.config.mediaType) ? <ConfigView session={session} name={name} config={manifest.config} /> : null}
                  <section aria-labelledby="layers-title">
                    <h2 id="layers-title">Layers</h2>
                    {layers.length === 0 ? (
                      <p>No layers.</p>
                    ) : (
                      <Table caption="Layers" head={['#', 'Digest', 'Media type', 'Size']}>
                        {layers.map((layer, position) => (
                          <tr>
                            <td data-label="#" class="number">
                              {position + 1}
                            </td>
                            <td data-label="Digest">
                              <Copyable text={layer.digest} shown={shortDigest(layer.digest)} label={`digest of layer ${position + 1}`} />
                            </td>
                            <td data-label="Media type">{layer.mediaType}</td>
                            <td data-label="Size" class="number">
                              {formatSize(layer.size)}
                            </td>
                          </tr>
                        ))}
                      </Table>
                    )}
                  </section>
                </>
              )}
              <Referrers session={session} name={name} digest={digest} />
              <section aria-labelledby="json-title">
                <h2 id="json-title">Manifest</h2>
                <ManifestJson name={name} text={text} manifest={manifest} />
              </section>
            </>
          );
        }}
      </Status>
    </section>
  );
}
