import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError } from '../config/load.js';
import type { RegistryConfig } from '../config/schema.js';
import { dockerHubHosts } from '../oci/docker-hub.js';
import { globToRegExp } from '../oci/name-patterns.js';

export type UpstreamCredentials = { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string };

/** One upstream registry, as the mirror uses it. */
export interface UpstreamSettings {
  name: string;
  /** Base URL without a trailing slash: `${url}/v2/...`. */
  url: string;
  /** Path prefix addressing this upstream: /v2/<prefix>/<repository>/... */
  prefix: string;
  credentials: UpstreamCredentials | null;
  ttlMs: number;
  timeoutMs: number;
  repositories: RegExp[];
  allowPush: boolean;
  /** Docker Hub: one-part names are official images under library/. */
  dockerHub: boolean;
  /** Cached images not pulled for this long are evicted by garbage collection; 0: never. */
  retentionMs: number;
}

export interface MirrorSettings {
  upstreams: UpstreamSettings[];
  /** Serves plain names that are not local (docker's registry-mirrors). */
  defaultUpstream: UpstreamSettings | null;
  /** This registry's name in Via headers. */
  instanceId: string;
  failureThreshold: number;
  coolOffMs: number;
  /** Largest size of the cache's distinct blobs before garbage collection evicts; 0: unlimited. */
  cacheMaxBytes: number;
}


function firstLine(file: string, key: string): string {
  try {
    return (readFileSync(file, 'utf8').split(/\r?\n/)[0] ?? '').trim();
  } catch (error) {
    throw new ConfigError(`${key}: cannot read ${file}: ${(error as Error).message}`);
  }
}

function credentialsOf(name: string, upstream: RegistryConfig['mirror']['upstreams'][string]): UpstreamCredentials | null {
  const where = `mirror.upstreams.${name}`;
  const token = upstream.tokenfile !== '' ? firstLine(upstream.tokenfile, `${where}.tokenfile`) : upstream.token;
  if (token !== '') return { kind: 'bearer', token };
  if (upstream.username === '') return null;
  const password = upstream.passwordfile !== '' ? firstLine(upstream.passwordfile, `${where}.passwordfile`) : upstream.password;
  return { kind: 'basic', username: upstream.username, password };
}

/** The mirror's settings from the configuration (secret files read here); null when no upstream is configured. */
export function mirrorSettings(config: RegistryConfig): MirrorSettings | null {
  const entries = Object.entries(config.mirror.upstreams);
  if (entries.length === 0) return null;
  const upstreams = entries.map(([name, upstream]): UpstreamSettings => {
    const url = new URL(upstream.url);
    return {
      name,
      url: upstream.url.replace(/\/+$/, ''),
      prefix: upstream.prefix !== '' ? upstream.prefix : name,
      credentials: credentialsOf(name, upstream),
      ttlMs: upstream.ttl,
      timeoutMs: upstream.timeout,
      repositories: upstream.repositories.map(globToRegExp),
      allowPush: upstream.allowpush,
      dockerHub: dockerHubHosts.has(name) || dockerHubHosts.has(url.hostname),
      retentionMs: upstream.retention,
    };
  });
  const defaultUpstream = config.mirror.default === '' ? null : (upstreams.find((upstream) => upstream.name === config.mirror.default) ?? null);
  return {
    upstreams,
    defaultUpstream,
    instanceId: config.mirror.instanceid !== '' ? config.mirror.instanceid : `${hostname()}-${randomBytes(4).toString('hex')}`,
    failureThreshold: config.mirror.failurethreshold,
    coolOffMs: config.mirror.cooloff,
    cacheMaxBytes: config.mirror.cache.maxsize,
  };
}
