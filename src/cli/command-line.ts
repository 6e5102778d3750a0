import { parseArgs, type ParseArgsConfig } from 'node:util';
import { eventFilterKeys } from '../audit/filters.js';

/** A mistake in how the command was called (unknown option, missing value…): exit 2 with the command's usage. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: CommandSpec | null,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;

export interface CommandSpec {
  id: CommandId;
  /** How it is typed: ['audit', 'events']. */
  words: readonly string[];
  /** What follows the words in the usage line. */
  synopsis: string;
  summary: string;
  /** Paragraphs shown by `registry <command> --help`. */
  description: string;
  options: OptionSpecs;
  /** Help text per option, by name. */
  optionHelp: Readonly<Record<string, string>>;
  positionals: { min: number; max: number };
  /** Whether the command reads the registry configuration (and so takes --config). */
  readsConfig: boolean;
}

export type CommandId =
  | 'serve'
  | 'config-keys'
  | 'metadata-rebuild'
  | 'auth-robot'
  | 'auth-hash'
  | 'accounts-create'
  | 'accounts-list'
  | 'gc'
  | 'mirror-sync'
  | 'export'
  | 'import'
  | 'retention-run'
  | 'tags-check'
  | 'audit-events'
  | 'audit-history'
  | 'audit-verify'
  | 'audit-export';

const json = { json: { type: 'boolean' } } as const;
const jsonHelp = { json: 'print the result as JSON, for scripts' };
const dryRun = { 'dry-run': { type: 'boolean' } } as const;
const dryRunHelp = { 'dry-run': 'report what would go, delete nothing' };
const auditFilters: OptionSpecs = Object.fromEntries(eventFilterKeys.map((key) => [key, { type: 'string' }]));
const auditFilterHelp: Record<string, string> = {
  repository: 'NAME: events of this repository',
  tag: 'TAG: events of this tag',
  digest: 'DIGEST: events whose from or to is this digest',
  actor: 'ACCOUNT: events by this account (robot$…, anonymous, system$gc…)',
  action: 'ACTION: created, moved, deleted, restored, collected, pushed, pulled…',
  since: 'TIME: from this RFC 3339 time on (2026-12-01T14:00:00Z)',
  until: 'TIME: before this time',
  upstream: 'NAME: events of this mirror upstream',
  source: 'local|mirror: local repositories or the mirror cache',
  target: 'tag|manifest|blob: what the event is about',
};

function command(spec: Omit<CommandSpec, 'options' | 'optionHelp' | 'positionals' | 'readsConfig'> & Partial<Pick<CommandSpec, 'options' | 'optionHelp' | 'positionals' | 'readsConfig'>>): CommandSpec {
  return { options: {}, optionHelp: {}, positionals: { min: 0, max: 0 }, readsConfig: true, ...spec };
}

