import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { BasicAccessControl } from '../../src/auth/access-control.js';
import { AccountDirectory } from '../../src/auth/accounts.js';
import { libtrustKeyId } from '../../src/auth/keys.js';
import { grant, openToAccountsPolicy, parsePolicy, PolicyError, type Principal } from '../../src/auth/policy.js';
import { globToRegExp } from '../../src/oci/name-patterns.js';
import { parseScope, parseScopes } from '../../src/auth/scopes.js';
import { LoginThrottle } from '../../src/auth/throttle.js';
import { ConfigError, resolveConfig } from '../../src/config/load.js';
import { ManualClock } from '../helpers/clock.js';

describe('token scopes', () => {
  it('parses every shape clients send', () => {
    assert.deepEqual(parseScope('repository:team/app:pull,push'), { type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
    assert.deepEqual(parseScope('repository:team/app:push,pull'), { type: 'repository', name: 'team/app', actions: ['push', 'pull'] });
    assert.deepEqual(parseScope('repository:team/app:*'), { type: 'repository', name: 'team/app', actions: ['*'] });
    assert.deepEqual(parseScope('repository(plugin):vieux/sshfs:pull'), { type: 'repository', resourceClass: 'plugin', name: 'vieux/sshfs', actions: ['pull'] });
    assert.deepEqual(parseScope('repository:localhost:5000/team/app:pull'), { type: 'repository', name: 'localhost:5000/team/app', actions: ['pull'] });
    assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
    assert.deepEqual(parseScope('repository:a:pull,pull,'), { type: 'repository', name: 'a', actions: ['pull'] });
    assert.deepEqual(parseScope('repository:a:'), { type: 'repository', name: 'a', actions: [] });
    for (const bad of ['repository', 'repository:', ':a:pull', 'repository::pull', 'Repo:a:pull', 'repository(:a:pull']) assert.equal(parseScope(bad), undefined, bad);
  });

  it('takes several scope values and space-separated scopes, skipping malformed ones', () => {
    assert.deepEqual(
      parseScopes(['repository:a:pull repository:b:push', 'bad', '', 'registry:catalog:*']).map((scope) => `${scope.type}:${scope.name}`),
      ['repository:a', 'repository:b', 'registry:catalog'],
    );
  });
});

describe('access policy', () => {
  it('matches repository globs: * within a segment, ** across segments', () => {
    const cases: Array<[string, string, boolean]> = [
      ['team-a/**', 'team-a/app', true],
      ['team-a/**', 'team-a/x/y', true],
      ['team-a/**', 'team-a', false],
      ['team-a/**', 'team-ab/app', false],
      ['team-a/*', 'team-a/app', true],
      ['team-a/*', 'team-a/x/y', false],
      ['*/base', 'library/base', true],
      ['app?', 'app1', true],
      ['a.b/**', 'axb/c', false],
      ['**', 'anything/at/all', true],
    ];
    for (const [glob, name, expected] of cases) assert.equal(globToRegExp(glob).test(name), expected, `${glob} ~ ${name}`);
  });

  const policy = parsePolicy({
    users: { alice: { password: '$2y$05$abcdefghijklmnopqrstuu5x7Hn1rBnFZ8u2nmB1ZlF6I7gD7e1m2', groups: ['dev'] } },
    robots: { ci: { secret: '$2y$05$abcdefghijklmnopqrstuu5x7Hn1rBnFZ8u2nmB1ZlF6I7gD7e1m2' } },
    rules: [
      { accounts: ['alice'], repositories: ['secret/**'], actions: [] },
      { groups: ['dev'], repositories: ['**'], actions: ['pull', 'push'] },
      { robots: ['ci'], repositories: ['ci/*'], actions: ['*'] },
      { anonymous: true, repositories: ['public/**'], actions: ['pull'] },
      { authenticated: true, repositories: ['shared/**'], actions: ['pull'] },
    ],
  });
  const alice: Principal = { kind: 'user', name: 'alice', groups: ['dev'] };
  const robot: Principal = { kind: 'robot', name: 'ci', groups: [] };
  const ask = (principal: Principal, text: string) => grant(policy, principal, parseScope(text)!).actions;

  it('lets the first rule that applies decide, and grants the intersection with what was asked', () => {
    assert.deepEqual(ask(alice, 'repository:secret/x:pull'), [], 'an earlier rule with no actions shuts alice out');
    assert.deepEqual(ask(alice, 'repository:team/app:push,pull,delete'), ['push', 'pull']);
    assert.deepEqual(ask(alice, 'repository:team/app:*'), ['pull', 'push'], '* asked: everything the rule gives');
    assert.deepEqual(ask(robot, 'repository:ci/app:*'), ['*']);
    assert.deepEqual(ask(robot, 'repository:ci/app:delete'), ['delete']);
    assert.deepEqual(ask(robot, 'repository:ci/a/b:pull'), []);
    assert.deepEqual(ask({ kind: 'anonymous' }, 'repository:public/x:pull,push'), ['pull']);
    assert.deepEqual(ask({ kind: 'anonymous' }, 'repository:shared/x:pull'), []);
    assert.deepEqual(ask(robot, 'repository:shared/x:pull'), ['pull']);
    assert.deepEqual(ask(alice, 'registry:catalog:*'), [], 'no rule gives alice the catalog');
    assert.deepEqual(ask(alice, 'unknown:thing:pull'), []);
  });

  it('gives signed-in accounts whatever it gives anonymous requests, even past an earlier rule of their own', () => {
    // alice's first rule shuts her out of secret/**; an anonymous rule opening secret/docs/** to pulls opens it to her too.
    const open = parsePolicy({
      rules: [
        { accounts: ['alice'], repositories: ['secret/**'], actions: [] },
        { accounts: ['alice'], repositories: ['public/**'], actions: ['push'] },
        { anonymous: true, repositories: ['public/**', 'secret/docs/**'], actions: ['pull'] },
      ],
    });
    const askOpen = (principal: Principal, text: string) => grant(open, principal, parseScope(text)!).actions.sort();
    assert.deepEqual(askOpen({ kind: 'anonymous' }, 'repository:public/x:pull'), ['pull']);
    assert.deepEqual(askOpen(alice, 'repository:public/x:pull,push'), ['pull', 'push'], 'her own rule and the anonymous one');
    assert.deepEqual(askOpen(alice, 'repository:secret/docs/a:pull'), ['pull']);
    assert.deepEqual(askOpen(alice, 'repository:secret/other:pull'), [], 'what no rule opens to anyone stays shut');
    assert.deepEqual(askOpen(robot, 'repository:public/x:pull,push'), ['pull'], 'robots too');
    assert.deepEqual(askOpen({ kind: 'anonymous' }, 'repository:public/x:push'), [], 'nothing more for anonymous requests');
  });

  it('grants the registry-wide scopes a rule names: catalog, audit, operator, mirror-import', () => {
    const registryWide = parsePolicy({
      rules: [
        { accounts: ['alice'], catalog: true },
        { accounts: ['olga'], operator: true },
        { robots: ['loader'], 'mirror-import': true },
      ],
    });
    const olga: Principal = { kind: 'user', name: 'olga', groups: [] };
    const loader: Principal = { kind: 'robot', name: 'loader', groups: [] };
    const askWide = (principal: Principal, text: string) => grant(registryWide, principal, parseScope(text)!).actions;
    assert.deepEqual(askWide(alice, 'registry:catalog:*'), ['*']);
    assert.deepEqual(askWide(alice, 'registry:operator:*'), [], 'the catalog is not the operator grant');
    assert.deepEqual(askWide(olga, 'registry:operator:*'), ['*']);
    assert.deepEqual(askWide(olga, 'registry:mirror-import:*'), [], 'operating the registry is not loading its mirror caches');
    assert.deepEqual(askWide(loader, 'registry:mirror-import:*'), ['*']);
    assert.deepEqual(askWide(loader, 'registry:toString:*'), [], 'only the grants the policy knows');
    assert.deepEqual(grant(openToAccountsPolicy, olga, parseScope('registry:operator:*')!).actions, ['*'], 'without a policy file, every signed-in account may do everything');
  });

  it('refuses a policy that cannot mean what it says, naming the place', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ rules: [{ repositories: ['**'], actions: ['pull'] }] }, /rules\[0\]: says nobody it applies to/],
      [{ rules: [{ anonymous: true, actions: ['read'] }] }, /rules\[0\]\.actions: unknown action "read"/],
      [{ rules: { a: 1 } }, /rules: expected a list/],
      [{ users: { bob: { password: 'plain' } } }, /users\.bob\.password: expected a bcrypt hash/],
      [{ robots: { ci: {} } }, /robots\.ci: a robot needs a secret/],
      [{ rules: [{ accounts: 'alice', repositories: [3], actions: ['pull'] }] }, /rules\[0\]\.repositories: expected a list of strings/],
    ];
    for (const [document, message] of cases) {
      assert.throws(() => parsePolicy(document), (error: unknown) => error instanceof PolicyError && error instanceof ConfigError && message.test(error.message));
    }
  });
});

