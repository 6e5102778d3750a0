import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, resolveConfig } from '../../src/config/load.js';
import { MirrorAddressing } from '../../src/mirror/addressing.js';
import { mirrorSettings } from '../../src/mirror/settings.js';
import { SingleFlight } from '../../src/mirror/single-flight.js';
import { parseChallenge } from '../../src/auth/challenge.js';
import { parseRetryAfter } from '../../src/mirror/upstream-client.js';
import { UpstreamHealth } from '../../src/mirror/upstream-health.js';
import { RegistryError } from '../../src/oci/errors.js';
import { ManualClock } from '../helpers/clock.js';

const upstreams = {
  'docker.io': { url: 'https://registry-1.docker.io', prefix: 'dockerhub', repositories: ['library/**', 'bitnami/*'] },
  'ghcr.io': { url: 'https://ghcr.io', prefix: 'ghcr' },
  central: { url: 'http://registry.example.com:5000/', allowpush: true },
};

describe('mirror configuration', () => {
  it('reads upstreams as named sections, with env overrides for their keys and lists from env', () => {
    const config = resolveConfig(
      { mirror: { default: 'docker.io', upstreams } },
      { REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_PASSWORD: 'from-env', REGISTRY_MIRROR_UPSTREAMS_DOCKER_IO_USERNAME: 'me', REGISTRY_MIRROR_UPSTREAMS_GHCR_IO_REPOSITORIES: 'a/**, b/*' },
    );
    assert.equal(config.mirror.upstreams['docker.io']?.password, 'from-env');
    assert.deepEqual(config.mirror.upstreams['ghcr.io']?.repositories, ['a/**', 'b/*']);
    assert.equal(config.mirror.upstreams['docker.io']?.ttl, 5 * 60_000);
    const settings = mirrorSettings(config)!;
    assert.deepEqual(settings.upstreams.map((upstream) => [upstream.name, upstream.prefix, upstream.url, upstream.dockerHub]), [
      ['docker.io', 'dockerhub', 'https://registry-1.docker.io', true],
      ['ghcr.io', 'ghcr', 'https://ghcr.io', false],
      ['central', 'central', 'http://registry.example.com:5000', false],
    ]);
    assert.deepEqual(settings.upstreams[0]?.credentials, { kind: 'basic', username: 'me', password: 'from-env' });
    assert.equal(settings.defaultUpstream?.name, 'docker.io');
    assert.equal(mirrorSettings(resolveConfig({})), null, 'no upstreams, no mirror');
  });

  it('reads passwords and tokens from files', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'registry-mirror-config-'));
    try {
      await writeFile(path.join(directory, 'password'), 'pa55word\n');
      await writeFile(path.join(directory, 'token'), 'tok3n\n');
      const config = resolveConfig({
        mirror: {
          upstreams: {
            one: { url: 'https://one.example', username: 'u', passwordfile: path.join(directory, 'password') },
            two: { url: 'https://two.example', tokenfile: path.join(directory, 'token') },
          },
        },
      });
      const settings = mirrorSettings(config)!;
      assert.deepEqual(settings.upstreams[0]?.credentials, { kind: 'basic', username: 'u', password: 'pa55word' });
      assert.deepEqual(settings.upstreams[1]?.credentials, { kind: 'bearer', token: 'tok3n' });
      const missing = resolveConfig({ mirror: { upstreams: { one: { url: 'https://one.example', username: 'u', passwordfile: path.join(directory, 'nope') } } } });
      assert.throws(() => mirrorSettings(missing), (error: unknown) => error instanceof ConfigError && /mirror\.upstreams\.one\.passwordfile/.test(error.message));
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('names the key of every mistake', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ mirror: { upstreams: { a: { url: 'ftp://x' } } } }, /mirror\.upstreams\.a\.url/],
      [{ mirror: { upstreams: { a: {} } } }, /mirror\.upstreams\.a\.url/],
      [{ mirror: { upstreams: { a: { url: 'https://a', prefix: 'Bad Prefix' } } } }, /mirror\.upstreams\.a\.prefix/],
      [{ mirror: { upstreams: { a: { url: 'https://a', prefix: 'p' }, b: { url: 'https://b', prefix: 'p' } } } }, /already the prefix of mirror\.upstreams\.a/],
      [{ mirror: { upstreams: { a: { url: 'https://a', password: 'x', passwordfile: '/x' } } } }, /password or passwordfile/],
      [{ mirror: { upstreams: { a: { url: 'https://a', username: 'u', token: 't' } } } }, /token or a username/],
      [{ mirror: { default: 'nope', upstreams: { a: { url: 'https://a' } } } }, /mirror\.default/],
      [{ mirror: { upstreams: { a: { url: 'https://a', colour: 'red' } } } }, /mirror\.upstreams\.a\.colour: unknown/],
      [{ mirror: { upstreams: { a: { url: 'https://a', repositories: [1] } } } }, /mirror\.upstreams\.a\.repositories: expected a list of strings/],
      [{ mirror: { upstreams: ['a'] } }, /mirror\.upstreams: expected named sections/],
    ];
    for (const [document, message] of cases) {
      assert.throws(() => resolveConfig(document), (error: unknown) => error instanceof ConfigError && message.test(error.message), String(message));
    }
  });

  it('config/mirror.yaml is valid and starts as it is (no secret files needed)', () => {
    const { config } = loadConfig({ file: 'config/mirror.yaml', env: {}, cwd: process.cwd() });
    assert.equal(config.mirror.default, 'docker.io');
    assert.deepEqual(Object.keys(config.mirror.upstreams), ['docker.io', 'ghcr.io', 'registry.example.com']);
    const settings = mirrorSettings(config);
    assert.deepEqual(settings?.upstreams.map((upstream) => upstream.name), ['docker.io', 'ghcr.io', 'registry.example.com']);
    const withSecret = mirrorSettings(loadConfig({ file: 'config/mirror.yaml', env: { REGISTRY_MIRROR_UPSTREAMS_REGISTRY_EXAMPLE_COM_PASSWORD: 's3cret' }, cwd: process.cwd() }).config);
    assert.deepEqual(withSecret?.upstreams.find((upstream) => upstream.name === 'registry.example.com')?.credentials, { kind: 'basic', username: 'site-mirror', password: 's3cret' });
  });
});