export const commands: readonly CommandSpec[] = [
  command({
    id: 'serve',
    words: ['serve'],
    synopsis: '',
    summary: 'run the registry (the default command)',
    description:
      'The configuration is read from --config, REGISTRY_CONFIG, or config/registry.yaml when present; REGISTRY_<SECTION>_<KEY> variables override keys (`registry config-keys` lists them). SIGTERM or SIGINT drains and stops it; SIGHUP reads the TLS, policy and htpasswd files again.',
  }),
  command({
    id: 'config-keys',
    words: ['config-keys'],
    synopsis: '',
    summary: 'list every configuration key, its environment variable and default',
    description: 'Every key of the configuration file, the REGISTRY_* variable that overrides it, its default and what it does.',
    options: { markdown: { type: 'boolean' } },
    optionHelp: { markdown: 'as docs/configuration.md (the reference generated from the schema)' },
    readsConfig: false,
  }),
  command({
    id: 'metadata-rebuild',
    words: ['metadata', 'rebuild'],
    synopsis: '',
    summary: 'fill an empty metadata database from blob storage alone',
    description:
      'Repositories, manifests, references, blob links and tags are read back from the blob storage into an empty database (database.url). Also the way from SQLite to PostgreSQL. Exit 1 when something was skipped.',
  }),
  command({
    id: 'auth-robot',
    words: ['auth', 'robot'],
    synopsis: 'NAME',
    summary: 'create a robot account: prints its secret and the policy entry',
    description: 'The secret is printed once and kept nowhere; the policy entry holds only its bcrypt hash. The robot logs in as robot$NAME.',
    positionals: { min: 1, max: 1 },
    readsConfig: false,
  }),
  command({
    id: 'auth-hash',
    words: ['auth', 'hash'],
    synopsis: '',
    summary: 'read a password on standard input, print its bcrypt hash',
    description: 'For the password of a user in the access policy: `printf %s "$PASSWORD" | registry auth hash`.',
    readsConfig: false,
  }),
  command({
    id: 'accounts-create',
    words: ['accounts', 'create'],
    synopsis: 'NAME [--admin] --password-stdin [--json]',
    summary: 'create an account of the metadata database (the first system admin too)',
    description:
      'The password is read from standard input (its first line), as `docker login --password-stdin` reads it, and kept as a bcrypt hash. Works with the server running (it sees the account within a second) or not. Exit 1 when the name is taken or refused.',
    options: { admin: { type: 'boolean' }, 'password-stdin': { type: 'boolean' }, ...json },
    optionHelp: { admin: 'a system admin: may do everything', 'password-stdin': 'read the password from standard input (required)', ...jsonHelp },
    positionals: { min: 1, max: 1 },
  }),
  command({
    id: 'accounts-list',
    words: ['accounts', 'list'],
    synopsis: '[--json]',
    summary: 'list the accounts of the metadata database',
    description: 'Each account with whether it is a system admin and whether it is disabled; never a password.',
    options: { ...json },
    optionHelp: { ...jsonHelp },
  }),
  command({
    id: 'gc',
    words: ['gc'],
    synopsis: '[--dry-run] [--untagged] [--grace DURATION] [--json]',
    summary: 'collect garbage once',
    description:
      'Blobs nothing refers to (and with --untagged, manifests with no tag that nothing keeps), older than the grace window (storage.maintenance.gc.grace), are deleted; safe while servers serve the same stores. Exit 0 done, 1 failed, 2 another run holds the lease.',
    options: { ...dryRun, untagged: { type: 'boolean' }, grace: { type: 'string' }, ...json },
    optionHelp: { ...dryRunHelp, untagged: 'also manifests with no tag that nothing keeps', grace: 'DURATION: only what is older than this (e.g. 1h)', ...jsonHelp },
  }),
  command({
    id: 'mirror-sync',
    words: ['mirror', 'sync'],
    synopsis: '--file IMAGES.yaml [--json]',
    summary: 'cache the images of a list from their upstreams',
    description: 'name:tag, name@digest and tag patterns; all platforms or some. What is cached is skipped, so it can be rerun to resume. Exit 1 if any failed.',
    options: { file: { type: 'string' }, ...json },
    optionHelp: { file: 'IMAGES.yaml: the list of images', ...jsonHelp },
  }),
  command({
    id: 'export',
    words: ['export'],
    synopsis: '--out BUNDLE.tar [NAME:TAG|NAME@DIGEST ...] [--all-mirrored [--upstream NAME]] [--since PREVIOUS.tar] [--json]',
    summary: 'write images as an OCI image layout archive',
    description:
      'Every platform and the referrers of each image, read from this registry\'s stores; `skopeo copy oci-archive:BUNDLE.tar:NAME:TAG` reads it. Mirrored names come from the mirror cache; --all-mirrored takes the whole cache of the upstreams (or of --upstream NAME); --since PREVIOUS.tar leaves out the blobs that bundle carried.',
    options: { out: { type: 'string' }, 'all-mirrored': { type: 'boolean' }, upstream: { type: 'string' }, since: { type: 'string' }, ...json },
    optionHelp: { out: 'BUNDLE.tar: the archive to write', 'all-mirrored': 'the whole mirror cache', upstream: 'NAME: with --all-mirrored, only this upstream', since: 'PREVIOUS.tar: leave out the blobs it carried', ...jsonHelp },
    positionals: { min: 0, max: Infinity },
  }),
  command({
    id: 'import',
    words: ['import'],
    synopsis: 'BUNDLE.tar [--to http://HOST:PORT [--creds USER:PASSWORD]] [--repository NAME] [--as-local] [--json]',
    summary: 'load an OCI image layout archive into this registry',
    description:
      'Into this registry\'s stores (no server needed) or, with --to, into a running registry over HTTP. Digests are kept exactly. Mirrored images go into the mirror cache of the upstream of the same name (or, with --as-local, into local repositories named as they were exported).',
    options: { to: { type: 'string' }, creds: { type: 'string' }, repository: { type: 'string' }, 'as-local': { type: 'boolean' }, ...json },
    optionHelp: { to: 'URL: a running registry', creds: 'USER:PASSWORD: for --to', repository: 'NAME: the repository for an archive without names', 'as-local': 'mirrored images into local repositories', ...jsonHelp },
    positionals: { min: 1, max: 1 },
  }),
  command({
    id: 'retention-run',
    words: ['retention', 'run'],
    synopsis: '[--dry-run] [--json]',
    summary: 'apply the retention policies (retention.policies) once',
    description: 'Tags the policies do not keep are deleted, as the scheduled run (retention.interval) does.',
    options: { ...dryRun, ...json },
    optionHelp: { ...dryRunHelp, ...jsonHelp },
  }),
  command({
    id: 'tags-check',
    words: ['tags', 'check'],
    synopsis: 'NAME:TAG',
    summary: 'whether an immutable tag rule (tags.immutable) covers a tag: exit 0 yes, 1 no',
    description: 'Names the rule that covers it.',
    positionals: { min: 1, max: 1 },
  }),
  command({
    id: 'audit-events',
    words: ['audit', 'events'],
    synopsis: '[--repository NAME] [--tag TAG] [--digest DIGEST] [--actor ACCOUNT] [--action ACTION] [--since TIME] [--until TIME] [--upstream NAME] [--source local|mirror] [--limit N] [--json]',
    summary: 'audit events, newest first',
    description: 'Read from the metadata database; times are RFC 3339 (2026-12-01T14:00:00Z).',
    options: { ...auditFilters, limit: { type: 'string' }, ...json },
    optionHelp: { ...auditFilterHelp, limit: 'N: at most this many events', ...jsonHelp },
  }),
  command({
    id: 'audit-history',
    words: ['audit', 'history'],
    synopsis: 'NAME:TAG [--json]',
    summary: "a tag's history: each digest it pointed at, from when to when, set by whom from where",
    description: 'Mirrored names read their upstream\'s history.',
    options: { ...json },
    optionHelp: { ...jsonHelp },
    positionals: { min: 1, max: 1 },
  }),
  command({
    id: 'audit-verify',
    words: ['audit', 'verify'],
    synopsis: '[--json]',
    summary: 'walk the hash chain of the audit log',
    description: 'Exit 1 naming the first event altered, removed or inserted; prints the head, to be kept elsewhere.',
    options: { ...json },
    optionHelp: { ...jsonHelp },
  }),
  command({
    id: 'audit-export',
    words: ['audit', 'export'],
    synopsis: '[filters as for audit events] [--out FILE]',
    summary: 'the audit log as JSON lines, oldest first',
    description: 'To --out FILE or standard output.',
    options: { ...auditFilters, out: { type: 'string' } },
    optionHelp: { ...auditFilterHelp, out: 'FILE: write here instead of standard output' },
  }),
];

