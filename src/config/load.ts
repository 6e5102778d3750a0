import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { configSchema, ignoredDistributionKeys, ignoredTopLevelKeys, isLeaf, isNamedSections, type Leaf, type NamedSections, type RegistryConfig, type SchemaNode } from './schema.js';

import { ConfigError } from './config-error.js';
import { describe, parseDuration } from './values.js';
import { dockerHubHosts } from '../oci/docker-hub.js';

export { ConfigError } from './config-error.js';
export { parseDuration } from './values.js';

export const defaultConfigFile = 'config/registry.yaml';

export interface LoadConfigOptions {
  /** A file named on the command line; it must exist. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LoadedConfig {
  config: RegistryConfig;
  /** The file read, if any. */
  source: string | undefined;
  notes: ConfigNotes;
}

/** What the start-up should say about the configuration it was given. */
export interface ConfigNotes {
  /** REGISTRY_* variables that set no key (misspelt, or injected by Kubernetes for a Service named registry). */
  unknownVariables: string[];
  /** Distribution's keys (and their variables) that were given and are ignored here. */
  ignoredKeys: string[];
}

/** Variables read besides the keys' own. */
const otherVariables = new Set(['REGISTRY_CONFIG']);

/** Environment variable that overrides a key: storage.delete.enabled → REGISTRY_STORAGE_DELETE_ENABLED. */
export function envNameOf(keyPath: readonly string[]): string {
  return `REGISTRY_${keyPath.join('_').toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`;
}

/** Reads the file (REGISTRY_CONFIG, --config, or config/registry.yaml if present), applies env overrides, validates. */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const named = options.file ?? env.REGISTRY_CONFIG;
  const file = named ? path.resolve(cwd, named) : path.resolve(cwd, defaultConfigFile);
  let document: unknown = {};
  let source: string | undefined;
  if (named || existsSync(file)) {
    document = readYamlFile(file, 'configuration file') ?? {};
    source = file;
  }
  return { ...resolveWithNotes(document, env, cwd), source };
}

