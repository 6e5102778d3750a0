#!/usr/bin/env node
import { ConfigError, loadConfig, parseDuration } from './config/load.js';
import { gcCommand } from './cli/gc-command.js';
import { accountsCommand, readPasswordFromStdin } from './cli/accounts-command.js';
import { tagsCheckCommand } from './cli/tags-command.js';
import { retentionCommand } from './cli/retention-command.js';
import { auditCommand, type AuditSubcommand } from './cli/audit-command.js';
import { commandHelp, overviewHelp, parseCommandLine, UsageError, usageHint } from './cli/command-line.js';
import { eventFilterKeys } from './audit/filters.js';
import { readFileSync } from 'node:fs';
import { formatDefault } from './config/schema.js';
import { configurationReference, referenceEntries } from './config/reference.js';
import { ProgressBar } from './cli/progress.js';
import { exportCommand, importCommand, mirrorSyncCommand } from './cli/transfer-commands.js';
import { RegistryError } from './oci/errors.js';
import { ExportError } from './transfer/export.js';
import { ImportError } from './transfer/import.js';
import type { RegistryConfig } from './config/schema.js';
import { hashSecret, newRobot } from './auth/secrets.js';
import { rebuildMetadata, RebuildRefusedError } from './registry/rebuild.js';
import { routeProcessWarnings } from './process-warnings.js';
import { createProcessLogger, startRegistry, type RunningRegistry } from './server.js';
import { StartupError } from './listen.js';
import { openStores } from './stores.js';
import { systemClock } from './clock.js';

function printConfigKeys(): void {
  for (const entry of referenceEntries()) {
    process.stdout.write(`${entry.key}  (${entry.variable}, default ${JSON.stringify(formatDefault(entry.leaf))})\n    ${entry.leaf.doc}\n`);
  }
}

async function main(): Promise<void> {
  const commandLine = parseCommandLine(process.argv.slice(2));
  if (commandLine.kind === 'version') {
    process.stdout.write(`registry ${packageVersion()}\n`);
    return;
  }
  if (commandLine.kind === 'help') {
    process.stdout.write(commandLine.command ? commandHelp(commandLine.command) : overviewHelp());
    return;
  }
  const { command, values, positionals } = commandLine;
  const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const flag = (name: string) => values[name] === true;
  const json = flag('json');
  if (command.id === 'config-keys') {
    if (flag('markdown')) process.stdout.write(configurationReference());
    else printConfigKeys();
    return;
  }
  if (command.id === 'auth-robot') {
    const robot = newRobot(positionals[0] ?? '');
    process.stdout.write(`user name: ${robot.username}\nsecret:    ${robot.secret}\n\nadd to the access policy (the secret itself is not kept anywhere):\n${robot.policyEntry}\n`);
    return;
  }
  if (command.id === 'auth-hash') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (password === '') throw new UsageError('auth hash reads the password on standard input', command);
    process.stdout.write(`${hashSecret(password)}\n`);
    return;
  }
  const { config, source, notes } = loadConfig(commandLine.configFile ? { file: commandLine.configFile } : {});
  if (command.id !== 'serve') routeProcessWarnings((warning) => process.stderr.write(`registry: warning: ${warning.message}\n`));
  switch (command.id) {
    case 'metadata-rebuild':
      process.exitCode = await rebuildCommand(config);
      return;
    case 'mirror-sync': {
      const file = text('file');
      if (!file) throw new UsageError('mirror sync needs --file IMAGES.yaml', command);
      process.exitCode = await mirrorSyncCommand(config, file, { json });
      return;
    }
    case 'accounts-create': {
      if (!flag('password-stdin')) throw new UsageError('accounts create reads the password from standard input: pass --password-stdin', command);
      const password = await readPasswordFromStdin(process.stdin);
      process.exitCode = await accountsCommand(config, { kind: 'create', name: positionals[0] ?? '', admin: flag('admin'), password }, { json });
      return;
    }
    case 'accounts-list':
      process.exitCode = await accountsCommand(config, { kind: 'list' }, { json });
      return;
    case 'gc': {
      const grace = text('grace');
      process.exitCode = await gcCommand(config, {
        ...(flag('dry-run') ? { dryRun: true } : {}),
        ...(flag('untagged') ? { untagged: true } : {}),
        ...(grace !== undefined ? { graceMs: parseDuration(grace, '--grace') } : {}),
        json,
      });
      return;
    }
    case 'retention-run':
      process.exitCode = await retentionCommand(config, { dryRun: flag('dry-run'), json });
      return;
    case 'tags-check':
      process.exitCode = tagsCheckCommand(config, positionals[0]!);
      return;
    case 'audit-events':
    case 'audit-history':
    case 'audit-verify':
    case 'audit-export': {
      const limit = text('limit');
      if (limit !== undefined && !/^\d{1,6}$/.test(limit)) throw new UsageError('--limit needs a number of events', command);
      const filters = Object.fromEntries(eventFilterKeys.flatMap((key) => (text(key) !== undefined ? [[key, text(key)!]] : [])));
      const out = text('out');
      process.exitCode = await auditCommand(config, command.words[1] as AuditSubcommand, {
        filters,
        positional: [...positionals],
        json,
        ...(limit !== undefined ? { limit: Number(limit) } : {}),
        ...(out ? { out } : {}),
      });
      return;
    }
    case 'export': {
      const out = text('out');
      if (!out) throw new UsageError('export needs --out BUNDLE.tar', command);
      const upstream = text('upstream');
      const since = text('since');
      process.exitCode = await exportCommand(config, {
        out,
        references: [...positionals],
        allMirrored: flag('all-mirrored'),
        json,
        ...(upstream ? { upstream } : {}),
        ...(since ? { since } : {}),
        ...(source ? { configSource: source } : {}),
      });
      return;
    }
    case 'import': {
      const to = text('to');
      const creds = text('creds');
      const repository = text('repository');
      process.exitCode = await importCommand(config, positionals[0]!, {
        ...(to ? { to } : {}),
        ...(creds ? { creds } : {}),
        ...(repository ? { repository } : {}),
        asLocal: flag('as-local'),
        json,
      });
      return;
    }
    case 'serve':
      break;
  }
  const processLogger = createProcessLogger(config);
  const { logger } = processLogger;
  routeProcessWarnings((warning) => logger.warn({ warning: warning.name }, warning.message));
  logger.info({ configFile: source ?? null }, 'configuration loaded');
  if (notes.unknownVariables.length > 0) {
    logger.warn({ variables: notes.unknownVariables }, 'environment variables that set no configuration key (misspelt? `registry config-keys` lists the keys); ignored');
  }
  if (notes.ignoredKeys.length > 0) {
    logger.info({ keys: notes.ignoredKeys }, "Distribution's keys accepted and ignored here (see docs/coming-from-distribution.md)");
  }
  // pino writes asynchronously: a line still in flight (the last requests') is lost to a bare
  // process.exit. But a log reader that stopped reading must not keep the process: a second at most.
  const exitAfterLogs = (code: number) => {
    void processLogger.end(logFlushWaitMs).then(() => process.exit(code));
  };
  // The handlers are in place before the port opens: a SIGTERM that arrives while the registry is
  // still starting (a supervisor that gave up, a test that saw the listening line) waits for the
  // start to finish and then drains, instead of killing the process with its log unwritten.
  let registry: RunningRegistry | undefined;
  let stopping: NodeJS.Signals | undefined;
  const shutDown = (running: RunningRegistry) => {
    // Whatever else happens (a stuck store, a stuck log), the process ends after the drain.
    setTimeout(() => exitAfterLogs(1), config.http.shutdowndelay + config.http.draintimeout + shutdownMarginMs).unref();
    running.shutdown().then(
      () => exitAfterLogs(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        exitAfterLogs(1);
      },
    );
  };
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = signal;
    logger.info({ signal }, 'signal received');
    if (registry) shutDown(registry);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.on('SIGHUP', () => registry?.reload('SIGHUP'));
  registry = await startRegistry(config, logger);
  if (stopping) shutDown(registry);
}

