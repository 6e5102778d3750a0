import { envNameOf } from './load.js';
import { configSchema, formatDefault, isLeaf, isNamedSections, type Leaf, type SchemaNode } from './schema.js';

/** One key of the configuration as the reference lists it. */
export interface ReferenceEntry {
  key: string;
  variable: string;
  /** The default as the file writes it ('' when empty). */
  written: string;
  leaf: Leaf<unknown>;
}

/** Every key of the schema in its order, named sections' keys as `<name>`. */
export function referenceEntries(node: SchemaNode = configSchema, keyPath: string[] = []): ReferenceEntry[] {
  if (isLeaf(node)) {
    const value = formatDefault(node);
    const written = typeof value === 'string' ? value : JSON.stringify(value);
    return [{ key: keyPath.join('.'), variable: envNameOf(keyPath).replace('__NAME__', '_<NAME>_'), written, leaf: node }];
  }
  if (isNamedSections(node)) return referenceEntries(node.entry, [...keyPath, '<name>']);
  return Object.entries(node).flatMap(([key, child]) => referenceEntries(child, [...keyPath, key]));
}

/** How the environment variable of a key is written, when not as a plain value. */
function variableForm(leaf: Leaf<unknown>): string {
  if (leaf.kind === 'structured') return ' (JSON)';
  if (leaf.kind === 'list') return ' (comma-separated)';
  return '';
}

function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

const sectionDocs: Record<keyof typeof configSchema, string> = {
  log: 'What is logged and how (see [deployment](deployment.md#logs)).',
  http: 'The listener: address, TLS, draining, limits on connections and slow bodies, the debug listener.',
  storage: 'Where blobs live (the filesystem or S3), deletes, upload purging and garbage collection.',
  uploads: 'How many upload sessions may be open at once.',
  database: 'The metadata database: SQLite (embedded, the default) or PostgreSQL (several replicas).',
  auth: 'Who may do what (see [auth.md](auth.md)).',
  audit: 'The tag audit log (see [operations](operations.md#audit-who-moved-which-tag-when-and-putting-it-back)).',
  ui: 'The web UI at `/ui/`.',
  notifications: 'Webhooks (see [operations](operations.md#webhooks-notifications)).',
  retention: 'Retention policies (see [operations](operations.md#retention-policies)).',
  tags: 'Immutable tags (see [operations](operations.md#immutable-tags)).',
  proxy: "Distribution's pull-through cache keys, read as one upstream of `mirror` (see [mirror.md](mirror.md)).",
  mirror: 'The pull-through mirror: upstreams, addressing, the circuit breaker, the cache (see [mirror.md](mirror.md)).',
};

/**
 * docs/configuration.md, generated from the schema (`npm run docs:config`, or `registry config-keys
 * --markdown`): a unit test fails when the file in the repository differs from it.
 */
export function configurationReference(): string {
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`; do not edit by hand. -->',
    '',
    'One YAML file: `config/registry.yaml` by default (read from the working directory when present),',
    'another with `--config FILE` or `REGISTRY_CONFIG=FILE`. Every key can be overridden by an',
    'environment variable `REGISTRY_<SECTION>_<KEY>`. Keys follow CNCF Distribution\'s configuration where',
    'it has the concept, so its users can bring their settings along (see',
    '[coming from Distribution](coming-from-distribution.md)). Unknown keys and bad values stop the start',
    'with the key named, e.g. `registry: configuration error: storage.delete.enabled (from',
    'REGISTRY_STORAGE_DELETE_ENABLED): expected true or false, got "maybe"`.',
    '',
    'Durations are written `250ms`, `30s`, `5m`, `24h`, `14d` or as a number of seconds; sizes as bytes or',
    'with `KiB`, `MiB`, `GiB`. Lists are YAML sequences, comma-separated in an environment variable;',
    'structured values (endpoints, policies, rules) are YAML, JSON in an environment variable.',
    '',
    'Upstreams are named sections: each key of one the file names can be overridden from the',
    'environment, the name in capitals with anything but letters and digits as `_`',
    '(`mirror.upstreams.docker.io.password` → `REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_PASSWORD`), and an',
    'upstream can be defined by variables alone, so a container needs no file:',
    '`REGISTRY_MIRROR_UPSTREAMS_CENTRAL_URL=https://registry.example.com` defines the upstream `central`',
    '(names from variables are lowercase, `_` stays `_`).',
    '',
    'At start, every `REGISTRY_*` variable that sets no key is named in one warning line (a misspelt',
    'one, or `REGISTRY_PORT` and `REGISTRY_SERVICE_HOST`, which Kubernetes injects for a Service named',
    '`registry`); they are ignored, not refused. `registry config-keys` prints this list on a terminal.',
  ];
  const entries = referenceEntries();
  for (const section of Object.keys(configSchema)) {
    lines.push('', `## ${section}`, '');
    lines.push(sectionDocs[section as keyof typeof configSchema], '');
    lines.push('| key | environment variable | default | meaning |', '|---|---|---|---|');
    for (const entry of entries.filter((candidate) => candidate.key.split('.')[0] === section)) {
      const written = entry.written === '' ? 'empty' : `\`${cell(entry.written)}\``;
      lines.push(`| \`${entry.key}\` | \`${entry.variable}\`${variableForm(entry.leaf)} | ${written} | ${cell(entry.leaf.doc)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}
