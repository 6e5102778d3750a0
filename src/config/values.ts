import { ConfigError } from './config-error.js';

/** How a bad value is named in an error: a list, a section, or its JSON text. */
export function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object' && value !== null) return 'a section';
  return JSON.stringify(value);
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `30s`, `5m`, `1h`, `14d`, or a bare number of seconds; in milliseconds. */
export function parseDuration(raw: unknown, where: string): number {
  if (typeof raw === 'number' && Number.isFinite(raw) && raw >= 0) return raw * 1000;
  const match = typeof raw === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim()) : null;
  if (!match) throw new ConfigError(`${where}: expected a duration such as 30s, 500ms, 5m or 14d, got ${describe(raw)}`);
  return Number(match[1]) * (durationUnits[match[2] ?? 's'] ?? 1000);
}

/** Milliseconds in the largest unit that holds them exactly: 1209600000 → `14d`, 90000 → `90s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const unit = (['d', 'h', 'm', 's'] as const).find((name) => ms % (durationUnits[name] ?? 1) === 0);
  return unit ? `${ms / (durationUnits[unit] ?? 1)}${unit}` : `${ms}ms`;
}

/** A list of strings, or one string as a list of one; every item non-empty. */
export function stringList(raw: unknown, where: string, options: { nonEmpty: boolean }): string[] {
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || !list.every((item) => typeof item === 'string' && item !== '') || (options.nonEmpty && list.length === 0)) {
    throw new ConfigError(`${where}: expected a${options.nonEmpty ? ' non-empty' : ''} list of strings`);
  }
  return list as string[];
}

/** An entry of a structured list: a section whose keys are all known. */
export function section(raw: unknown, fields: readonly string[], where: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${where}: expected a section with ${fields.join(', ')}`);
  const record = raw as Record<string, unknown>;
  const unknownField = Object.keys(record).find((key) => !fields.includes(key));
  if (unknownField) throw new ConfigError(`${where}.${unknownField}: unknown field (${fields.join(', ')})`);
  return record;
}

/** A list of entries, each read by `entry` with its index in `where`. */
export function entries<T>(raw: unknown, where: string, entry: (value: unknown, where: string) => T): T[] {
  if (!Array.isArray(raw)) throw new ConfigError(`${where}: expected a list of entries, got ${describe(raw)}`);
  return raw.map((value, index) => entry(value, `${where}[${index}]`));
}
