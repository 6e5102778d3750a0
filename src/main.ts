#!/usr/bin/env node
import { ConfigError, loadConfig } from './config/load.js';
import { configSchema, formatDefault, isLeaf, isNamedSections, type SchemaNode } from './config/schema.js';
import { envNameOf } from './config/load.js';
import { ProgressBar } from './cli/progress.js';
import type { RegistryConfig } from './config/schema.js';
import { hashSecret, newRobot } from './auth/secrets.js';
import { rebuildMetadata, RebuildRefusedError } from './registry/rebuild.js';
import { createLogger, startRegistry } from './server.js';
import { openStores } from './stores.js';

const usage = `usage: registry [serve] [--config FILE]
       registry metadata rebuild [--config FILE]
       registry config-keys      list every configuration key, its environment variable and default
       registry auth robot NAME  create a robot account: prints its secret and the policy entry
       registry auth hash        read a password on standard input, print its bcrypt hash

Commands:
  serve        run the registry (default). The configuration is read from --config, REGISTRY_CONFIG,
               or config/registry.yaml when present; REGISTRY_<SECTION>_<KEY> variables override keys.
  metadata rebuild
               fill an empty metadata database (database.url) from blob storage alone: repositories,
               manifests, references, blob links and tags. Also the way from SQLite to PostgreSQL.`;

interface CommandLine {
  command: 'serve' | 'config-keys' | 'metadata-rebuild' | 'auth-robot' | 'auth-hash' | 'help';
  configFile?: string;
  robotName?: string;
}

function parseCommandLine(args: string[]): CommandLine {
  const result: CommandLine = { command: 'serve' };
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
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)}\n${usage}`);
    }
  }
  return result;
}

function printConfigKeys(node: SchemaNode, keyPath: string[] = []): void {
  if (isLeaf(node)) {
    const shown = JSON.stringify(formatDefault(node));
    process.stdout.write(`${keyPath.join('.')}  (${envNameOf(keyPath)}, default ${shown})\n    ${node.doc}\n`);
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
  const logger = createLogger(config);
  logger.info({ configFile: source ?? null }, 'configuration loaded');
  const registry = await startRegistry(config, logger);
  const stop = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'signal received');
    registry.shutdown().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

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
  process.stderr.write(`registry: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
