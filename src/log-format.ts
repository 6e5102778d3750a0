/** The fields a request line shows in its own words; the rest follow as key=value. */
const requestFields = new Set(['level', 'time', 'msg', 'service', 'method', 'path', 'query', 'status', 'bytesOut', 'bytesIn', 'durationMs', 'completed']);
const otherFields = new Set(['level', 'time', 'msg', 'service', 'err']);

function bytes(count: number): string {
  if (count < 1024) return `${count}B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)}${units[unit]}`;
}

function valueText(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value);
}

function fields(entry: Record<string, unknown>, skip: ReadonlySet<string>): string {
  return Object.entries(entry)
    .filter(([key, value]) => !skip.has(key) && value !== null && value !== undefined)
    .map(([key, value]) => `${key}=${valueText(value)}`)
    .join(' ');
}

/**
 * One log entry (pino's JSON, level as a name and time as ISO text) as one readable line, for
 * `log.formatter: text`. A request: `time LEVEL METHOD path?query status size duration key=value…`;
 * an error's stack follows on indented lines.
 */
export function textLine(entry: Record<string, unknown>): string {
  const head = `${String(entry.time ?? '')} ${String(entry.level ?? '').toUpperCase().padEnd(5)}`;
  if (entry.msg === 'request' || entry.msg === 'client went away') {
    const target = `${String(entry.method)} ${String(entry.path)}${entry.query ? `?${String(entry.query)}` : ''}`;
    const size = typeof entry.bytesOut === 'number' ? bytes(entry.bytesOut) : '-';
    const received = typeof entry.bytesIn === 'number' && entry.bytesIn > 0 ? ` in=${bytes(entry.bytesIn)}` : '';
    const gone = entry.msg === 'client went away' ? ' (client went away)' : '';
    const rest = fields(entry, requestFields);
    return `${head} ${target} ${String(entry.status)} ${size} ${String(entry.durationMs)}ms${gone}${received}${rest ? ` ${rest}` : ''}\n`;
  }
  const rest = fields(entry, otherFields);
  const error = entry.err as { type?: string; message?: string; stack?: string } | undefined;
  const errorText = error ? ` err=${valueText(`${error.type ?? 'Error'}: ${error.message ?? ''}`)}` : '';
  const stack = error?.stack ? `\n${error.stack.split('\n').slice(1).map((line) => `    ${line.trim()}`).join('\n')}` : '';
  return `${head} ${String(entry.msg ?? '')}${rest ? ` ${rest}` : ''}${errorText}${stack}\n`;
}