const commonOptions = { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } as const;

export type ParsedCommandLine =
  | { kind: 'run'; command: CommandSpec; values: Readonly<Record<string, string | boolean | undefined>>; positionals: readonly string[]; configFile: string | undefined }
  | { kind: 'help'; command: CommandSpec | null }
  | { kind: 'version' };

/** The command whose words start `args` (longest first); `serve` when the arguments start with an option or are empty. */
function findCommand(args: readonly string[]): { spec: CommandSpec; rest: string[] } | null {
  if (args.length === 0 || args[0]!.startsWith('-')) return { spec: commands[0]!, rest: [...args] };
  const byLength = [...commands].sort((a, b) => b.words.length - a.words.length);
  for (const spec of byLength) {
    if (spec.words.every((word, index) => args[index] === word)) return { spec, rest: args.slice(spec.words.length) };
  }
  return null;
}

export function parseCommandLine(args: readonly string[]): ParsedCommandLine {
  if (args[0] === '--version' || args[0] === '-V' || args[0] === 'version') return { kind: 'version' };
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) return { kind: 'help', command: null };
  if (args[0] === 'help') return { kind: 'help', command: args.length > 1 ? (findCommand(args.slice(1))?.spec ?? null) : null };
  const found = findCommand(args);
  if (!found) {
    const group = commands.filter((spec) => spec.words[0] === args[0]);
    if (group.length > 0) {
      if (args.includes('--help') || args.includes('-h')) return { kind: 'help', command: null };
      throw new UsageError(`${args[0]} needs one of: ${group.map((spec) => spec.words.slice(1).join(' ')).join(', ')}`, null);
    }
    throw new UsageError(`unknown command ${JSON.stringify(args[0])}`, null);
  }
  const { spec, rest } = found;
  const options: OptionSpecs = { ...(spec.readsConfig ? commonOptions : { help: commonOptions.help }), ...spec.options };
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...rest], options, allowPositionals: true, strict: true });
  } catch (error) {
    // node:util's messages name the option ("Unknown option '--fil'", "Option '--out <value>' argument missing").
    throw new UsageError((error as Error).message.replace(/\. To specify a positional argument.*$/s, ''), spec);
  }
  if (parsed.values.help) return { kind: 'help', command: spec };
  const { positionals } = parsed;
  if (positionals.length < spec.positionals.min || positionals.length > spec.positionals.max) {
    const expected = spec.positionals.max === 0 ? 'no arguments' : spec.synopsis.split(' ').filter((word) => !word.startsWith('[') && !word.startsWith('--'))[0] ?? 'arguments';
    throw new UsageError(
      positionals.length > spec.positionals.max ? `unexpected argument ${JSON.stringify(positionals[spec.positionals.max])}: ${spec.words.join(' ')} takes ${expected}` : `${spec.words.join(' ')} needs ${expected}`,
      spec,
    );
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === '') throw new UsageError(`--${name} needs a value`, spec);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return { kind: 'run', command: spec, values, positionals, configFile: typeof values.config === 'string' ? values.config : undefined };
}