describe('login throttle', () => {
  const limits = { perAccount: 3, perAddress: 6, windowMs: 60_000, knownForMs: 3_600_000 };

  it('refuses an account at an address after `perAccount` failures within the window, until the oldest leaves it', () => {
    const clock = new ManualClock(1_000_000);
    const throttle = new LoginThrottle(limits, clock);
    for (let attempt = 0; attempt < 3; attempt++) {
      assert.equal(throttle.retryAfter('10.0.0.1', 'alice').seconds, 0);
      throttle.failed('10.0.0.1', 'alice');
      clock.advance(1000);
    }
    assert.deepEqual(throttle.retryAfter('10.0.0.1', 'alice'), { seconds: 57, reason: 'too many failed logins of alice from this address' });
    assert.equal(throttle.retryAfter('10.0.0.2', 'alice').seconds, 0, 'the account from elsewhere is not affected');
    assert.equal(throttle.retryAfter('10.0.0.1', 'bob').seconds, 0, 'another account from the same address is not affected');
    clock.advance(57_000);
    assert.equal(throttle.retryAfter('10.0.0.1', 'alice').seconds, 0);
    throttle.failed('10.0.0.1', 'alice');
    throttle.succeeded('10.0.0.1', 'alice');
    assert.equal(throttle.retryAfter('10.0.0.1', 'alice').seconds, 0, 'a success clears the account\'s count');
  });

  it('refuses a spraying address for accounts not signed in from it lately, never for one that was', () => {
    const clock = new ManualClock(1_000_000);
    const throttle = new LoginThrottle(limits, clock);
    throttle.succeeded('10.0.0.1', 'ci');
    for (let account = 0; account < 6; account++) throttle.failed('10.0.0.1', `user-${account}`);
    assert.deepEqual(throttle.retryAfter('10.0.0.1', 'newcomer'), { seconds: 60, reason: 'too many failed logins from this address' });
    assert.equal(throttle.retryAfter('10.0.0.1', 'ci').seconds, 0, 'ci signed in from this address: its correct password still works');
    assert.equal(throttle.retryAfter('10.0.0.9', 'newcomer').seconds, 0, 'other addresses are not affected');
    clock.advance(limits.knownForMs + 1);
    for (let account = 0; account < 6; account++) throttle.failed('10.0.0.1', `user-${account}`);
    assert.ok(throttle.retryAfter('10.0.0.1', 'ci').seconds > 0, 'after knownForMs, ci is a newcomer again');
  });
});

