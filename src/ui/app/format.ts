export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatTime(at: number | string | null): string {
  if (at === null) return '—';
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? String(at) : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function shortDigest(digest: string): string {
  const [algorithm, hex = ''] = digest.split(':');
  return `${algorithm}:${hex.slice(0, 12)}`;
}

/** A short name for a media type: `OCI image`, `Docker list`… */
export function mediaTypeLabel(mediaType: string): string {
  const known: Record<string, string> = {
    'application/vnd.oci.image.manifest.v1+json': 'OCI image',
    'application/vnd.oci.image.index.v1+json': 'OCI index',
    'application/vnd.docker.distribution.manifest.v2+json': 'Docker image',
    'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker list',
  };
  return known[mediaType] ?? mediaType;
}

/** Config media types of plain images: an image's artifactType falls back to them (as the referrers API does), and they say nothing more than its media type. */
const imageConfigTypes = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/** What a row's "Type" column shows: the artifact type of an artifact, else the manifest's kind. */
export function kindLabel(mediaType: string, artifactType: string | null): string {
  return artifactType && !imageConfigTypes.has(artifactType) ? artifactType : mediaTypeLabel(mediaType);
}

export const manifestAccept = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export function isIndex(mediaType: string): boolean {
  return mediaType === 'application/vnd.oci.image.index.v1+json' || mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json';
}

/** Hash routes: names hold slashes, so `/-/` separates the name from the page. */
export const routes = {
  repositories: () => '#/',
  repository: (name: string) => `#/r/${name}/-/tags`,
  image: (name: string, reference: string) => `#/r/${name}/-/image/${reference}`,
  history: (name: string, tag: string) => `#/r/${name}/-/history/${tag}`,
  audit: () => '#/ops/audit',
  gc: () => '#/ops/gc',
  gcRun: (id: number | string) => `#/ops/gc/${id}`,
  mirror: () => '#/ops/mirror',
};

export type Route =
  | { page: 'repositories' }
  | { page: 'repository'; name: string }
  | { page: 'image'; name: string; reference: string }
  | { page: 'history'; name: string; tag: string }
  | { page: 'audit' }
  | { page: 'gc' }
  | { page: 'gcRun'; id: string }
  | { page: 'mirror' }
  | { page: 'missing'; hash: string };

/** Repository names, tags and digests as the registry accepts them: nothing else goes into an API path. */
const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const namePattern = new RegExp(`^${component}(?:/${component})*$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const digestPattern = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function decoded(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function parseRoute(hash: string): Route {
  const path = decoded(hash.replace(/^#/, ''));
  if (path === null) return { page: 'missing', hash };
  if (path === '/' || path === '') return { page: 'repositories' };
  const named = (name: string, page: Route) => (namePattern.test(name) && name.length <= 255 ? page : ({ page: 'missing', hash } as const));
  let match = /^\/r\/(.+)\/-\/tags$/.exec(path);
  if (match) return named(match[1]!, { page: 'repository', name: match[1]! });
  match = /^\/r\/(.+)\/-\/image\/([^/]+)$/.exec(path);
  if (match && (tagPattern.test(match[2]!) || digestPattern.test(match[2]!))) return named(match[1]!, { page: 'image', name: match[1]!, reference: match[2]! });
  match = /^\/r\/(.+)\/-\/history\/([^/]+)$/.exec(path);
  if (match && tagPattern.test(match[2]!)) return named(match[1]!, { page: 'history', name: match[1]!, tag: match[2]! });
  if (path === '/ops/audit') return { page: 'audit' };
  if (path === '/ops/gc') return { page: 'gc' };
  match = /^\/ops\/gc\/(\d+)$/.exec(path);
  if (match) return { page: 'gcRun', id: match[1]! };
  if (path === '/ops/mirror') return { page: 'mirror' };
  return { page: 'missing', hash };
}

/** The `rel="next"` target of a Link header. */
export function nextLink(response: Response): string | null {
  return /<([^>]+)>;\s*rel="next"/.exec(response.headers.get('link') ?? '')?.[1] ?? null;
}
