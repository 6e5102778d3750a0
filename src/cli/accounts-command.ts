import pino from 'pino';
import type { RegistryConfig } from '../config/schema.js';
import { buildServices, registrySettings } from '../composition.js';
import type { RequestOrigin } from '../metadata/audit.js';
import { RegistryError } from '../oci/errors.js';
import { openStores } from '../stores.js';
import { systemClock } from '../clock.js';

/** Who the command line acts as in the audit log: the operator at the machine. */
const commandLine: RequestOrigin = { actor: 'system$command-line', authMethod: 'system', address: null, userAgent: null, requestId: null };

/** Reads a password from standard input, as `docker login --password-stdin` does: the first line. */
export async function readPasswordFromStdin(stdin: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

export type AccountsAction = { kind: 'create'; name: string; admin: boolean; password: string } | { kind: 'list' };

/**
 * `registry accounts create NAME [--admin] --password-stdin` and `registry accounts list [--json]`:
 * accounts of the metadata database, with the server running or not (a running one sees the change
 * within a second). The first system admin is made this way. Exit 1 with the reason when refused.
 */
export async function accountsCommand(config: RegistryConfig, action: AccountsAction, options: { json: boolean }): Promise<number> {
  const logger = pino({ level: 'warn', base: { service: 'registry' } }, pino.destination(2));
  const stores = await openStores(config, logger);
  try {
    const { services } = buildServices({ stores: { storage: stores.storage, metadata: stores.metadata.db, clock: systemClock }, logger, settings: registrySettings(config) });
    if (action.kind === 'create') {
      const created = await services.accounts.create({ name: action.name, password: action.password, admin: action.admin }, commandLine);
      process.stdout.write(options.json ? `${JSON.stringify(created)}\n` : `created ${created.admin ? 'system admin' : 'account'} ${created.name}\n`);
      return 0;
    }
    const accounts = await services.accounts.list();
    if (options.json) process.stdout.write(`${JSON.stringify({ accounts })}\n`);
    else for (const account of accounts) process.stdout.write(`${account.name}${account.admin ? '  admin' : ''}${account.disabled ? '  disabled' : ''}\n`);
    return 0;
  } catch (error) {
    if (error instanceof RegistryError) {
      process.stderr.write(`registry: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await stores.metadata.close();
    stores.closeStorage();
  }
}
