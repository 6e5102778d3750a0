import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Seconds buckets for request and storage latencies: from a cached manifest to a large blob. */
const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const queryBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** A collect hook that replaces the metric's samples with the source's at each scrape. */
function collectFrom<M extends { reset(): void }>(read: () => Promise<Sample[]>, apply: (metric: M, sample: Sample) => void) {
  return async function collect(this: M): Promise<void> {
    const samples = await read();
    this.reset();
    for (const sample of samples) apply(this, sample);
  };
}

/** What Prometheus scrapes from a registry process: one prom-client Registry per app, no global state. */
export class RegistryMetrics {
  readonly register = new Registry();
  readonly requests = new Counter({ name: 'registry_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [this.register] });
  readonly requestDuration = new Histogram({
    name: 'registry_http_request_duration_seconds',
    help: 'Time from a request to the end of its response, by route, method and status',
    labelNames: ['route', 'method', 'status'],
    buckets: latencyBuckets,
    registers: [this.register],
  });
  readonly bytesReceived = new Counter({ name: 'registry_http_request_bytes_total', help: 'Request body bytes taken in, by route', labelNames: ['route'], registers: [this.register] });
  readonly bytesSent = new Counter({ name: 'registry_http_response_bytes_total', help: 'Response body bytes sent, by route', labelNames: ['route'], registers: [this.register] });
  readonly storageDuration = new Histogram({
    name: 'registry_storage_operation_duration_seconds',
    help: 'Blob storage operations by driver and operation (for reads and writes: until the stream is open)',
    labelNames: ['driver', 'operation'],
    buckets: latencyBuckets,
    registers: [this.register],
  });
  readonly storageErrors = new Counter({ name: 'registry_storage_operation_errors_total', help: 'Blob storage operations that failed, by driver and operation', labelNames: ['driver', 'operation'], registers: [this.register] });
  readonly queryDuration = new Histogram({ name: 'registry_database_query_duration_seconds', help: 'Metadata database queries by engine', labelNames: ['engine'], buckets: queryBuckets, registers: [this.register] });
  readonly auth = new Counter({ name: 'registry_auth_total', help: 'Requests that needed credentials, by outcome: granted, unauthorized (401), denied (403)', labelNames: ['outcome'], registers: [this.register] });

  constructor(options: { processMetrics: boolean }) {
    if (options.processMetrics) collectDefaultMetrics({ register: this.register });
  }

  /** A gauge read at each scrape from a source that knows its current value (uploads, queues, the mirror). */
  gaugeFrom(name: string, help: string, labelNames: string[], read: () => Promise<Sample[]>): void {
    new Gauge({ name, help, labelNames, registers: [this.register], collect: collectFrom(read, (gauge, sample) => gauge.set(sample.labels, sample.value)) });
  }

  /** A counter whose total a source keeps (the mirror's cache counters, runs in the database), read at each scrape. */
  counterFrom(name: string, help: string, labelNames: string[], read: () => Promise<Sample[]>): void {
    new Counter({ name, help, labelNames, registers: [this.register], collect: collectFrom(read, (counter, sample) => counter.inc(sample.labels, sample.value)) });
  }

  text(): Promise<string> {
    return this.register.metrics();
  }

  get contentType(): string {
    return this.register.contentType;
  }
}
