import { ConfigError } from './config-error.js';
import { entries, parseDuration, section, stringList } from './values.js';

/** One webhook receiver, with Distribution's keys (notifications.endpoints[]) and a signing secret. */
export interface NotificationEndpointSettings {
  name: string;
  url: string;
  /** Extra request headers, each with its values (as Distribution's http.Header). */
  headers: Record<string, string[]>;
  timeoutMs: number;
  /** Failed attempts in a row after which the endpoint is reported failing (it is still retried). */
  threshold: number;
  /** The first retry's delay; it doubles with each failure, up to maxBackoffMs. */
  backoffMs: number;
  /** Events whose target has one of these media types are not sent (ignoredmediatypes and ignore.mediatypes). */
  ignoredMediaTypes: string[];
  /** Actions not sent (ignore.actions): push, pull, delete. */
  ignoredActions: string[];
  disabled: boolean;
  /** HMAC-SHA256 key: each request carries X-Registry-Signature-256: sha256=<hex of the body>. */
  secret: string;
}

export const maxBackoffMs = 5 * 60_000;
const fields = ['name', 'url', 'headers', 'timeout', 'threshold', 'backoff', 'ignoredmediatypes', 'ignore', 'disabled', 'secret'];

/** `notifications.endpoints`, as Distribution writes them. */
export function parseNotificationEndpoints(value: unknown, where: string): NotificationEndpointSettings[] {
  const endpoints = entries(value, where, (raw, entryWhere): NotificationEndpointSettings => {
    const entry = section(raw, fields, entryWhere);
    const name = entry.name;
    if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,100}$/.test(name)) throw new ConfigError(`${entryWhere}.name: expected a name of letters, digits, '.', '_' or '-'`);
    const url = entry.url;
    if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url) || !URL.canParse(url)) throw new ConfigError(`${entryWhere}.url: expected an http:// or https:// URL`);
    const parsedUrl = new URL(url);
    if (parsedUrl.username !== '' || parsedUrl.password !== '') {
      throw new ConfigError(
        `${entryWhere}.url: credentials in the URL are never sent (and would show wherever the URL does); give them as a header instead: ` +
          `headers: {Authorization: ["Basic <base64 of user:password>"]}`,
      );
    }
    const headers: Record<string, string[]> = {};
    if (entry.headers !== undefined) {
      const given = section(entry.headers, Object.keys((entry.headers ?? {}) as object), `${entryWhere}.headers`);
      for (const [header, values] of Object.entries(given)) headers[header] = stringList(values, `${entryWhere}.headers.${header}`, { nonEmpty: true });
    }
    const threshold = entry.threshold ?? 10;
    if (typeof threshold !== 'number' || !Number.isSafeInteger(threshold) || threshold < 1) throw new ConfigError(`${entryWhere}.threshold: expected a whole number of at least 1`);
    const ignore = section(entry.ignore ?? {}, ['mediatypes', 'actions'], `${entryWhere}.ignore`);
    const ignoredActions = ignore.actions === undefined ? [] : stringList(ignore.actions, `${entryWhere}.ignore.actions`, { nonEmpty: false });
    const unknownAction = ignoredActions.find((action) => !['push', 'pull', 'delete', 'mount'].includes(action));
    if (unknownAction) throw new ConfigError(`${entryWhere}.ignore.actions: unknown action ${JSON.stringify(unknownAction)} (push, pull, delete, mount)`);
    if (entry.disabled !== undefined && typeof entry.disabled !== 'boolean') throw new ConfigError(`${entryWhere}.disabled: expected true or false`);
    if (entry.secret !== undefined && typeof entry.secret !== 'string') throw new ConfigError(`${entryWhere}.secret: expected a string`);
    return {
      name,
      url,
      headers,
      timeoutMs: entry.timeout === undefined ? 5000 : parseDuration(entry.timeout, `${entryWhere}.timeout`),
      threshold,
      backoffMs: entry.backoff === undefined ? 1000 : parseDuration(entry.backoff, `${entryWhere}.backoff`),
      ignoredMediaTypes: [
        ...(entry.ignoredmediatypes === undefined ? [] : stringList(entry.ignoredmediatypes, `${entryWhere}.ignoredmediatypes`, { nonEmpty: false })),
        ...(ignore.mediatypes === undefined ? [] : stringList(ignore.mediatypes, `${entryWhere}.ignore.mediatypes`, { nonEmpty: false })),
      ],
      ignoredActions,
      disabled: entry.disabled === true,
      secret: typeof entry.secret === 'string' ? entry.secret : '',
    };
  });
  const names = endpoints.map((endpoint) => endpoint.name);
  const repeated = names.find((name, index) => names.indexOf(name) !== index);
  if (repeated) throw new ConfigError(`${where}: two endpoints are named ${repeated}`);
  return endpoints;
}
