import { RegistryError } from '../oci/errors.js';
import type { MirrorSettings, UpstreamSettings } from './settings.js';

/** A repository of an upstream registry that a request addresses. */
export interface MirrorTarget {
  upstream: UpstreamSettings;
  /** The repository's name upstream (Docker Hub's official images under library/). */
  repository: string;
  /** How the request named it: a path prefix, containerd's ?ns=, or a plain name for the default upstream. */
  addressedBy: 'prefix' | 'ns' | 'default';
}

/** Docker Hub's one-part names are official images: alpine → library/alpine. */
export function upstreamRepositoryName(upstream: UpstreamSettings, name: string): string {
  return upstream.dockerHub && !name.includes('/') ? `library/${name}` : name;
}

function servedBy(upstream: UpstreamSettings, repository: string): boolean {
  return upstream.repositories.some((pattern) => pattern.test(repository));
}

function notServed(upstream: UpstreamSettings, repository: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', {
    message: `upstream ${upstream.name} does not serve ${repository} (mirror.upstreams.${upstream.name}.repositories)`,
    detail: { name: repository, upstream: upstream.name },
  });
}

/**
 * Which upstream, if any, a request's repository name belongs to: `/v2/<prefix>/<name>/…`,
 * `/v2/<name>/…?ns=<upstream host>` (containerd mirrors), or a plain name matching the default
 * upstream's repositories (docker's registry-mirrors). Null: a local repository.
 */
export class MirrorAddressing {
  constructor(private readonly settings: MirrorSettings) {}

  resolve(name: string, ns: string | undefined): MirrorTarget | null {
    if (ns !== undefined && ns !== '') {
      const upstream = this.settings.upstreams.find((candidate) => candidate.name === ns || new URL(candidate.url).host === ns);
      if (upstream) {
        const repository = upstreamRepositoryName(upstream, name);
        if (!servedBy(upstream, repository)) throw notServed(upstream, repository);
        return { upstream, repository, addressedBy: 'ns' };
      }
    }
    for (const upstream of this.settings.upstreams) {
      if (!name.startsWith(`${upstream.prefix}/`)) continue;
      const repository = upstreamRepositoryName(upstream, name.slice(upstream.prefix.length + 1));
      if (!servedBy(upstream, repository)) throw notServed(upstream, repository);
      return { upstream, repository, addressedBy: 'prefix' };
    }
    const fallback = this.settings.defaultUpstream;
    if (fallback) {
      const repository = upstreamRepositoryName(fallback, name);
      if (servedBy(fallback, repository)) return { upstream: fallback, repository, addressedBy: 'default' };
    }
    return null;
  }
}
