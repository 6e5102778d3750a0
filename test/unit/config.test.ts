import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, envNameOf, loadConfig, resolveConfig } from '../../src/config/load.js';
import { parseListenAddress } from '../../src/config/schema.js';
import { auditSettings } from '../../src/audit/settings.js';

const cwd = '/srv/registry';

describe('configuration', () => {
  it('has the documented defaults', () => {
    const config = resolveConfig({}, {}, cwd);
    assert.equal(config.http.addr, ':5000');
    assert.equal(config.storage.filesystem.rootdirectory, '/srv/registry/storage');
    assert.equal(config.database.url, 'sqlite:/srv/registry/storage/registry.db');
    assert.equal(config.storage.delete.enabled, true);
    assert.equal(config.log.level, 'info');
    assert.equal(config.http.draintimeout, 30_000);
    assert.deepEqual(config.storage.maintenance.uploadpurging, { enabled: true, age: 168 * 3_600_000, interval: 24 * 3_600_000, dryrun: false });
  });

  it('reads the file and lets REGISTRY_<SECTION>_<KEY> override it', () => {
    const document = { http: { addr: '127.0.0.1:6000' }, storage: { delete: { enabled: true } }, version: 0.1 };
    const env = {
      REGISTRY_STORAGE_DELETE_ENABLED: 'false',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/data',
      REGISTRY_LOG_LEVEL: 'debug',
      REGISTRY_HTTP_DRAINTIMEOUT: '2m',
      REGISTRY_DATABASE_URL: 'sqlite:/db/meta.db',
    };
    const config = resolveConfig(document, env, cwd);
    assert.equal(config.http.addr, '127.0.0.1:6000');
    assert.equal(config.storage.delete.enabled, false);
    assert.equal(config.storage.filesystem.rootdirectory, '/data');
    assert.equal(config.log.level, 'debug');
    assert.equal(config.http.draintimeout, 120_000);
    assert.equal(config.database.url, 'sqlite:/db/meta.db');
    assert.equal(envNameOf(['storage', 'filesystem', 'rootdirectory']), 'REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY');
  });

  const rejected: Array<[string, unknown, Record<string, string>, RegExp]> = [
    ['unknown key', { http: { adr: ':5000' } }, {}, /^http\.adr: unknown configuration key/],
    ['unknown section', { storag: {} }, {}, /^storag: unknown configuration key/],
    ['bad boolean from env', {}, { REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' }, /storage\.delete\.enabled \(from REGISTRY_STORAGE_DELETE_ENABLED\): expected true or false/],
    ['bad address', { http: { addr: 'localhost' } }, {}, /^http\.addr: expected host:port/],
    ['bad port', { http: { addr: ':70000' } }, {}, /^http\.addr: /],
    ['bad level', { log: { level: 'loud' } }, {}, /^log\.level: expected one of/],
    ['bad duration', { http: { draintimeout: 'soon' } }, {}, /^http\.draintimeout: expected a duration/],
    ['section given a value', { storage: 'fs' }, {}, /^storage: expected a section/],
    ['bad database url', { database: { url: 'mysql://x' } }, {}, /^database\.url: expected sqlite/],
    ['empty root', { storage: { filesystem: { rootdirectory: ' ' } } }, {}, /^storage\.filesystem\.rootdirectory: must not be empty/],
    ['part size under the S3 minimum', { storage: { s3: { chunksize: '4MiB' } } }, {}, /^storage\.s3\.chunksize: must be at least 5242880 bytes/],
    ['size without a number', {}, { REGISTRY_STORAGE_S3_CHUNKSIZE: 'big' }, /storage\.s3\.chunksize \(from REGISTRY_STORAGE_S3_CHUNKSIZE\): expected a size/],
    ['fractional integer', { storage: { s3: { partconcurrency: 2.5 } } }, {}, /^storage\.s3\.partconcurrency: expected a whole number/],
    ['integer out of range', {}, { REGISTRY_STORAGE_S3_MAXATTEMPTS: '0' }, /storage\.s3\.maxattempts \(from REGISTRY_STORAGE_S3_MAXATTEMPTS\): must be from 1 to 20/],
    ['access key without secret', { storage: { s3: { bucket: 'b', accesskey: 'AKIA' } } }, {}, /^storage\.s3: accesskey and secretkey go together/],
    ['redirect without S3', { storage: { redirect: { enabled: true } } }, {}, /^storage\.redirect\.enabled: redirects need/],
  ];
  for (const [what, document, env, message] of rejected) {
    it(`names the key in the error: ${what}`, () => {
      assert.throws(() => resolveConfig(document, env, cwd), (error: unknown) => error instanceof ConfigError && message.test(error.message));
    });
  }

  it('loads config/registry.yaml from the working directory, or the file REGISTRY_CONFIG names', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'registry-config-'));
    await writeFile(path.join(directory, 'other.yaml'), 'http:\n  addr: ":7000"\n');
    const loaded = loadConfig({ env: { REGISTRY_CONFIG: 'other.yaml' }, cwd: directory });
    assert.equal(loaded.config.http.addr, ':7000');
    assert.equal(loaded.source, path.join(directory, 'other.yaml'));
    assert.equal(loadConfig({ env: {}, cwd: directory }).source, undefined);
    assert.throws(() => loadConfig({ file: 'missing.yaml', env: {}, cwd: directory }), /cannot read configuration file/);
    await writeFile(path.join(directory, 'broken.yaml'), 'http: [');
    assert.throws(() => loadConfig({ file: 'broken.yaml', env: {}, cwd: directory }), /not valid YAML/);
  });

  it('the shipped config/registry.yaml is valid and matches the defaults', () => {
    const shipped = loadConfig({ file: 'config/registry.yaml', env: {}, cwd: process.cwd() }).config;
    assert.deepEqual(shipped, resolveConfig({}, {}, process.cwd()));
  });

  it('reads the S3 and redirect keys, with sizes in bytes or binary units', () => {
    const defaults = resolveConfig({}, {}, cwd).storage;
    assert.deepEqual(defaults.s3, {
      bucket: '', region: 'us-east-1', regionendpoint: '', forcepathstyle: false, accesskey: '', secretkey: '',
      rootdirectory: '', chunksize: 10 * 1024 * 1024, partconcurrency: 3, maxattempts: 5,
    });
    assert.deepEqual(defaults.redirect, { enabled: false, expiry: 20 * 60_000 });
    const document = { storage: { s3: { bucket: 'images', regionendpoint: 'http://minio:9000', forcepathstyle: true, chunksize: '64MiB', partconcurrency: 8 } } };
    const env = {
      REGISTRY_STORAGE_S3_ACCESSKEY: 'key',
      REGISTRY_STORAGE_S3_SECRETKEY: 'secret',
      REGISTRY_STORAGE_S3_MAXATTEMPTS: '7',
      REGISTRY_STORAGE_REDIRECT_ENABLED: 'true',
      REGISTRY_STORAGE_REDIRECT_EXPIRY: '5m',
    };
    const config = resolveConfig(document, env, cwd).storage;
    assert.equal(config.s3.bucket, 'images');
    assert.equal(config.s3.forcepathstyle, true);
    assert.equal(config.s3.chunksize, 64 * 1024 * 1024);
    assert.equal(config.s3.partconcurrency, 8);
    assert.equal(config.s3.maxattempts, 7);
    assert.equal(config.s3.accesskey, 'key');
    assert.deepEqual(config.redirect, { enabled: true, expiry: 300_000 });
    assert.equal(resolveConfig({}, { REGISTRY_STORAGE_S3_CHUNKSIZE: '5242880' }, cwd).storage.s3.chunksize, 5 * 1024 * 1024);
    assert.equal(resolveConfig({ storage: { s3: { chunksize: '1GiB' } } }, {}, cwd).storage.s3.chunksize, 1024 ** 3);
  });

  it('reads the audit settings: durations in days, and a retention shorter than the time machine refused', () => {
    const defaults = auditSettings(resolveConfig({}, {}, cwd));
    assert.equal(defaults.timeMachineMs, 14 * 86_400_000);
    assert.equal(defaults.retentionMs, 0);
    assert.equal(defaults.recordPulls, false);
    const set = auditSettings(resolveConfig({ audit: { timemachine: '2d', retention: '90d', instance: 'registry-0', pulls: true } }, { REGISTRY_AUDIT_PULLFLUSH: '30s' }, cwd));
    assert.deepEqual([set.timeMachineMs, set.retentionMs, set.instance, set.recordPulls, set.pullFlushMs], [2 * 86_400_000, 90 * 86_400_000, 'registry-0', true, 30_000]);
    assert.throws(() => auditSettings(resolveConfig({ audit: { retention: '1d' } }, {}, cwd)), (error: unknown) => error instanceof ConfigError && /audit\.retention .* shorter than audit\.timemachine/.test(error.message));
    assert.throws(() => resolveConfig({ audit: { timemachine: 'two weeks' } }, {}, cwd), (error: unknown) => error instanceof ConfigError && /audit\.timemachine/.test(error.message));
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListenAddress(':5000'), { host: undefined, port: 5000 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddress('[::1]:5000'), { host: '::1', port: 5000 });
  });
});

