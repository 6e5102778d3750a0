import { RegistryError } from '../oci/errors.js';
import { dockerHubHosts } from '../oci/docker-hub.js';
import type { MirrorSettings, UpstreamSettings } from './settings.js';

/** A repository of an upstream registry that a request addresses. */
export interface MirrorTarget {
  upstream: UpstreamSettings;
  /** The repository's name upstream (Docker Hub's official images under library/). */
  repository: string;
  /** How the request named it: a path prefix, the upstream's registry host as the first component, containerd's ?ns=, or a plain name for the default upstream. */
  addressedBy: 'prefix' | 'host' | 'ns' | 'default';
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
    // A name whose first component is a registry host (it holds a dot, as docker's rule for a domain
    // has it): the upstream's name or URL host, as in `docker.io/library/alpine`.
    const slash = name.indexOf('/');
    const lead = slash > 0 ? name.slice(0, slash) : '';
    if (lead.includes('.')) {
      const upstream = this.settings.upstreams.find((candidate) => candidate.name === lead || new URL(candidate.url).hostname === lead || (candidate.dockerHub && dockerHubHosts.has(lead)));
      if (upstream) {
        const repository = upstreamRepositoryName(upstream, name.slice(slash + 1));
        if (!servedBy(upstream, repository)) throw notServed(upstream, repository);
        return { upstream, repository, addressedBy: 'host' };
      }
    }
    const fallback = this.settings.defaultUpstream;
    if (fallback) {
      const repository = upstreamRepositoryName(fallback, name);
      if (servedBy(fallback, repository)) return { upstream: fallback, repository, addressedBy: 'default' };
    }
    return null;
  }
}