describe('mirror addressing', () => {
  const settings = mirrorSettings(resolveConfig({ mirror: { default: 'docker.io', upstreams } }))!;
  const addressing = new MirrorAddressing(settings);
  const resolve = (name: string, ns?: string) => {
    const target = addressing.resolve(name, ns);
    return target ? [target.upstream.name, target.repository, target.addressedBy] : null;
  };

  it('maps path prefixes, ?ns= and the default upstream, with Docker Hub names normalised', () => {
    assert.deepEqual(resolve('dockerhub/library/alpine'), ['docker.io', 'library/alpine', 'prefix']);
    assert.deepEqual(resolve('dockerhub/alpine'), ['docker.io', 'library/alpine', 'prefix']);
    assert.deepEqual(resolve('ghcr/owner/tool'), ['ghcr.io', 'owner/tool', 'prefix']);
    assert.deepEqual(resolve('central/team/app'), ['central', 'team/app', 'prefix']);
    assert.deepEqual(resolve('library/alpine', 'docker.io'), ['docker.io', 'library/alpine', 'ns']);
    assert.deepEqual(resolve('owner/tool', 'ghcr.io'), ['ghcr.io', 'owner/tool', 'ns']);
    assert.deepEqual(resolve('team/app', 'registry.example.com:5000'), ['central', 'team/app', 'ns'], 'ns may name the URL host');
    assert.deepEqual(resolve('library/alpine'), ['docker.io', 'library/alpine', 'default']);
    assert.deepEqual(resolve('alpine'), ['docker.io', 'library/alpine', 'default']);
    assert.deepEqual(resolve('bitnami/redis'), ['docker.io', 'bitnami/redis', 'default']);
    assert.deepEqual(resolve('docker.io/library/alpine'), ['docker.io', 'library/alpine', 'host'], 'the upstream\'s name as the first component');
    assert.deepEqual(resolve('docker.io/alpine'), ['docker.io', 'library/alpine', 'host']);
    assert.deepEqual(resolve('index.docker.io/library/alpine'), ['docker.io', 'library/alpine', 'host'], 'Docker Hub by any of its host names');
    assert.deepEqual(resolve('ghcr.io/owner/tool'), ['ghcr.io', 'owner/tool', 'host']);
    assert.deepEqual(resolve('registry.example.com/team/app'), ['central', 'team/app', 'host'], 'the URL host');
  });

  it('leaves other names local, and refuses names an upstream may not serve', () => {
    assert.equal(resolve('team-a/app'), null);
    assert.equal(resolve('bitnami/redis/extra'), null, 'bitnami/* is one level');
    assert.deepEqual(resolve('dockerhub'), ['docker.io', 'library/dockerhub', 'default'], 'a one-part plain name is an official image, not a prefix');
    assert.equal(resolve('team-a/app', 'unknown.example'), null);
    for (const [name, ns] of [['dockerhub/someone/app', undefined], ['someone/app', 'docker.io']] as const) {
      assert.throws(() => addressing.resolve(name, ns), (error: unknown) => error instanceof RegistryError && error.code === 'NAME_UNKNOWN' && /does not serve/.test(error.message));
    }
  });
});

