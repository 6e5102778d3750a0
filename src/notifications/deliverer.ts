import { createHmac, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import { maxBackoffMs, type NotificationEndpointSettings } from '../config/notification-endpoints.js';
import type { MetadataDb } from '../metadata/database.js';
import {
  advanceEndpoint,
  countOutboxAfter,
  ensureEndpoints,
  leaseEndpoint,
  listOutbox,
  pruneOutbox,
  readEndpoints,
  recordDeliveryFailure,
  releaseEndpoint,
  type OutboxRow,
} from '../metadata/notifications.js';
import { eventsMediaType, type NotificationEvent } from './payload.js';

/** How long a replica's hold on an endpoint lasts without renewal (a replica that died frees it after this). */
const leaseMs = 30_000;
/** How often an idle endpoint's loop looks for new rows. */
const pollMs = 250;
const batch = 50;
/** Bytes of a receiver's answer read for the failure reason; the rest is never read. */
const answerBytesRead = 2048;

export interface EndpointStatus {
  name: string;
  url: string;
  disabled: boolean;
  pending: number;
  delivered: number;
  ignored: number;
  failed: number;
  dropped: number;
  failing: boolean;
  lastSuccess: string | null;
  lastFailure: { at: string; reason: string | null } | null;
  nextAttempt: string | null;
}

/**
 * Delivers the outbox to each endpoint, in id (commit) order, one event per request in
 * Distribution's envelope. Per endpoint, one replica holds a lease and moves the endpoint's position
 * only while it holds it; a failure is retried after a backoff that doubles up to five minutes,
 * reported as failing after `threshold` failures in a row, and never skipped: events wait in the
 * database (up to notifications.retention), not in memory, and a restart resumes from the position.
 *
 * Delivery is at least once: a receiver that answered 2xx just before this process died (before the
 * position was written) gets that event again; each event's `id` is stable for deduplication.
 */
export class NotificationDeliverer {
  private readonly holder = `${hostname()}:${process.pid}:${randomUUID()}`;
  private readonly loops: Array<Promise<void>> = [];
  private readonly abort = new AbortController();

  constructor(
    private readonly metadata: MetadataDb,
    private readonly endpoints: readonly NotificationEndpointSettings[],
    private readonly retentionMs: number,
    private readonly logger: Logger,
    private readonly clock: Clock = systemClock,
  ) {}

  async start(): Promise<void> {
    await ensureEndpoints(this.metadata, this.endpoints.map((endpoint) => endpoint.name));
    for (const endpoint of this.endpoints) if (!endpoint.disabled) this.loops.push(this.loop(endpoint));
    this.loops.push(this.pruneLoop());
  }

  /** Stops after the request in flight; the endpoints' leases are released for the other replicas. */
  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.all(this.loops);
    for (const endpoint of this.endpoints) await releaseEndpoint(this.metadata, endpoint.name, this.holder).catch(() => undefined);
  }

  async status(): Promise<EndpointStatus[]> {
    const states = new Map((await readEndpoints(this.metadata)).map((state) => [state.name, state]));
    const statuses: EndpointStatus[] = [];
    for (const endpoint of this.endpoints) {
      const state = states.get(endpoint.name);
      statuses.push({
        name: endpoint.name,
        url: redactedUrl(endpoint.url),
        disabled: endpoint.disabled,
        pending: state ? await countOutboxAfter(this.metadata, state.deliveredThrough) : 0,
        delivered: state?.delivered ?? 0,
        ignored: state?.ignored ?? 0,
        failed: state?.failed ?? 0,
        dropped: state?.dropped ?? 0,
        failing: state?.failing ?? false,
        lastSuccess: state?.lastSuccessAt ? new Date(state.lastSuccessAt).toISOString() : null,
        lastFailure: state?.lastFailureAt ? { at: new Date(state.lastFailureAt).toISOString(), reason: state.lastFailure } : null,
        nextAttempt: state && state.nextAttemptAt > this.clock.now() ? new Date(state.nextAttemptAt).toISOString() : null,
      });
    }
    return statuses;
  }

  private async pause(ms: number): Promise<void> {
    await this.clock.sleep(ms, this.abort.signal);
  }

  private async loop(endpoint: NotificationEndpointSettings): Promise<void> {
    while (!this.abort.signal.aborted) {
      try {
        if (!(await this.deliverSome(endpoint))) await this.pause(pollMs);
      } catch (error) {
        this.logger.warn({ err: error, endpoint: endpoint.name }, 'notification delivery stopped by an error; retrying');
        await this.pause(1000);
      }
    }
  }

  /** One round: answers whether it did anything (else the loop waits). */
  private async deliverSome(endpoint: NotificationEndpointSettings): Promise<boolean> {
    // Reads first: an idle endpoint costs no write (on SQLite every write takes the writer lock).
    const seen = (await readEndpoints(this.metadata)).find((entry) => entry.name === endpoint.name);
    if (!seen || (await listOutbox(this.metadata, seen.deliveredThrough, 1)).length === 0) return false;
    // Long enough that a renewal a third of the way in, plus one send, ends within it.
    const lease = Math.max(leaseMs, endpoint.timeoutMs * 3);
    if (!(await leaseEndpoint(this.metadata, endpoint.name, this.holder, lease, this.clock.now()))) return false;
    let leasedAt = this.clock.now();
    // Read again under the lease: another replica may have moved it meanwhile.
    const state = (await readEndpoints(this.metadata)).find((entry) => entry.name === endpoint.name);
    if (!state) return false;
    if (state.nextAttemptAt > this.clock.now()) {
      await this.pause(Math.min(state.nextAttemptAt - this.clock.now(), 1000));
      return true;
    }
    const rows = await listOutbox(this.metadata, state.deliveredThrough, batch);
    if (rows.length === 0) return false;
    let position = state.deliveredThrough;
    let attempts = state.attempts;
    for (const row of rows) {
      if (this.abort.signal.aborted) return true;
      const event = JSON.parse(row.payload) as NotificationEvent;
      if (ignored(endpoint, event)) {
        if (!(await advanceEndpoint(this.metadata, endpoint.name, this.holder, position, row.id, 'ignored', this.clock.now()))) return true;
        position = row.id;
        continue;
      }
      // Renewed once a third of it has passed, so that a send (at most its timeout) ends within it.
      if (this.clock.now() - leasedAt > lease / 3) {
        if (!(await leaseEndpoint(this.metadata, endpoint.name, this.holder, lease, this.clock.now()))) return true;
        leasedAt = this.clock.now();
      }
      const failure = await this.send(endpoint, row);
      if (failure !== null) {
        const delay = Math.min(endpoint.backoffMs * 2 ** attempts, maxBackoffMs);
        await recordDeliveryFailure(this.metadata, endpoint.name, this.holder, { reason: failure, nextAttemptAt: this.clock.now() + delay, threshold: endpoint.threshold }, this.clock.now());
        attempts += 1;
        if (attempts === endpoint.threshold) this.logger.warn({ endpoint: endpoint.name, failures: attempts, reason: failure }, 'notification endpoint failing: events wait in the outbox');
        return true;
      }
      if (!(await advanceEndpoint(this.metadata, endpoint.name, this.holder, position, row.id, 'delivered', this.clock.now()))) return true;
      position = row.id;
      attempts = 0;
    }
    return true;
  }

  /** Sends one event; answers null when the receiver took it (2xx), else why not. */
  private async send(endpoint: NotificationEndpointSettings, row: OutboxRow): Promise<string | null> {
    const body = `{"events":[${row.payload}]}`;
    const headers = new Headers({ 'Content-Type': eventsMediaType });
    for (const [name, values] of Object.entries(endpoint.headers)) for (const value of values) headers.append(name, value);
    if (endpoint.secret !== '') headers.set('X-Registry-Signature-256', `sha256=${createHmac('sha256', endpoint.secret).update(body).digest('hex')}`);
    try {
      const response = await fetch(endpoint.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(endpoint.timeoutMs), redirect: 'manual' });
      // A receiver may answer with anything, of any size: a few KiB say why it refused, the rest is never read.
      const answer = await readStart(response, answerBytesRead);
      if (response.status >= 200 && response.status < 300) return null;
      const said = answer.replace(/\s+/g, ' ').trim().slice(0, 200);
      return redactUrlIn(`HTTP ${response.status}${said ? `: ${said}` : ''}`, endpoint.url);
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      return redactUrlIn(cause ?? (error instanceof Error ? error.message : String(error)), endpoint.url);
    }
  }

  private async pruneLoop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      await this.pause(60_000);
      if (this.abort.signal.aborted) return;
      try {
        const { dropped } = await pruneOutbox(this.metadata, this.clock.now() - this.retentionMs);
        if (dropped > 0) this.logger.warn({ dropped, retentionMs: this.retentionMs }, 'undelivered notifications older than notifications.retention dropped');
      } catch (error) {
        this.logger.warn({ err: error }, 'pruning the notification outbox failed');
      }
    }
  }
}

/** Up to `limit` bytes of a response body, as text; the body is then cancelled, its rest never read. */
async function readStart(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } catch {
    // A body that fails midway says no more than what arrived.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

/** An endpoint's URL as status and logs show it: no query string (webhook tokens often travel there). */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search ? '?[redacted]' : ''}`;
  } catch {
    return '[redacted]';
  }
}

function redactUrlIn(text: string, url: string): string {
  return text.split(url).join(redactedUrl(url));
}

function ignored(endpoint: NotificationEndpointSettings, event: NotificationEvent): boolean {
  return endpoint.ignoredActions.includes(event.action) || (event.target.mediaType !== undefined && endpoint.ignoredMediaTypes.includes(event.target.mediaType));
}