function usageLine(spec: CommandSpec): string {
  const config = spec.readsConfig ? ' [--config FILE]' : '';
  return `registry ${spec.words.join(' ')}${spec.synopsis ? ` ${spec.synopsis}` : ''}${config}`;
}

/** `registry --help`: every command with its summary. */
export function overviewHelp(): string {
  const width = Math.max(...commands.map((spec) => spec.words.join(' ').length));
  const lines = commands.map((spec) => `  ${spec.words.join(' ').padEnd(width)}  ${spec.summary}`);
  return `usage: registry [COMMAND] [OPTIONS]\n\nCommands:\n${lines.join('\n')}\n\n\`registry COMMAND --help\` describes a command and its options; \`registry --version\` prints the version.\n`;
}

/** `registry <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const optionNames = [...Object.keys(spec.options), ...(spec.readsConfig ? ['config'] : []), 'help'];
  const help: Record<string, string> = { ...spec.optionHelp, config: 'FILE: the configuration file (default REGISTRY_CONFIG, or config/registry.yaml when present)', help: 'this text' };
  const width = Math.max(...optionNames.map((name) => name.length + 2));
  const options = optionNames.map((name) => `  ${`--${name}`.padEnd(width)}  ${help[name] ?? ''}`);
  return `usage: ${usageLine(spec)}\n\n${spec.summary[0]!.toUpperCase()}${spec.summary.slice(1)}. ${spec.description}\n\nOptions:\n${options.join('\n')}\n`;
}

/** The short form printed with a usage error. */
export function usageHint(spec: CommandSpec | null): string {
  return spec ? `usage: ${usageLine(spec)}\nRun \`registry ${spec.words.join(' ')} --help\` for more.` : 'Run `registry --help` for the commands.';
}