/** A YAML file's document; ConfigError naming `what` and the file when it cannot be read or parsed. */
export function readYamlFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read ${what} ${file}: ${(error as Error).message}`);
  }
  try {
    return parseYaml(text);
  } catch (error) {
    throw new ConfigError(`${what} ${file} is not valid YAML: ${(error as Error).message}`);
  }
}

/** Builds the configuration from a parsed document and the environment; throws ConfigError naming the key. */
export function resolveConfig(document: unknown, env: NodeJS.ProcessEnv = {}, cwd = process.cwd()): RegistryConfig {
  return resolveWithNotes(document, env, cwd).config;
}

/** Where the environment's variables went while resolving: the ones read, and Distribution's ignored keys met. */
interface Resolution {
  env: NodeJS.ProcessEnv;
  variablesRead: Set<string>;
  ignoredKeys: string[];
}

function resolveWithNotes(document: unknown, env: NodeJS.ProcessEnv, cwd: string): { config: RegistryConfig; notes: ConfigNotes } {
  const resolution: Resolution = { env, variablesRead: new Set(otherVariables), ignoredKeys: [] };
  const given = resolveNode(configSchema, document, [], resolution, true) as RegistryConfig;
  const modeGiven = env.REGISTRY_AUTH_MODE !== undefined || (document as { auth?: { mode?: unknown } } | null)?.auth?.mode !== undefined;
  const resolved = withDistributionProxy(modeGiven ? given : withDistributionAuth(given));
  const ignoredVariables = [...ignoredDistributionKeys].map((key) => envNameOf(key.split('.')));
  const unknownVariables: string[] = [];
  for (const name of Object.keys(env).filter((variable) => variable.startsWith('REGISTRY_')).sort()) {
    if (resolution.variablesRead.has(name)) continue;
    if (ignoredVariables.some((ignored) => name === ignored || name.startsWith(`${ignored}_`))) resolution.ignoredKeys.push(name);
    else unknownVariables.push(name);
  }
  return { config: checked(resolved, cwd), notes: { unknownVariables, ignoredKeys: resolution.ignoredKeys } };
}

/**
 * Distribution turns auth on by the section it finds (auth.htpasswd, auth.token); without
 * auth.mode, so does this registry: an htpasswd path means HTTP Basic, an issuer's certificates or
 * keys mean tokens from that issuer. A Distribution configuration never starts open by mistake.
 */
function withDistributionAuth(config: RegistryConfig): RegistryConfig {
  const auth = config.auth;
  if (auth.htpasswd.path !== '') return { ...config, auth: { ...auth, mode: 'htpasswd' } };
  if (auth.token.rootcertbundle !== '' || auth.token.jwks !== '') return { ...config, auth: { ...auth, mode: 'token', token: { ...auth.token, builtin: false } } };
  return config;
}

/** Docker Hub's registry host, which its clients call docker.io. */

/**
 * Distribution's pull-through cache (proxy.remoteurl, username, password, ttl) as this registry
 * has it: an upstream named after the remote's host (docker.io for Docker Hub) that serves plain
 * repository names (mirror.default).
 */
function withDistributionProxy(config: RegistryConfig): RegistryConfig {
  const proxy = config.proxy;
  if (proxy.remoteurl === '') return config;
  let host: string;
  try {
    host = new URL(proxy.remoteurl).hostname;
  } catch {
    throw new ConfigError(`proxy.remoteurl: expected the upstream's base URL such as https://registry-1.docker.io, got ${JSON.stringify(proxy.remoteurl)}`);
  }
  const name = dockerHubHosts.has(host) ? 'docker.io' : host;
  if (config.mirror.default !== '') {
    throw new ConfigError(`proxy.remoteurl and mirror.default (${JSON.stringify(config.mirror.default)}) both name the upstream of plain names: keep one`);
  }
  if (name in config.mirror.upstreams) {
    throw new ConfigError(`proxy.remoteurl: mirror.upstreams.${name} is already defined; make it mirror.default instead of setting proxy.remoteurl`);
  }
  const entry = resolveNode(
    configSchema.mirror.upstreams.entry,
    { url: proxy.remoteurl, username: proxy.username, password: proxy.password, retention: `${proxy.ttl}ms` },
    ['proxy'],
    { env: {}, variablesRead: new Set(), ignoredKeys: [] },
  ) as RegistryConfig['mirror']['upstreams'][string];
  return { ...config, mirror: { ...config.mirror, default: name, upstreams: { ...config.mirror.upstreams, [name]: entry } } };
}

function checked(config: RegistryConfig, cwd: string): RegistryConfig {
  const root = path.resolve(cwd, config.storage.filesystem.rootdirectory);
  const storage = { ...config.storage, filesystem: { rootdirectory: root } };
  const url = config.database.url === '' ? `sqlite:${path.join(root, 'registry.db')}` : config.database.url;
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(url)) {
    throw new ConfigError(`database.url: expected sqlite:<path> or postgres://…, got ${JSON.stringify(url)}`);
  }
  const s3 = config.storage.s3;
  if ((s3.accesskey === '') !== (s3.secretkey === '')) {
    throw new ConfigError('storage.s3: accesskey and secretkey go together (or leave both empty for the AWS credential chain)');
  }
  if (config.storage.redirect.enabled && s3.bucket === '') {
    throw new ConfigError('storage.redirect.enabled: redirects need a storage that presigns URLs (set storage.s3.bucket)');
  }
  const auth = config.auth;
  if (auth.mode === 'token' && !auth.token.builtin && auth.token.rootcertbundle === '' && auth.token.jwks === '') {
    throw new ConfigError('auth.token: with builtin false, tokens need an issuer to trust: set auth.token.rootcertbundle or auth.token.jwks');
  }
  if (auth.mode === 'token' && !auth.token.builtin && auth.token.realm === '') {
    throw new ConfigError('auth.token.realm: with builtin false, clients must be sent to the external token service: set its URL');
  }
  checkMirror(config.mirror);
  return { ...config, storage, database: { ...config.database, url } };
}

const prefixPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

function checkMirror(mirror: RegistryConfig['mirror']): void {
  const prefixes = new Map<string, string>();
  for (const [name, upstream] of Object.entries(mirror.upstreams)) {
    const where = `mirror.upstreams.${name}`;
    let url: URL | undefined;
    try {
      url = new URL(upstream.url);
    } catch {
      url = undefined;
    }
    if (!url || !['http:', 'https:'].includes(url.protocol)) {
      throw new ConfigError(`${where}.url: expected the upstream's base URL such as https://registry-1.docker.io, got ${JSON.stringify(upstream.url)}`);
    }
    const prefix = upstream.prefix !== '' ? upstream.prefix : name;
    if (!prefixPattern.test(prefix)) {
      throw new ConfigError(`${where}.prefix: ${JSON.stringify(prefix)} cannot start a repository name; set a prefix such as dockerhub`);
    }
    const clash = prefixes.get(prefix);
    if (clash) throw new ConfigError(`${where}.prefix: ${JSON.stringify(prefix)} is already the prefix of mirror.upstreams.${clash}`);
    prefixes.set(prefix, name);
    if (upstream.password !== '' && upstream.passwordfile !== '') {
      throw new ConfigError(`${where}: set password or passwordfile, not both`);
    }
    if ((upstream.token !== '' || upstream.tokenfile !== '') && upstream.username !== '') {
      throw new ConfigError(`${where}: set a token or a username and password, not both`);
    }
  }
  if (mirror.default !== '' && !(mirror.default in mirror.upstreams)) {
    throw new ConfigError(`mirror.default: ${JSON.stringify(mirror.default)} is not one of mirror.upstreams (${Object.keys(mirror.upstreams).join(', ') || 'none configured'})`);
  }
}

/**
 * Names of named sections that only the environment gives: REGISTRY_MIRROR_UPSTREAMS_CENTRAL_URL
 * names the upstream `central` (names from variables are lowercase; `_` stays `_`). A variable for
 * a section the file names (docker.io → DOCKER_IO) belongs to that one.
 */
function sectionNamesFromEnv(node: NamedSections<{ readonly [key: string]: SchemaNode }>, keyPath: string[], fileNames: string[], env: NodeJS.ProcessEnv): string[] {
  const prefix = `${envNameOf(keyPath)}_`;
  const suffixes = Object.keys(node.entry)
    .map((key) => `_${envNameOf([key]).slice('REGISTRY_'.length)}`)
    .sort((a, b) => b.length - a.length);
  const taken = new Set(fileNames.map((name) => envNameOf([name]).slice('REGISTRY_'.length)));
  const found = new Set<string>();
  for (const variable of Object.keys(env)) {
    if (!variable.startsWith(prefix)) continue;
    const suffix = suffixes.find((candidate) => variable.endsWith(candidate) && variable.length > prefix.length + candidate.length);
    if (!suffix) continue;
    const envName = variable.slice(prefix.length, variable.length - suffix.length);
    if (!taken.has(envName)) found.add(envName.toLowerCase());
  }
  return [...found];
}

