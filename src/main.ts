#!/usr/bin/env node
import { ConfigError, loadConfig, parseDuration } from './config/load.js';
import { gcCommand } from './cli/gc-command.js';
import { tagsCheckCommand } from './cli/tags-command.js';
import { retentionCommand } from './cli/retention-command.js';
import { auditCommand, auditSubcommands, type AuditSubcommand } from './cli/audit-command.js';
import { configSchema, formatDefault, isLeaf, isNamedSections, type SchemaNode } from './config/schema.js';
import { envNameOf } from './config/load.js';
import { ProgressBar } from './cli/progress.js';
import { exportCommand, importCommand, mirrorSyncCommand } from './cli/transfer-commands.js';
import { RegistryError } from './oci/errors.js';
import { ExportError } from './transfer/export.js';
import { ImportError } from './transfer/import.js';
import type { RegistryConfig } from './config/schema.js';
import { hashSecret, newRobot } from './auth/secrets.js';
import { rebuildMetadata, RebuildRefusedError } from './registry/rebuild.js';
import { createProcessLogger, startRegistry } from './server.js';
import { openStores } from './stores.js';

const usage = `usage: registry [serve] [--config FILE]
       registry metadata rebuild [--config FILE]
       registry config-keys      list every configuration key, its environment variable and default
       registry auth robot NAME  create a robot account: prints its secret and the policy entry
       registry auth hash        read a password on standard input, print its bcrypt hash
       registry gc [--dry-run] [--untagged] [--grace DURATION] [--json]
       registry mirror sync --file IMAGES.yaml [--json]
       registry export --out BUNDLE.tar [NAME:TAG|NAME@DIGEST ...] [--all-mirrored [--upstream NAME]] [--since PREVIOUS.tar] [--json]
       registry import BUNDLE.tar [--to http://HOST:PORT [--creds USER:PASSWORD]] [--repository NAME] [--as-local] [--json]
       registry retention run [--dry-run] [--json]   apply the retention policies (retention.policies) once
       registry tags check NAME:TAG  whether an immutable tag rule (tags.immutable) covers the tag: exit 0 yes, 1 no
       registry audit events [--repository NAME] [--tag TAG] [--digest DIGEST] [--actor ACCOUNT] [--action ACTION]
                             [--since TIME] [--until TIME] [--upstream NAME] [--source local|mirror] [--limit N] [--json]
       registry audit history NAME:TAG [--json]
       registry audit verify [--json]
       registry audit export [filters as for events] [--out FILE]

Commands:
  serve        run the registry (default). The configuration is read from --config, REGISTRY_CONFIG,
               or config/registry.yaml when present; REGISTRY_<SECTION>_<KEY> variables override keys.
  metadata rebuild
               fill an empty metadata database (database.url) from blob storage alone: repositories,
               manifests, references, blob links and tags. Also the way from SQLite to PostgreSQL.
  gc           collect garbage once: blobs nothing refers to (and with --untagged, manifests with no
               tag that nothing keeps), older than the grace window (storage.maintenance.gc.grace),
               safe while servers serve the same stores. Exit 0 done, 1 failed, 2 another run holds the lease.
  mirror sync  cache the images of a list (name:tag, name@digest, tag patterns; all platforms or some)
               from their upstreams; skips what is cached, so it can be rerun to resume. Exit 1 if any failed.
  export       write images (every platform, and their referrers) from this registry's stores as an
               OCI image layout archive: skopeo copy oci-archive:BUNDLE.tar:NAME:TAG reads it. Mirrored
               names come from the mirror cache; --all-mirrored takes the whole cache of the upstreams
               (or of --upstream NAME); --since PREVIOUS.tar leaves out the blobs that bundle carried.
  import       load such an archive (or one skopeo wrote) into this registry's stores, no server
               needed, or with --to into a running registry over HTTP. Digests are kept exactly.
               Mirrored images go into the mirror cache of the upstream of the same name (or, with
               --as-local, into local repositories named as they were exported).
  audit        the audit log, read from the metadata database: events newest first (times are RFC 3339,
               e.g. 2026-12-01T14:00:00Z), a tag's history (each digest it pointed at, from when to when,
               set by whom from where), verify (walks the hash chain; exit 1 naming the first event
               altered, removed or inserted), export (JSON lines, oldest first, to --out or standard output).
  --json       print the summary as JSON, for scripts (sync, export, import, gc, audit).`;

interface CommandLine {
  command: 'serve' | 'config-keys' | 'metadata-rebuild' | 'auth-robot' | 'auth-hash' | 'mirror-sync' | 'export' | 'import' | 'gc' | 'audit' | 'tags-check' | 'retention-run' | 'help';
  auditSubcommand?: AuditSubcommand;
  configFile?: string;
  robotName?: string;
  /** Options with a value (--file, --out, --to, --creds, --repository…), flags, and plain arguments. */
  options: Record<string, string>;
  flags: Set<string>;
  positional: string[];
}

