import type { UpstreamRepository } from '../metadata/mirror.js';
import { RegistryError } from '../oci/errors.js';
import type { MirrorTarget } from './addressing.js';
import type { MirrorSettings, UpstreamSettings } from './settings.js';
import { UpstreamClient, UpstreamUnavailableError, type UpstreamBody, type UpstreamReply } from './upstream-client.js';
import { UpstreamHealth, type UpstreamStatus } from './upstream-health.js';
import type { Clock } from '../clock.js';

export function upstreamRepository(target: MirrorTarget): UpstreamRepository {
  return { upstream: target.upstream.name, repository: target.repository };
}

/**
 * Every upstream's client and health (circuit breaker and counters): what the manifest, referrer,
 * tag and blob parts of the mirror share. An upstream that cannot answer becomes 503 UNAVAILABLE
 * naming it.
 */
export class Upstreams {
  private readonly clients = new Map<string, UpstreamClient>();

  constructor(
    private readonly settings: MirrorSettings,
    readonly clock: Clock,
  ) {
    for (const upstream of settings.upstreams) {
      const health = new UpstreamHealth(settings.failureThreshold, settings.coolOffMs, clock);
      this.clients.set(upstream.name, new UpstreamClient(upstream, health, settings.instanceId, clock));
    }
  }

  private client(upstream: UpstreamSettings): UpstreamClient {
    const client = this.clients.get(upstream.name);
    if (!client) throw new Error(`no client for upstream ${upstream.name}`);
    return client;
  }

  health(target: MirrorTarget): UpstreamHealth {
    return this.client(target.upstream).health;
  }

  status(): UpstreamStatus[] {
    return this.settings.upstreams.map((upstream) => this.client(upstream).health.status(upstream.name, upstream.url));
  }

  /** One request upstream. */
  async ask(target: MirrorTarget, method: 'GET' | 'HEAD', path: string, via: string | undefined, accept?: string): Promise<UpstreamReply> {
    try {
      return await this.client(target.upstream).request(method, path, { repository: target.repository, via, ...(accept ? { accept } : {}) });
    } catch (error) {
      if (error instanceof UpstreamUnavailableError) throw this.unavailable(target, error.reason, error.retryAfterMs);
      throw error;
    }
  }

  unavailable(target: MirrorTarget, reason: string, retryAfterMs: number | null = null): RegistryError {
    return new RegistryError('UNAVAILABLE', {
      message: `upstream ${target.upstream.name} (${target.upstream.url}) cannot serve ${target.repository}: ${reason}`,
      detail: { upstream: target.upstream.name, repository: target.repository },
      ...(retryAfterMs !== null ? { headers: { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) } } : {}),
    });
  }
}

/** The body whole, or null when it is longer than `limit`. */
export async function readLimited(body: UpstreamBody, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > limit) {
      body.discard();
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
