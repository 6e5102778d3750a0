/**
 * Every configuration key, its type, default and documentation, in one place. The YAML file mirrors
 * this tree; each leaf can be overridden by REGISTRY_<PATH> in upper case (storage.delete.enabled →
 * REGISTRY_STORAGE_DELETE_ENABLED). Keys follow Distribution's configuration where it has the concept.
 */
import { entries, formatDuration, parseDuration, section, stringList } from './values.js';
import { parseRetentionPolicies, type RetentionPolicySettings } from './retention-policies.js';
import { parseNotificationEndpoints, type NotificationEndpointSettings } from './notification-endpoints.js';

export interface Leaf<T> {
  readonly kind: 'string' | 'boolean' | 'duration' | 'enum' | 'integer' | 'size' | 'list' | 'structured';
  readonly defaultValue: T;
  readonly doc: string;
  /** A duration's default as the file writes it (`168h`). */
  readonly written?: string;
  readonly choices?: readonly string[];
  /** Further checks; returns a reason when the value is not acceptable. */
  check?(value: T): string | undefined;
  /** Reads a `structured` value (YAML, or JSON from an environment variable); throws ConfigError naming `where`. */
  parse?(value: unknown, where: string): T;
}

/**
 * Sections the file names itself, each shaped by `entry` (the mirror's upstreams by name). Keys inside
 * an entry are overridable like any other: mirror.upstreams.docker.io.password →
 * REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_PASSWORD; entries themselves come from the file only.
 */
export interface NamedSections<S extends { readonly [key: string]: SchemaNode }> {
  readonly kind: 'sections';
  readonly doc: string;
  readonly entry: S;
}

export type SchemaNode = Leaf<unknown> | NamedSections<{ readonly [key: string]: SchemaNode }> | { readonly [key: string]: SchemaNode };

const string = (defaultValue: string, doc: string, check?: (value: string) => string | undefined): Leaf<string> => ({
  kind: 'string',
  defaultValue,
  doc,
  ...(check ? { check } : {}),
});
const boolean = (defaultValue: boolean, doc: string): Leaf<boolean> => ({ kind: 'boolean', defaultValue, doc });
/** Durations are written `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds; held in milliseconds. The default is written as a file would write it. */
const duration = (written: string, doc: string): Leaf<number> => ({ kind: 'duration', defaultValue: parseDuration(written, 'default'), written, doc });
const integer = (defaultValue: number, doc: string, minimum: number, maximum: number): Leaf<number> => ({
  kind: 'integer',
  defaultValue,
  doc,
  check: (value) => (value < minimum || value > maximum ? `must be from ${minimum} to ${maximum}` : undefined),
});
/** Sizes are written as bytes (`10485760`) or with a binary unit: `512KiB`, `10MiB`, `1GiB`. */
const size = (defaultValue: number, doc: string, minimum: number): Leaf<number> => ({
  kind: 'size',
  defaultValue,
  doc,
  check: (value) => (value < minimum ? `must be at least ${minimum} bytes` : undefined),
});
/** A list of strings: a YAML sequence, or comma-separated in an environment variable. */
const list = (defaultValue: readonly string[], doc: string): Leaf<readonly string[]> => ({ kind: 'list', defaultValue, doc });
/** A value with its own shape (a list of rules): a YAML value, or JSON in an environment variable. */
const structured = <T>(defaultValue: T, doc: string, parse: (value: unknown, where: string) => T): Leaf<T> => ({ kind: 'structured', defaultValue, doc, parse });

/** Entries whose fields are all non-empty lists of strings (`[{repositories: [...], tags: [...]}]`). */
function stringListRecords<F extends string>(fields: readonly F[]) {
  return (value: unknown, where: string): Array<Readonly<Record<F, readonly string[]>>> =>
    entries(value, where, (raw, entryWhere) => {
      const record = section(raw, fields, entryWhere);
      return Object.fromEntries(fields.map((field) => [field, stringList(record[field], `${entryWhere}.${field}`, { nonEmpty: true })])) as Record<F, string[]>;
    });
}
const namedSections = <S extends { readonly [key: string]: SchemaNode }>(doc: string, entry: S): NamedSections<S> => ({
  kind: 'sections',
  doc,
  entry,
});
const mebibyte = 1024 * 1024;
const oneOf = <T extends string>(choices: readonly T[], defaultValue: T, doc: string): Leaf<T> => ({
  kind: 'enum',
  defaultValue,
  doc,
  choices,
});

