import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { AuditService, type TagPeriod } from '../audit/audit-service.js';
import { eventFilterKeys, eventJson, parseEventFilter } from '../audit/filters.js';
import { invalidParameter } from '../oci/errors.js';
import { ConfigError } from '../config/load.js';
import type { RegistryConfig } from '../config/schema.js';
import type { AuditEventRow } from '../metadata/audit.js';
import { openMetadataDatabase } from '../metadata/database.js';
import { MirrorAddressing } from '../mirror/addressing.js';
import { mirrorSettings } from '../mirror/settings.js';
import { validateRepositoryName, validateTag } from '../oci/names.js';
import { systemClock } from '../clock.js';

export type AuditSubcommand = 'events' | 'history' | 'verify' | 'export';

export interface AuditCommandOptions {
  /** Filters by the API's names (repository, tag, digest, actor, action, since, until, upstream, source, target). */
  filters: Record<string, string>;
  positional: string[];
  json: boolean;
  limit?: number;
  out?: string;
}

/** A digest as a table shows it: the algorithm's first 12 hex digits. */
function short(digest: string | null): string {
  if (digest === null) return '-';
  const colon = digest.indexOf(':');
  return digest.slice(colon + 1, colon + 13);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')).join('\n');
}

function eventName(event: AuditEventRow): string {
  const name = event.upstream ? `${event.upstream}/${event.repository}` : event.repository;
  return event.tag !== null ? `${name}:${event.tag}` : `${name} (${event.target})`;
}

function eventTable(events: AuditEventRow[]): string {
  const rows = [['ID', 'TIME', 'NAME', 'ACTION', 'FROM → TO', 'ACTOR', 'ADDRESS']];
  for (const event of events) {
    rows.push([String(event.id), new Date(event.at).toISOString(), eventName(event), event.action, `${short(event.from)} → ${short(event.to)}`, event.actor, event.address ?? '-']);
  }
  return table(rows);
}

function periodTable(periods: TagPeriod[]): string {
  const rows = [['DIGEST', 'FROM', 'UNTIL', 'SET BY', 'ADDRESS', 'EVENT']];
  for (const period of periods) {
    rows.push([
      period.digest,
      new Date(period.from).toISOString(),
      period.until === null ? '(current)' : new Date(period.until).toISOString(),
      `${period.setBy.actor} (${period.setBy.action})`,
      period.setBy.address ?? '-',
      String(period.setBy.event),
    ]);
  }
  return table(rows);
}

/** NAME:TAG, where NAME may be a mirrored name (the configuration's mirror addressing resolves it). */
function parseTagName(text: string | undefined, config: RegistryConfig): { repository: string; tag: string; upstream: string | null; shown: string } {
  const colon = text?.lastIndexOf(':') ?? -1;
  if (!text || colon <= text.lastIndexOf('/')) throw new ConfigError('audit history needs NAME:TAG, e.g. registry audit history team/api:prod');
  const name = validateRepositoryName(text.slice(0, colon));
  const tag = validateTag(text.slice(colon + 1));
  const settings = mirrorSettings(config);
  const target = settings ? new MirrorAddressing(settings).resolve(name, undefined) : null;
  return target ? { repository: target.repository, tag, upstream: target.upstream.name, shown: text } : { repository: name, tag, upstream: null, shown: text };
}

async function writeLines(output: Writable, lines: AsyncIterable<AuditEventRow>): Promise<number> {
  let count = 0;
  for await (const event of lines) {
    if (!output.write(`${JSON.stringify(eventJson(event))}\n`)) await once(output, 'drain');
    count += 1;
  }
  return count;
}

/**
 * `registry audit events|history|verify|export`: the audit log read from the metadata database
 * directly, with or without a server running. verify exits 1 when the chain is broken.
 */
export async function auditCommand(config: RegistryConfig, subcommand: AuditSubcommand, options: AuditCommandOptions): Promise<number> {
  for (const key of Object.keys(options.filters)) {
    if (!(eventFilterKeys as readonly string[]).includes(key)) throw invalidParameter(key, 'not a filter of audit events');
  }
  const database = await openMetadataDatabase(config.database.url);
  try {
    const audit = new AuditService(database.db, null, systemClock);
    const filter = parseEventFilter((key) => options.filters[key]);
    if (subcommand === 'events') {
      const events = await audit.events(filter, options.limit ?? 50);
      if (options.json) for (const event of events) process.stdout.write(`${JSON.stringify(eventJson(event))}\n`);
      else process.stdout.write(events.length > 0 ? `${eventTable(events)}\n` : 'no events\n');
      return 0;
    }
    if (subcommand === 'history') {
      const subject = parseTagName(options.positional[0], config);
      const periods = await audit.history(subject.repository, subject.tag, subject.upstream);
      if (options.json) process.stdout.write(`${JSON.stringify({ name: subject.shown, periods }, null, 2)}\n`);
      else process.stdout.write(periods.length > 0 ? `${subject.shown}\n${periodTable(periods)}\n` : `${subject.shown}: no history\n`);
      if (!options.json && periods.length > 0) {
        const events = await audit.events({ repository: subject.repository, tag: subject.tag, upstream: subject.upstream }, 1000);
        process.stdout.write(`\nevents\n${eventTable(events.filter((event) => event.action !== 'pulled'))}\n`);
      }
      return 0;
    }
    if (subcommand === 'verify') {
      const result = await audit.verify();
      if (options.json) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else if (result.ok) {
        const cut = result.cut ? `; pruned through event ${result.cut.id}` : '';
        process.stdout.write(`audit chain intact: ${result.events} events${result.firstId !== null ? ` (${result.firstId} to ${result.lastId})` : ''}${cut}; head ${result.head.id} ${result.head.hash}\n`);
      } else {
        process.stderr.write(`registry: audit chain broken at event ${result.problem!.event} (${result.problem!.kind}): ${result.problem!.message}\n`);
      }
      return result.ok ? 0 : 1;
    }
    const output = options.out ? createWriteStream(options.out) : process.stdout;
    const count = await writeLines(output, audit.exportEvents(filter));
    if (options.out) {
      output.end();
      await once(output, 'finish');
      process.stderr.write(`wrote ${count} events to ${options.out}\n`);
    }
    return 0;
  } finally {
    await database.close();
  }
}
