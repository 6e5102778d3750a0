import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import type supertest from 'supertest';

export const passwords = {
  alice: 'alice-password',
  bob: 'bob-password',
  carol: 'carol-password',
  robot: 'r0b0t-s3cret-7f3a9c1e5b2d8f4a6c0e',
  dave: 'dave-password',
  loader: 'loader-password',
  olga: 'olga-password',
} as const;

/**
 * An access policy for the tests: alice (group team-a) may do everything in team-a/**, read the
 * catalog and the audit log and publish to public/**; bob may only pull team-a/**; carol is in the htpasswd file only, with no rule of her own;
 * the robot `ci` may pull and push team-b/**; anybody may pull public/**. dave may push into the
 * mirror cache of the upstream `central` by its prefixed names (central/team-a/**); loader may write
 * into any mirror cache (mirror-import); olga is the operator (GC, retention, webhook status).
 */
export async function writeTestPolicy(): Promise<{ directory: string; policy: string; htpasswd: string }> {
  const directory = await mkdtemp(path.join(tmpdir(), 'registry-auth-'));
  const hash = (secret: string) => bcrypt.hashSync(secret, 4);
  const policy = path.join(directory, 'policy.yaml');
  await writeFile(
    policy,
    [
      'users:',
      `  alice: { password: "${hash(passwords.alice)}", groups: [team-a] }`,
      `  bob: { password: "${hash(passwords.bob)}" }`,
      '  carol: { groups: [readers] }',
      `  dave: { password: "${hash(passwords.dave)}" }`,
      `  loader: { password: "${hash(passwords.loader)}" }`,
      `  olga: { password: "${hash(passwords.olga)}" }`,
      'robots:',
      `  ci: { secret: "${hash(passwords.robot)}" }`,
      'rules:',
      '  - { groups: [team-a], repositories: ["team-a/**"], actions: [pull, push, delete] }',
      '  - { accounts: [alice], catalog: true, audit: true }',
      '  - { accounts: [alice], repositories: ["public/**"], actions: [pull, push] }',
      '  - { accounts: [bob], repositories: ["team-a/**"], actions: [pull] }',
      '  - { robots: [ci], repositories: ["team-b/**"], actions: [pull, push] }',
      '  - { groups: [readers], repositories: ["**"], actions: [pull] }',
      '  - { accounts: [dave], repositories: ["central/team-a/**"], actions: [pull, push] }',
      '  - { accounts: [loader], mirror-import: true }',
      '  - { accounts: [olga], operator: true, catalog: true }',
      '  - { anonymous: true, repositories: ["public/**"], actions: [pull] }',
      '',
    ].join('\n'),
  );
  // carol's entry as `htpasswd -B` writes it ($2y$).
  const htpasswd = path.join(directory, 'htpasswd');
  await writeFile(htpasswd, `# users\ncarol:${hash(passwords.carol).replace(/^\$2b\$/, '$2y$')}\n`);
  return { directory, policy, htpasswd };
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Fetches a token from the built-in service (GET, Basic credentials unless anonymous). */
export async function fetchToken(request: supertest.Agent, credentials: [string, string] | null, scopes: string[]): Promise<string> {
  const query = new URLSearchParams({ service: 'registry' });
  for (const scope of scopes) query.append('scope', scope);
  const call = request.get(`/auth/token?${query.toString()}`);
  if (credentials) call.set('Authorization', basic(...credentials));
  const response = await call.expect(200);
  return (response.body as { token: string }).token;
}

/** The payload of a JWT, unverified. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
