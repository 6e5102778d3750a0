import { countGcRunsByState, lastSucceededGcReport } from '../metadata/gc.js';
import { countUploads } from '../metadata/uploads.js';
import type { MirrorService } from '../mirror/mirror-service.js';
import type { NotificationDeliverer } from '../notifications/deliverer.js';
import type { MetadataDb } from '../metadata/database.js';
import type { RegistryMetrics } from './registry-metrics.js';

/** Series whose values live elsewhere (the database, the mirror, the webhook deliverer), read at each scrape. */
/** The services whose figures are read (those configured). */
export interface MeasuredServices {
  notifications: NotificationDeliverer | null;
  mirror: MirrorService | null;
}

export function registerServiceMetrics(metrics: RegistryMetrics, services: MeasuredServices, metadata: MetadataDb): void {
  metrics.gaugeFrom('registry_uploads_in_progress', 'Upload sessions started and not yet finished or cancelled (all replicas)', [], async () => {
    return [{ labels: {}, value: await countUploads(metadata) }];
  });
  metrics.counterFrom('registry_gc_runs_total', 'Garbage collection runs by outcome (all replicas, as recorded)', ['state'], async () => {
    return (await countGcRunsByState(metadata)).map((row) => ({ labels: { state: row.state }, value: row.count }));
  });
  metrics.gaugeFrom('registry_gc_last_run', 'The last finished garbage collection: freed bytes, removed blobs and manifests, duration in seconds', ['figure'], async () => {
    const last = await lastSucceededGcReport(metadata);
    if (!last) return [];
    const report = JSON.parse(last) as { bytes?: number; orphanBytes?: number; blobs?: number; manifests?: number; durationMs?: number };
    return [
      { labels: { figure: 'freed_bytes' }, value: (report.bytes ?? 0) + (report.orphanBytes ?? 0) },
      { labels: { figure: 'blobs' }, value: report.blobs ?? 0 },
      { labels: { figure: 'manifests' }, value: report.manifests ?? 0 },
      { labels: { figure: 'duration_seconds' }, value: (report.durationMs ?? 0) / 1000 },
    ];
  });
  const notifications = services.notifications;
  if (notifications) {
    metrics.gaugeFrom('registry_notifications_pending', 'Webhook events waiting in the outbox, by endpoint', ['endpoint'], async () =>
      (await notifications.status()).map((endpoint) => ({ labels: { endpoint: endpoint.name }, value: endpoint.pending })),
    );
    metrics.gaugeFrom('registry_notifications_failing', '1 while an endpoint has failed threshold times in a row', ['endpoint'], async () =>
      (await notifications.status()).map((endpoint) => ({ labels: { endpoint: endpoint.name }, value: endpoint.failing ? 1 : 0 })),
    );
  }
  const mirror = services.mirror;
  if (mirror) {
    const counters = [
      ['registry_mirror_cache_hits_total', 'cacheHits', 'Mirror requests answered from the cache'],
      ['registry_mirror_cache_misses_total', 'cacheMisses', 'Mirror requests the cache could not answer'],
      ['registry_mirror_stale_served_total', 'staleServed', 'Cached content served while the upstream could not be reached'],
      ['registry_mirror_upstream_requests_total', 'upstreamRequests', 'Requests sent to the upstream'],
      ['registry_mirror_bytes_fetched_total', 'bytesFetched', 'Bytes fetched from the upstream'],
      ['registry_mirror_bytes_served_total', 'bytesServed', 'Bytes served from the mirror'],
    ] as const;
    for (const [name, field, help] of counters) {
      metrics.counterFrom(name, `${help}, by upstream (this process)`, ['upstream'], async () => mirror.status().upstreams.map((upstream) => ({ labels: { upstream: upstream.name }, value: upstream[field] })));
    }
    metrics.gaugeFrom('registry_mirror_circuit_open', '1 while an upstream is left alone after failures', ['upstream'], async () =>
      mirror.status().upstreams.map((upstream) => ({ labels: { upstream: upstream.name }, value: upstream.circuitOpenUntil !== null ? 1 : 0 })),
    );
    metrics.gaugeFrom('registry_mirror_upstream_failures', 'Consecutive failed requests to an upstream', ['upstream'], async () =>
      mirror.status().upstreams.map((upstream) => ({ labels: { upstream: upstream.name }, value: upstream.consecutiveFailures })),
    );
  }
}
