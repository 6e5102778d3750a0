import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, resolveConfig } from '../../src/config/load.js';
import { formatDefault, configSchema } from '../../src/config/schema.js';
import { mirrorSettings } from '../../src/mirror/settings.js';
import { auditSettings } from '../../src/audit/settings.js';

const cwd = '/srv/registry';

async function load(document: string, env: Record<string, string>) {
  const directory = await mkdtemp(path.join(tmpdir(), 'registry-config-'));
  try {
    const file = path.join(directory, 'registry.yaml');
    await writeFile(file, document);
    return loadConfig({ file, env, cwd });
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

describe("Distribution's keys and the environment", () => {
  it('REGISTRY_PROXY_REMOTEURL alone makes a Docker Hub mirror for plain names, named docker.io', () => {
    const config = resolveConfig({}, { REGISTRY_PROXY_REMOTEURL: 'https://registry-1.docker.io' }, cwd);
    assert.equal(config.mirror.default, 'docker.io');
    assert.equal(config.mirror.upstreams['docker.io']?.url, 'https://registry-1.docker.io');
    const settings = mirrorSettings(config);
    assert.equal(settings?.defaultUpstream?.name, 'docker.io');
    assert.equal(settings?.defaultUpstream?.retentionMs, 0, 'the cache is kept unless proxy.ttl says otherwise');
  });

  it('proxy.username, proxy.password and proxy.ttl become the upstream\'s account and cache retention', () => {
    const config = resolveConfig(
      { proxy: { remoteurl: 'https://mirror.example.com', username: 'puller', ttl: '168h' } },
      { REGISTRY_PROXY_PASSWORD: 'from-the-environment' },
      cwd,
    );
    const upstream = config.mirror.upstreams['mirror.example.com'];
    assert.equal(config.mirror.default, 'mirror.example.com');
    assert.equal(upstream?.username, 'puller');
    assert.equal(upstream?.password, 'from-the-environment');
    assert.equal(upstream?.retention, 168 * 3_600_000);
  });

  it('proxy.remoteurl next to mirror.default, or a bad URL, is refused naming the keys', () => {
    const both = { proxy: { remoteurl: 'https://registry-1.docker.io' }, mirror: { default: 'hub', upstreams: { hub: { url: 'https://registry-1.docker.io' } } } };
    assert.throws(() => resolveConfig(both, {}, cwd), (error: unknown) => error instanceof ConfigError && /proxy\.remoteurl and mirror\.default/.test(error.message));
    assert.throws(() => resolveConfig({ proxy: { remoteurl: 'registry-1.docker.io' } }, {}, cwd), /proxy\.remoteurl: expected the upstream's base URL/);
  });

  it('a mirror upstream defined by environment variables alone', () => {
    const config = resolveConfig({}, { REGISTRY_MIRROR_UPSTREAMS_CENTRAL_URL: 'https://registry.example.com', REGISTRY_MIRROR_UPSTREAMS_CENTRAL_PASSWORDFILE: '/run/secrets/central', REGISTRY_MIRROR_DEFAULT: 'central' }, cwd);
    assert.equal(config.mirror.upstreams.central?.url, 'https://registry.example.com');
    assert.equal(config.mirror.upstreams.central?.passwordfile, '/run/secrets/central');
    assert.equal(config.mirror.default, 'central');
    // Without a URL the upstream is named in the error, not silently dropped.
    assert.throws(() => resolveConfig({}, { REGISTRY_MIRROR_UPSTREAMS_GHCR_PASSWORD: 'x' }, cwd), /mirror\.upstreams\.ghcr\.url/);
  });

  it('a variable for an upstream the file names goes to that upstream (docker.io is DOCKER_IO)', () => {
    const config = resolveConfig({ mirror: { upstreams: { 'docker.io': { url: 'https://registry-1.docker.io' } } } }, { REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_PASSWORD: 'secret' }, cwd);
    assert.deepEqual(Object.keys(config.mirror.upstreams), ['docker.io']);
    assert.equal(config.mirror.upstreams['docker.io']?.password, 'secret');
  });

  it('names the REGISTRY_* variables that set no key, and the Distribution keys it ignores', async () => {
    const { notes } = await load('version: 0.1\nhttp:\n  secret: asecretforlocaldevelopment\nredis:\n  addr: localhost:6379\nstorage:\n  cache:\n    blobdescriptor: inmemory\n', {
      REGISTRY_PORT: 'tcp://10.0.0.1:5000',
      REGISTRY_SERVICE_HOST: '10.0.0.1',
      REGISTRY_HTTP_ADRR: ':6000',
      REGISTRY_HTTP_ADDR: ':5001',
      REGISTRY_CONFIG: '/etc/registry.yaml',
      REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR: 'redis',
    });
    assert.deepEqual(notes.unknownVariables, ['REGISTRY_HTTP_ADRR', 'REGISTRY_PORT', 'REGISTRY_SERVICE_HOST']);
    assert.deepEqual(notes.ignoredKeys.sort(), ['REGISTRY_STORAGE_CACHE_BLOBDESCRIPTOR', 'http.secret', 'redis', 'storage.cache'].sort());
  });

  it("Distribution's auth sections turn auth on without auth.mode: htpasswd, or tokens from an external issuer", () => {
    const basic = resolveConfig({ auth: { htpasswd: { realm: 'basic-realm', path: '/auth/htpasswd' } } }, {}, cwd);
    assert.equal(basic.auth.mode, 'htpasswd');
    assert.equal(basic.auth.htpasswd.realm, 'basic-realm');
    const token = resolveConfig({ auth: { token: { realm: 'https://auth.example.com/token', service: 'registry', issuer: 'auth', rootcertbundle: '/certs/bundle.pem' } } }, {}, cwd);
    assert.equal(token.auth.mode, 'token');
    assert.equal(token.auth.token.builtin, false);
    assert.equal(resolveConfig({ auth: { mode: 'none', htpasswd: { path: '/auth/htpasswd' } } }, {}, cwd).auth.mode, 'none', 'an explicit auth.mode wins');
    assert.equal(resolveConfig({}, { REGISTRY_AUTH_HTPASSWD_PATH: '/auth/htpasswd' }, cwd).auth.mode, 'htpasswd', 'REGISTRY_AUTH_HTPASSWD_PATH alone, as with registry:2');
  });

  it('a key Distribution does not have either is still refused', () => {
    assert.throws(() => resolveConfig({ http: { secrett: 'x' } }, {}, cwd), /http\.secrett: unknown configuration key/);
  });

  it('durations print as the configuration writes them', () => {
    assert.equal(formatDefault(configSchema.storage.maintenance.uploadpurging.age), '168h');
    assert.equal(formatDefault(configSchema.storage.redirect.expiry), '20m');
    assert.throws(() => auditSettings(resolveConfig({ audit: { timemachine: '14d', retention: '2d' } }, {}, cwd)), /audit\.retention \(2d\) is shorter than audit\.timemachine \(14d\)/);
  });
});