describe('signing key ids', () => {
  it('computes the libtrust key id Distribution expects', () => {
    // A fixed P-256 public key; its id computed independently (sha256 of the DER SPKI, 240 bits, base32).
    const key = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' },
      format: 'jwk',
    });
    const kid = libtrustKeyId(key);
    assert.match(kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    const der = key.export({ type: 'spki', format: 'der' });
    const digest = createHash('sha256').update(der).digest().subarray(0, 30);
    assert.equal(kid.replaceAll(':', ''), rfc4648Base32(digest));
  });
});

/** RFC 4648 base32 by the book (bit string cut in fives), to check the key id against. */
function rfc4648Base32(bytes: Buffer): string {
  const bits = [...bytes].map((byte) => byte.toString(2).padStart(8, '0')).join('');
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let output = '';
  for (let index = 0; index < bits.length; index += 5) output += alphabet[parseInt(bits.slice(index, index + 5).padEnd(5, '0'), 2)];
  return output;
}

describe('auth configuration', () => {
  it('has auth off by default and reads the auth keys', () => {
    const defaults = resolveConfig({}, {}, '/srv').auth;
    assert.equal(defaults.mode, 'none');
    assert.equal(defaults.token.expiration, 300_000);
    assert.equal(defaults.token.service, 'registry');
    assert.equal(defaults.token.algorithm, 'ES256');
    const config = resolveConfig({ auth: { mode: 'token', policy: '/etc/registry/policy.yaml', token: { expiration: '10m', algorithm: 'RS256' } } }, { REGISTRY_AUTH_TOKEN_SERVICE: 'registry.example.com' }, '/srv').auth;
    assert.equal(config.token.expiration, 600_000);
    assert.equal(config.token.algorithm, 'RS256');
    assert.equal(config.token.service, 'registry.example.com');
  });

  it('takes auth on without a policy or htpasswd file: the accounts are the database\'s (made with registry accounts create)', () => {
    for (const mode of ['token', 'htpasswd']) assert.equal(resolveConfig({ auth: { mode } }, {}, '/srv').auth.mode, mode);
  });

  it('refuses auth settings that cannot work', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ auth: { mode: 'token', token: { builtin: false } } }, /with builtin false, tokens need an issuer/],
      [{ auth: { mode: 'token', token: { builtin: false, jwks: '/x.json' } } }, /auth\.token\.realm: with builtin false/],
      [{ auth: { mode: 'ldap' } }, /auth\.mode: expected one of none, token, htpasswd/],
    ];
    for (const [document, message] of cases) assert.throws(() => resolveConfig(document, {}, '/srv'), (error: unknown) => error instanceof ConfigError && message.test(error.message));
  });
});

describe('Basic auth', () => {
  it('remembers proven credentials for a while, so each request does not pay a bcrypt comparison; wrong ones are checked every time', async () => {
    class CountingDirectory extends AccountDirectory {
      checks = 0;
      override async authenticate(username: string, password: string): Promise<Principal | null> {
        this.checks++;
        return super.authenticate(username, password);
      }
    }
    const directory = new CountingDirectory(openToAccountsPolicy, new Map([['alice', bcrypt.hashSync('pw', 4)]]));
    const access = new BasicAccessControl({ current: { policy: openToAccountsPolicy, directory, database: null, generation: 0 } }, new LoginThrottle(), 'registry');
    const header = (password: string) => `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
    const needed = [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }];
    for (let request = 0; request < 5; request++) {
      const grant = await access.authorize({ authorization: header('pw'), address: '10.0.0.1' }, needed);
      assert.equal(grant.account, 'alice');
    }
    assert.equal(directory.checks, 1);
    for (let request = 0; request < 3; request++) {
      await assert.rejects(access.authorize({ authorization: header('wrong'), address: '10.0.0.1' }, needed), /authentication required/);
    }
    assert.equal(directory.checks, 4);
  });
});