describe('upstream protocol helpers', () => {
  it('parses WWW-Authenticate challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'), {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
    });
    assert.deepEqual(parseChallenge('Basic realm="registry"'), { scheme: 'basic', params: { realm: 'registry' } });
    assert.deepEqual(parseChallenge('Bearer realm="a\\"b", error=invalid_token'), { scheme: 'bearer', params: { realm: 'a"b', error: 'invalid_token' } });
    assert.equal(parseChallenge(null), null);
  });

  it('reads Retry-After as seconds or a date', () => {
    assert.equal(parseRetryAfter('30', 1_000_000), 30_000);
    assert.equal(parseRetryAfter(new Date(1_000_000 + 5000).toUTCString(), 1_000_000), 5000);
    assert.equal(parseRetryAfter('soon', 1_000_000), null);
    assert.equal(parseRetryAfter(null, 1_000_000), null);
  });

  it('opens the circuit after consecutive failures or a 429, and closes it on success', () => {
    const clock = new ManualClock(0);
    const health = new UpstreamHealth(3, 10_000, clock);
    assert.equal(health.status('up', 'http://up').state, 'unknown', 'never asked: nothing can be said yet');
    assert.equal(health.status('up', 'http://up').lastFailure, null);
    health.failed('ECONNREFUSED');
    assert.equal(health.status('up', 'http://up').state, 'unreachable', 'one failure, circuit still closed');
    assert.deepEqual(health.status('up', 'http://up').lastFailure, { at: new Date(0).toISOString(), reason: 'ECONNREFUSED' });
    health.failed('ECONNREFUSED');
    assert.equal(health.waitMs(), 0);
    health.failed('ECONNREFUSED');
    assert.equal(health.waitMs(), 10_000);
    assert.equal(health.status('up', 'http://up').state, 'unreachable');
    clock.advance(10_000);
    assert.equal(health.waitMs(), 0, 'a probe may go after the cool-off');
    health.succeeded();
    assert.equal(health.status('up', 'http://up').state, 'reachable');
    health.throttled(42_000, 'HTTP 429');
    assert.equal(health.waitMs(), 42_000, 'one 429 is enough, for as long as it asked');
    assert.equal(health.status('up', 'http://up').lastFailure?.reason, 'HTTP 429');
  });

  it('runs one task per key and shares its result, keeping the key while the result is busy', async () => {
    const flight = new SingleFlight<{ done: Promise<void> }>();
    let started = 0;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const task = async () => {
      started++;
      return { done };
    };
    const results = await Promise.all(Array.from({ length: 5 }, () => flight.run('k', task, (result) => result.done)));
    assert.equal(started, 1);
    assert.ok(results.every((result) => result === results[0]));
    await flight.run('k', task, (result) => result.done);
    assert.equal(started, 1, 'still busy');
    finish();
    await done;
    await new Promise((resolve) => setImmediate(resolve));
    await flight.run('k', task, (result) => result.done);
    assert.equal(started, 2);
  });
});