export interface ListenAddress {
  host: string | undefined;
  port: number;
}

/** `:5000`, `0.0.0.0:5000`, `127.0.0.1:0`, `[::1]:5000` or `localhost:5000`. */
export function parseListenAddress(addr: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`expected host:port such as ":5000" or "127.0.0.1:5000", got ${JSON.stringify(addr)}`);
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

function listenAddressProblem(addr: string): string | undefined {
  try {
    parseListenAddress(addr);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const configSchema = {
  log: {
    level: oneOf(logLevels, 'info', 'Lowest level of log lines written (one line per request at info).'),
    formatter: oneOf(['json', 'text'] as const, 'json', 'json: one JSON object per line (level names, ISO times), for log collectors; text: one readable line per entry, for a person at a terminal.'),
    accesslog: {
      disabled: boolean(false, 'No line per request (as Distribution\'s key): requests are then logged at debug level only; errors and warnings are still written.'),
    },
  },
  http: {
    addr: string(':5000', 'Address to listen on, host:port; ":5000" listens on every interface.', listenAddressProblem),
    draintimeout: duration('30s', 'On SIGTERM, how long in-flight requests may take to finish before connections are closed.'),
    shutdowndelay: duration('0s', 'On SIGTERM, how long to go on serving with /readyz answering 503 (so load balancers take this instance out) before new connections are refused and the drain starts.'),
    tls: {
      certificate: string('', 'PEM certificate (with its chain) to serve HTTPS with; with key. Reloaded when the file changes or on SIGHUP.'),
      key: string('', 'PEM private key of the certificate.'),
      clientcas: list([], 'PEM CA certificates client certificates must be signed by (mutual TLS); empty: no client certificate asked.'),
      minimumtls: oneOf(['tls1.2', 'tls1.3'] as const, 'tls1.2', 'Lowest TLS version accepted.'),
    },
    debug: {
      addr: string('', 'Address of the debug listener (metrics), host:port, e.g. 127.0.0.1:5001; empty: none. Keep it off the public network.', (value) => (value === '' ? undefined : listenAddressProblem(value))),
      prometheus: {
        enabled: boolean(false, 'Serve Prometheus metrics on the debug listener.'),
        path: string('/metrics', 'Path of the metrics on the debug listener.', (value) => (value.startsWith('/') ? undefined : 'must start with /')),
      },
    },
    trustproxy: boolean(false, 'Behind a reverse proxy: take the client address, scheme and host from X-Forwarded-For/-Proto/-Host (logs, login throttling, the token realm).'),
    bodytimeout: duration('60s', 'A request body must bring at least http.bodyminrate bytes a second over each window of this length while the registry waits for it; a slower one is cut off (its connection closed). 0: no limit.'),
    bodyminrate: size(512, 'The slowest a request body may arrive, in bytes a second, measured over each http.bodytimeout window.', 0),
    maxconnections: integer(1000, 'Open connections at most; more are closed as they come. Keep it under the process\'s file handle limit (ulimit -n), which uploads share. 0: no limit.', 0, 1_000_000),
    maxconnectionsperaddress: integer(256, 'Open connections at most from one client address. Not applied with http.trustproxy (every connection then comes from the proxy). 0: no limit.', 0, 1_000_000),
  },
  storage: {
    filesystem: {
      rootdirectory: string('./storage', 'Directory holding blob storage (and the default SQLite database).', (value) =>
        value.trim() === '' ? 'must not be empty' : undefined,
      ),
    },
    s3: {
      bucket: string('', 'S3 bucket for blob storage. Setting it selects the S3 driver instead of the filesystem.'),
      region: string('us-east-1', 'Region of the bucket.'),
      regionendpoint: string('', 'Endpoint of an S3-compatible store (http://minio:9000); empty for AWS.'),
      forcepathstyle: boolean(false, 'Path-style addressing (endpoint/bucket/key), as most S3-compatible stores need.'),
      accesskey: string('', 'Access key id; empty uses the standard AWS chain (AWS_* env, shared files, instance role).'),
      secretkey: string('', 'Secret access key, with accesskey.'),
      rootdirectory: string('', 'Key prefix under which everything is stored; empty for the bucket root.'),
      chunksize: size(10 * mebibyte, 'Part size of multipart uploads; each buffered part is held in memory.', 5 * mebibyte),
      partconcurrency: integer(3, 'Parts of one upload held in memory (filling or being sent) at once.', 1, 64),
      maxattempts: integer(5, 'Attempts per S3 request, with exponential backoff, before a 503.', 1, 20),
    },
    redirect: {
      enabled: boolean(false, 'Answer blob GETs with 307 to a presigned URL of the storage (S3 only); HEAD stays local.'),
      expiry: duration('20m', 'Lifetime of the presigned URLs.'),
    },
    delete: {
      enabled: boolean(true, 'Whether DELETE of blobs, manifests and tags is allowed; 405 UNSUPPORTED when false.'),
    },
    maintenance: {
      uploadpurging: {
        enabled: boolean(true, 'Remove upload sessions (and their bytes) untouched for longer than age.'),
        age: duration('168h', 'How long an upload may sit untouched before it is purged.'),
        interval: duration('24h', 'How often to look for abandoned uploads (first run about a minute after start).'),
        dryrun: boolean(false, 'Only log what would be purged.'),
      },
      gc: {
        enabled: boolean(true, 'Collect garbage online now and then: blobs nothing refers to, and with untagged, manifests nothing refers to.'),
        interval: duration('24h', 'How often to collect (the first run about ten minutes after start); one replica runs at a time.'),
        grace: duration('24h', 'What was pushed, mounted or used within this window is kept (a push names its layers last).'),
        untagged: boolean(false, 'Also collect manifests with no tag that no index or subject keeps (pushing by digest is then not for keeps).'),
        dryrun: boolean(false, 'Only report what would be collected.'),
      },
    },
  },
  uploads: {
    maxperrepository: integer(1000, 'Upload sessions at most open at once in one repository (touched within the last hour); a new one past it is 429 TOOMANYREQUESTS with Retry-After. 0: no limit.', 0, 1_000_000),
    maxperaccount: integer(1000, 'Upload sessions at most open at once for one account (for anonymous clients, one address), counted the same way. 0: no limit.', 0, 1_000_000),
  },
  database: {
    url: string('', 'Metadata database: sqlite:<path> or postgres://user:password@host:port/database. Empty means sqlite:<storage.filesystem.rootdirectory>/registry.db.'),
    connecttimeout: duration('5s', 'PostgreSQL: how long to wait for a connection before the request fails with 503 (a server down or unreachable).'),
    statementtimeout: duration('60s', 'PostgreSQL: longest a statement may run; past it, and a second later should the server not answer at all (a partition), the request fails with 503. 0: no limit.'),
  },
  auth: {
    mode: oneOf(['none', 'token', 'htpasswd'] as const, 'none', 'none: open to all; token: Docker token auth (Bearer JWTs); htpasswd: HTTP Basic on every request.'),
    policy: string('', 'Access policy file (YAML): users, robots, groups and ordered rules. Empty: every signed-in account may do everything, anonymous nothing.'),
    htpasswd: {
      path: string('', 'htpasswd file of users (bcrypt entries, as htpasswd -B writes); read at start.'),
      realm: string('registry', 'Realm of the Basic challenge in htpasswd mode.'),
    },
    token: {
      realm: string('', 'Token endpoint clients are sent to; empty: /auth/token on this registry, as the request reached it.'),
      service: string('registry', 'Service name: the aud of tokens, checked on every request.'),
      issuer: string('registry-token-service', 'The iss of tokens, checked on every request (an external issuer\'s name when it signs them).'),
      builtin: boolean(true, 'Serve the built-in token service at /auth/token (false: tokens come from an external issuer only).'),
      signingkey: string('', 'PEM private key (RSA or EC P-256) the built-in service signs with; empty: generated at first start as <rootdirectory>/auth/token-signing-key.pem, mode 0600.'),
      algorithm: oneOf(['ES256', 'RS256'] as const, 'ES256', 'Algorithm of a generated signing key.'),
      expiration: duration('5m', 'Lifetime of access tokens.'),
      rootcertbundle: string('', 'PEM certificates of an external issuer (Harbor, GitLab, docker_auth): tokens signed by their keys are trusted.'),
      jwks: string('', 'JWKS file or http(s) URL of an external issuer; keys chosen by kid.'),
    },
  },
  audit: {
    instance: string('', 'This replica\'s name in audit events (which instance served a change); empty: the host name.'),
    unchanged: boolean(false, 'Record a push of the digest a tag already points at as an `unchanged` event (else no event: it is not a move).'),
    manifests: boolean(false, 'Also record manifest pushes by digest and manifest deletes by digest (tag events are always recorded).'),
    blobs: boolean(false, 'Also record blob deletes.'),
    pulls: boolean(false, 'Record pulls: counted in memory and written every pullflush as one `pulled` event per name, tag and account, with the tags\' last-pulled time.'),
    pullflush: duration('10s', 'How often counted pulls are written (audit.pulls).'),
    retention: duration('0s', 'Prune events older than this (the chain records where it was cut); 0 keeps them forever. Not shorter than timemachine.'),
    timemachine: duration('14d', 'Garbage collection keeps every manifest a tag pointed at within this window, so a restore within it always works.'),
  },
  ui: {
    enabled: boolean(true, 'Serve the web UI at /ui/ (browse repositories and tags, read images, tag history and restores, operations pages). It uses the same API and access rules as any client.'),
  },
  notifications: {
    endpoints: structured([] as NotificationEndpointSettings[], 'Webhook receivers, as Distribution writes them: [{name, url, headers, timeout, threshold, backoff, ignoredmediatypes, ignore: {mediatypes, actions}, disabled, secret}]. Events wait in the database until delivered, in order, once per endpoint.', parseNotificationEndpoints),
    retention: duration('7d', 'Undelivered notifications older than this are dropped (a receiver down for longer misses them; counted in the status).'),
    events: {
      includereferences: boolean(true, 'Accepted for Distribution compatibility; events always name their target and its references are not listed.'),
    },
  },
  retention: {
    interval: duration('0s', 'How often retention policies run (one replica at a time); 0: only from `registry retention run` and the API.'),
    policies: structured([] as RetentionPolicySettings[], 'Tag retention: [{repositories: [globs], tags: [globs], keep: {mostRecent, pushedWithin, pulledWithin, tags}, untagged: delete|keep}]. Tags the policy considers and no clause keeps are deleted; immutable tags and `latest` (unless named in tags) stay.', parseRetentionPolicies),
  },
  tags: {
    immutable: structured([], 'Immutable tags: [{repositories: [globs], tags: [globs]}]. A matching tag may be created once; moving it to another digest or deleting it (or its manifest) is refused with 403 DENIED; pushing the same digest again succeeds.', stringListRecords(['repositories', 'tags'] as const)),
  },
  proxy: {
    remoteurl: string('', "Distribution's pull-through cache: the upstream (https://registry-1.docker.io) that serves plain repository names, as an upstream of mirror.upstreams named after its host (docker.io for Docker Hub) and made mirror.default."),
    username: string('', 'Account for proxy.remoteurl; empty: anonymous.'),
    password: string('', 'Password of proxy.username (better from REGISTRY_PROXY_PASSWORD).'),
    ttl: duration('0s', 'Cached images not pulled for this long are evicted (the upstream\'s retention); 0: kept forever. Distribution expires its cache after 168h by default; this registry keeps it unless told.'),
  },
  mirror: {
    default: string('', 'Upstream (by name) that serves plain repository names that are not local, for docker\'s registry-mirrors; empty: none.'),
    instanceid: string('', 'This registry\'s name in the Via header of upstream requests (loop guard, 508); empty: the host name and a random suffix.'),
    failurethreshold: integer(3, 'Consecutive failures (unreachable, timeout, 5xx) after which an upstream is left alone for cooloff.', 1, 1000),
    cooloff: duration('30s', 'How long a failing upstream is not asked (cached content is served, uncached content fails at once).'),
    cache: {
      maxsize: size(0, 'Largest size of the mirror cache (its distinct blobs); past it, garbage collection evicts the least recently pulled images first. 0: unlimited.', 0),
    },
    upstreams: namedSections('Upstream registries this one mirrors, by name (docker.io, ghcr.io, registry.example.com).', {
      url: string('', 'Base URL of the upstream registry (https://registry-1.docker.io).'),
      prefix: string('', 'Path prefix that addresses this upstream: /v2/<prefix>/<name>/...; empty: the upstream\'s name.'),
      username: string('', 'Account for the upstream (Basic, or for its token service); empty: anonymous.'),
      password: string('', 'Password of username (better from the environment or passwordfile).'),
      passwordfile: string('', 'File holding the password (first line).'),
      token: string('', 'A bearer token to send as is, instead of username and password.'),
      tokenfile: string('', 'File holding that token (first line).'),
      ttl: duration('5m', 'How long a tag fetched from upstream is served without asking again; then one HEAD revalidates it.'),
      timeout: duration('30s', 'Time allowed for the upstream to answer with headers, and between two chunks of a body.'),
      repositories: list(['**'], 'Upstream repositories this upstream may serve (globs: library/*, team/**).'),
      allowpush: boolean(false, 'Accept pushes into this upstream\'s names as local content that takes precedence (else 405 UNSUPPORTED).'),
      retention: duration('0s', 'Cached images not pulled for this long are evicted by garbage collection (never within its grace window). 0: kept forever, as an offline site needs.'),
    }),
  },
} as const;

type ValueOf<N> =
  N extends Leaf<infer T>
    ? T
    : N extends NamedSections<infer S>
      ? Readonly<Record<string, ValueOf<S>>>
      : { readonly [K in keyof N]: ValueOf<N[K]> };

export type RegistryConfig = ValueOf<typeof configSchema>;

export function isLeaf(node: SchemaNode): node is Leaf<unknown> {
  return typeof (node as Leaf<unknown>).kind === 'string' && 'defaultValue' in node;
}

export function isNamedSections(node: SchemaNode): node is NamedSections<{ readonly [key: string]: SchemaNode }> {
  return (node as NamedSections<{ readonly [key: string]: SchemaNode }>).kind === 'sections' && 'entry' in node;
}

/** A leaf's default written as the configuration file would write it. */
export function formatDefault(leaf: Leaf<unknown>): unknown {
  const value = leaf.defaultValue;
  if (leaf.kind === 'duration') return leaf.written ?? formatDuration(Number(value));
  if (leaf.kind === 'size' && Number(value) % mebibyte === 0) return `${Number(value) / mebibyte}MiB`;
  if (leaf.kind === 'list') return (value as string[]).join(',');
  if (leaf.kind === 'structured') return JSON.stringify(value);
  return value;
}

/** Top-level keys accepted in the file for compatibility and otherwise ignored (Distribution's `version`). */
export const ignoredTopLevelKeys = new Set(['version']);

/**
 * Distribution's keys this registry accepts and ignores, as the start-up says: what they do is done
 * another way here (no upload state to sign, the database instead of a cache, /readyz instead of
 * health checks), or not at all (response headers, log hooks).
 */
export const ignoredDistributionKeys: ReadonlySet<string> = new Set([
  'http.secret',
  'http.headers',
  'http.host',
  'http.relativeurls',
  'http.http2',
  'storage.cache',
  'storage.filesystem.maxthreads',
  'redis',
  'health',
  'log.fields',
  'log.hooks',
  'validation',
  'compatibility',
]);
