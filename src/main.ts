#!/usr/bin/env node
import { ConfigError, loadConfig } from './config/load.js';
import { configSchema, isLeaf, type SchemaNode } from './config/schema.js';
import { envNameOf } from './config/load.js';
import { createLogger, startRegistry } from './server.js';

const usage = `usage: registry [serve] [--config FILE]
       registry config-keys      list every configuration key, its environment variable and default

Commands:
  serve        run the registry (default). The configuration is read from --config, REGISTRY_CONFIG,
               or config/registry.yaml when present; REGISTRY_<SECTION>_<KEY> variables override keys.`;

interface CommandLine {
  command: 'serve' | 'config-keys' | 'help';
  configFile?: string;
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
    } else {
      throw new ConfigError(`unknown argument ${JSON.stringify(arg)}\n${usage}`);
    }
  }
  return result;
}

function printConfigKeys(node: SchemaNode, keyPath: string[] = []): void {
  if (isLeaf(node)) {
    const shown = JSON.stringify(node.kind === 'duration' ? `${Number(node.defaultValue) / 1000}s` : node.defaultValue);
    process.stdout.write(`${keyPath.join('.')}  (${envNameOf(keyPath)}, default ${shown})\n    ${node.doc}\n`);
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
  const { config, source } = loadConfig(commandLine.configFile ? { file: commandLine.configFile } : {});
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

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`registry: configuration error: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`registry: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