function resolveNode(node: SchemaNode, value: unknown, keyPath: string[], resolution: Resolution, top = false): unknown {
  if (isLeaf(node)) return resolveLeaf(node, value, keyPath, resolution);
  if (isNamedSections(node)) {
    if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value))) {
      throw new ConfigError(`${keyPath.join('.')}: expected named sections (name: {keys}), got ${describe(value)}`);
    }
    const entries: Array<[string, unknown]> = Object.entries((value ?? {}) as Record<string, unknown>);
    for (const name of sectionNamesFromEnv(node, keyPath, entries.map(([name]) => name), resolution.env)) entries.push([name, {}]);
    return Object.fromEntries(entries.map(([name, entry]) => [name, resolveNode(node.entry, entry, [...keyPath, name], resolution)]));
  }
  if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value))) {
    throw new ConfigError(`${keyPath.join('.')}: expected a section of keys, got ${describe(value)}`);
  }
  const section = (value ?? {}) as Record<string, unknown>;
  for (const key of Object.keys(section)) {
    const keyName = [...keyPath, key].join('.');
    if (!(key in node) && ignoredDistributionKeys.has(keyName)) {
      resolution.ignoredKeys.push(keyName);
      continue;
    }
    if (!(key in node) && !(top && ignoredTopLevelKeys.has(key))) {
      const known = Object.keys(node).map((name) => [...keyPath, name].join('.'));
      throw new ConfigError(`${[...keyPath, key].join('.')}: unknown configuration key (known here: ${known.join(', ')})`);
    }
  }
  const result: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(node)) {
    result[key] = resolveNode(child, section[key], [...keyPath, key], resolution);
  }
  return result;
}

function resolveLeaf(leaf: Leaf<unknown>, fileValue: unknown, keyPath: string[], resolution: Resolution): unknown {
  const envName = envNameOf(keyPath);
  resolution.variablesRead.add(envName);
  const fromEnv = resolution.env[envName];
  const where = fromEnv !== undefined ? `${keyPath.join('.')} (from ${envName})` : keyPath.join('.');
  const raw = fromEnv !== undefined ? fromEnv : fileValue;
  if (raw === undefined || raw === null) return leaf.defaultValue;
  const value = coerce(leaf, raw, where);
  const problem = leaf.check?.(value);
  if (problem) throw new ConfigError(`${where}: ${problem}`);
  return value;
}

function coerce(leaf: Leaf<unknown>, raw: unknown, where: string): unknown {
  switch (leaf.kind) {
    case 'string':
      if (typeof raw === 'string') return raw;
      if (typeof raw === 'number') return String(raw);
      throw new ConfigError(`${where}: expected a string, got ${describe(raw)}`);
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new ConfigError(`${where}: expected true or false, got ${describe(raw)}`);
    case 'enum':
      if (typeof raw === 'string' && leaf.choices?.includes(raw)) return raw;
      throw new ConfigError(`${where}: expected one of ${leaf.choices?.join(', ')}, got ${describe(raw)}`);
    case 'duration':
      return parseDuration(raw, where);
    case 'integer':
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw;
      if (typeof raw === 'string' && /^-?\d+$/.test(raw.trim())) return Number(raw);
      throw new ConfigError(`${where}: expected a whole number, got ${describe(raw)}`);
    case 'size':
      return parseSize(raw, where);
    case 'list':
      if (typeof raw === 'string') return raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
      if (Array.isArray(raw) && raw.every((item) => typeof item === 'string')) return raw;
      throw new ConfigError(`${where}: expected a list of strings, got ${describe(raw)}`);
    case 'structured':
      return leaf.parse!(typeof raw === 'string' ? parseJson(raw, where) : raw, where);
  }
}

const sizeUnits: Record<string, number> = { '': 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

function parseSize(raw: unknown, where: string): number {
  if (typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return raw;
  const match = typeof raw === 'string' ? /^(\d+)\s*([KMG]iB|B)?$/i.exec(raw.trim()) : null;
  if (!match) throw new ConfigError(`${where}: expected a size such as 10MiB or 5242880, got ${describe(raw)}`);
  return Number(match[1]) * (sizeUnits[(match[2] ?? '').toLowerCase()] ?? 1);
}

function parseJson(raw: string, where: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new ConfigError(`${where}: expected JSON (a list of entries), got ${describe(raw.slice(0, 80))}`);
  }
}