/** How long the exit waits for buffered log lines. */
const logFlushWaitMs = 1000;
/** Beyond the drain timeout, what closing the stores may take before the process exits anyway. */
const shutdownMarginMs = 5000;

async function rebuildCommand(config: RegistryConfig): Promise<number> {
  const stores = await openStores(config);
  try {
    const progress = new ProgressBar('manifests');
    const summary = await rebuildMetadata({ storage: stores.storage, metadata: stores.metadata.db, clock: systemClock }, ({ done, total }) =>
      progress.update(done, total),
    );
    const adopted = summary.distribution;
    if (adopted) {
      process.stdout.write(
        `read Distribution's layout at ${adopted.prefix === '' ? 'the storage root' : `${adopted.prefix}/`}: ${adopted.repositories} repositories, ${adopted.manifests} manifests, ` +
          `${adopted.tags} tags, ${adopted.layerLinks} layer links, ${adopted.blobsCopied} blobs linked or copied to blobs/; ` +
          `Distribution's files are unchanged${adopted.uploads > 0 ? `; ${adopted.uploads} unfinished uploads left to Distribution (clients start them again)` : ''}\n`,
      );
    }
    process.stdout.write(
      `rebuilt ${stores.metadata.engine} metadata from ${stores.storageLocation}: ${summary.repositories} repositories, ` +
        `${summary.manifests} manifests, ${summary.tags} tags, ${summary.blobLinks} blob links, ${summary.skipped.length} skipped\n`,
    );
    for (const skipped of summary.skipped) {
      process.stdout.write(`  skipped ${[skipped.repository, skipped.what].filter(Boolean).join(' ')}: ${skipped.reason}\n`);
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

/** The version in package.json, which sits two levels above this file in the repository and in the image. */
function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

// `registry config-keys | head`: a reader that has gone is the end of the output, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main().catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`registry: ${error.message}\n${usageHint(error.command)}\n`);
    process.exit(2);
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`registry: configuration error: ${error.message}\n`);
    process.exit(2);
  }
  if (error instanceof StartupError || error instanceof ImportError || error instanceof ExportError || error instanceof RegistryError) {
    process.stderr.write(`registry: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`registry: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