describe('shipped example configurations', () => {
  it('config/postgres.yaml is valid and names a PostgreSQL database', () => {
    const { config } = loadConfig({ file: 'config/postgres.yaml', env: {}, cwd: process.cwd() });
    assert.match(config.database.url, /^postgres:\/\//);
  });

  it('the auth examples are valid, and the example policy grants what its comments say', async () => {
    const token = loadConfig({ file: 'config/auth-token.yaml', env: {}, cwd: process.cwd() }).config.auth;
    assert.equal(token.mode, 'token');
    const external = loadConfig({ file: 'config/auth-external.yaml', env: {}, cwd: process.cwd() }).config.auth;
    assert.equal(external.token.builtin, false);
    assert.equal(loadConfig({ file: 'config/auth-htpasswd.yaml', env: {}, cwd: process.cwd() }).config.auth.mode, 'htpasswd');
    const { loadPolicy, grant } = await import('../../src/auth/policy.js');
    const { AccountDirectory } = await import('../../src/auth/accounts.js');
    const { parseScope } = await import('../../src/auth/scopes.js');
    const policy = loadPolicy(token.policy);
    const directory = new AccountDirectory(policy);
    const alice = await directory.authenticate('alice', 'alice-password');
    const bob = await directory.authenticate('bob', 'bob-password');
    const robot = await directory.authenticate('robot$ci', 'ci-robot-secret-change-me');
    assert.ok(alice && bob && robot, 'the example credentials match their hashes');
    assert.deepEqual(grant(policy, bob, parseScope('repository:team-a/app:pull,push')!).actions, []);
    assert.deepEqual(grant(policy, bob, parseScope('repository:team-b/app:*')!).actions, ['pull', 'push', 'delete']);
    assert.deepEqual(grant(policy, robot, parseScope('repository:team-a/app:pull,push,delete')!).actions, ['pull', 'push']);
    assert.deepEqual(grant(policy, { kind: 'anonymous' }, parseScope('repository:public/x:pull')!).actions, ['pull']);
    assert.deepEqual(grant(policy, alice, parseScope('registry:catalog:*')!).actions, ['*']);
  });

  it('config/s3-postgres.yaml is valid and names a bucket and a PostgreSQL database', () => {
    const { config } = loadConfig({ file: 'config/s3-postgres.yaml', env: {}, cwd: process.cwd() });
    assert.equal(config.storage.s3.bucket, 'registry');
    assert.equal(config.storage.s3.forcepathstyle, true);
    assert.match(config.database.url, /^postgres:\/\//);
  });
});