const valueOptions = new Set(['--file', '--out', '--to', '--creds', '--repository', '--upstream', '--since', '--grace', '--tag', '--digest', '--actor', '--action', '--until', '--source', '--target', '--limit']);
const flagOptions = new Set(['--json', '--as-local', '--all-mirrored', '--dry-run', '--untagged']);

function parseCommandLine(args: string[]): CommandLine {
  const result: CommandLine = { command: 'serve', options: {}, flags: new Set(), positional: [] };
  for (let index = 0; index < args.length; index++) {
    const arg = args[index] ?? '';
    if (arg === '--config' || arg === '-c') {
      const file = args[++index];
      if (!file) throw new ConfigError('--config needs a file name');
      result.configFile = file;
    } else if (arg.startsWith('--config=')) {
      result.configFile = arg.slice('--config='.length);
    } else if (arg === '--help' || arg === '-h' || arg === 'help') {
      result.command = 'help';
    } else if (arg === 'serve' || arg === 'config-keys') {
      result.command = arg;
    } else if (arg === 'auth' && args[index + 1] === 'robot') {
      result.command = 'auth-robot';
      result.robotName = args[index + 2];
      if (!result.robotName) throw new ConfigError('auth robot needs a name');
      index += 2;
    } else if (arg === 'auth' && args[index + 1] === 'hash') {
      result.command = 'auth-hash';
      index++;
    } else if (arg === 'metadata' && args[index + 1] === 'rebuild') {
      result.command = 'metadata-rebuild';
      index++;
    } else if (arg === 'mirror' && args[index + 1] === 'sync') {
      result.command = 'mirror-sync';
      index++;
    } else if (arg === 'retention' && args[index + 1] === 'run' && result.command === 'serve') {
      result.command = 'retention-run';
      index++;
    } else if (arg === 'tags' && args[index + 1] === 'check' && result.command === 'serve') {
      result.command = 'tags-check';
      index++;
    } else if (arg === 'audit' && result.command === 'serve') {
      const subcommand = args[++index];
      if (!auditSubcommands.includes(subcommand as AuditSubcommand)) throw new ConfigError(`audit needs one of ${auditSubcommands.join(', ')}\n${usage}`);
      result.command = 'audit';
      result.auditSubcommand = subcommand as AuditSubcommand;
    } else if ((arg === 'export' || arg === 'import' || arg === 'gc') && result.command === 'serve') {
      result.command = arg;
    } else if (valueOptions.has(arg.split('=')[0] ?? '') && result.command !== 'serve') {
      const [name = '', inline] = arg.split(/=(.*)/s);
      const value = inline ?? args[++index];
      if (value === undefined || value === '') throw new ConfigError(`${name} needs a value`);
      result.options[name.slice(2)] = value;
    } else if (flagOptions.has(arg) && result.command !== 'serve') {
      result.flags.add(arg.slice(2));
    } else if (['export', 'import', 'audit', 'tags-check'].includes(result.command) && !arg.startsWith('-')) {
      result.positional.push(arg);
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)}\n${usage}`);
    }
  }
  return result;
}

function printConfigKeys(node: SchemaNode, keyPath: string[] = []): void {
  if (isLeaf(node)) {
    const shown = JSON.stringify(formatDefault(node));
    const envName = envNameOf(keyPath).replace('__NAME__', '_<NAME>_');
    process.stdout.write(`${keyPath.join('.')}  (${envName}, default ${shown})\n    ${node.doc}\n`);
    return;
  }
  if (isNamedSections(node)) {
    process.stdout.write(`${keyPath.join('.')}.<name>\n    ${node.doc}\n`);
    printConfigKeys(node.entry, [...keyPath, '<name>']);
    return;
  }
  for (const [key, child] of Object.entries(node)) printConfigKeys(child, [...keyPath, key]);
}

async function main(): Promise<void> {
  const commandLine = parseCommandLine(process.argv.slice(2));
  if (commandLine.command === 'help') {
    process.stdout.write(`${usage}\n`);
    return;
  }
  if (commandLine.command === 'config-keys') {
    printConfigKeys(configSchema);
    return;
  }
  if (commandLine.command === 'auth-robot') {
    const robot = newRobot(commandLine.robotName ?? '');
    process.stdout.write(`user name: ${robot.username}\nsecret:    ${robot.secret}\n\nadd to the access policy (the secret itself is not kept anywhere):\n${robot.policyEntry}\n`);
    return;
  }
  if (commandLine.command === 'auth-hash') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (password === '') throw new ConfigError('auth hash reads the password on standard input');
    process.stdout.write(`${hashSecret(password)}\n`);
    return;
  }
  const { config, source } = loadConfig(commandLine.configFile ? { file: commandLine.configFile } : {});
  if (commandLine.command === 'metadata-rebuild') {
    process.exitCode = await rebuildCommand(config);
    return;
  }
  if (commandLine.command === 'mirror-sync') {
    const file = commandLine.options.file;
    if (!file) throw new ConfigError('mirror sync needs --file IMAGES.yaml');
    process.exitCode = await mirrorSyncCommand(config, file, { json: commandLine.flags.has('json') });
    return;
  }
  if (commandLine.command === 'gc') {
    const grace = commandLine.options.grace;
    process.exitCode = await gcCommand(config, {
      ...(commandLine.flags.has('dry-run') ? { dryRun: true } : {}),
      ...(commandLine.flags.has('untagged') ? { untagged: true } : {}),
      ...(grace !== undefined ? { graceMs: parseDuration(grace, '--grace') } : {}),
      json: commandLine.flags.has('json'),
    });
    return;
  }
  if (commandLine.command === 'retention-run') {
    process.exitCode = await retentionCommand(config, { dryRun: commandLine.flags.has('dry-run'), json: commandLine.flags.has('json') });
    return;
  }
  if (commandLine.command === 'tags-check') {
    if (commandLine.positional.length !== 1) throw new ConfigError('tags check needs one NAME:TAG');
    process.exitCode = tagsCheckCommand(config, commandLine.positional[0]);
    return;
  }
  if (commandLine.command === 'audit') {
    const { out, limit, ...filters } = commandLine.options;
    if (limit !== undefined && !/^\d{1,6}$/.test(limit)) throw new ConfigError('--limit needs a number of events');
    process.exitCode = await auditCommand(config, commandLine.auditSubcommand ?? 'events', {
      filters,
      positional: commandLine.positional,
      json: commandLine.flags.has('json'),
      ...(limit !== undefined ? { limit: Number(limit) } : {}),
      ...(out ? { out } : {}),
    });
    return;
  }
  if (commandLine.command === 'export') {
    const out = commandLine.options.out;
    if (!out) throw new ConfigError('export needs --out BUNDLE.tar');
    const { upstream, since } = commandLine.options;
    process.exitCode = await exportCommand(config, {
      out,
      references: commandLine.positional,
      allMirrored: commandLine.flags.has('all-mirrored'),
      json: commandLine.flags.has('json'),
      ...(upstream ? { upstream } : {}),
      ...(since ? { since } : {}),
      ...(source ? { configSource: source } : {}),
    });
    return;
  }
  if (commandLine.command === 'import') {
    const [file, ...rest] = commandLine.positional;
    if (!file || rest.length > 0) throw new ConfigError('import needs one archive: registry import BUNDLE.tar');
    const { to, creds, repository } = commandLine.options;
    process.exitCode = await importCommand(config, file, {
      ...(to ? { to } : {}),
      ...(creds ? { creds } : {}),
      ...(repository ? { repository } : {}),
      asLocal: commandLine.flags.has('as-local'),
      json: commandLine.flags.has('json'),
    });
    return;
  }
  const processLogger = createProcessLogger(config);
  const { logger } = processLogger;
  logger.info({ configFile: source ?? null }, 'configuration loaded');
  const registry = await startRegistry(config, logger);
  // pino writes asynchronously: a line still in flight (the last requests') is lost to a bare
  // process.exit. But a log reader that stopped reading must not keep the process: a second at most.
  const exitAfterLogs = (code: number) => {
    void processLogger.end(logFlushWaitMs).then(() => process.exit(code));
  };
  const stop = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'signal received');
    // Whatever else happens (a stuck store, a stuck log), the process ends after the drain.
    setTimeout(() => exitAfterLogs(1), config.http.shutdowndelay + config.http.draintimeout + shutdownMarginMs).unref();
    registry.shutdown().then(
      () => exitAfterLogs(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        exitAfterLogs(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.on('SIGHUP', () => registry.reload('SIGHUP'));
  process.once('SIGINT', stop);
}

/** How long the exit waits for buffered log lines. */
const logFlushWaitMs = 1000;
/** Beyond the drain timeout, what closing the stores may take before the process exits anyway. */
const shutdownMarginMs = 5000;

async function rebuildCommand(config: RegistryConfig): Promise<number> {
  const stores = await openStores(config);
  try {
    const progress = new ProgressBar('manifests');
    const summary = await rebuildMetadata({ storage: stores.storage, metadata: stores.metadata.db }, ({ done, total }) =>
      progress.update(done, total),
    );
    process.stdout.write(
      `rebuilt ${stores.metadata.engine} metadata from ${stores.storageLocation}: ${summary.repositories} repositories, ` +
        `${summary.manifests} manifests, ${summary.tags} tags, ${summary.blobLinks} blob links, ${summary.skipped.length} skipped\n`,
    );
    for (const skipped of summary.skipped) {
      process.stdout.write(`  skipped ${skipped.repository} ${skipped.what}: ${skipped.reason}\n`);
    }
    return summary.skipped.length === 0 ? 0 : 1;
  } catch (error) {
    if (!(error instanceof RebuildRefusedError)) throw error;
    process.stderr.write(`registry: ${error.message}\n`);
    return 1;
  } finally {
    await stores.metadata.close();
    stores.closeStorage();
  }
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`registry: configuration error: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof ImportError || error instanceof ExportError || error instanceof RegistryError) {
    process.stderr.write(`registry: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`registry: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
