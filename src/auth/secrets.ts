import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { PolicyError, robotPrefix } from './policy.js';

/** bcrypt cost of hashes this registry writes (htpasswd -B uses 5; 10 slows guessing down more). */
const bcryptCost = 10;

export function hashSecret(secret: string): string {
  return bcrypt.hashSync(secret, bcryptCost);
}

/** A new robot account: its long random secret (shown once) and the policy entry holding only its hash. */
export function newRobot(name: string): { username: string; secret: string; policyEntry: string } {
  if (!/^[a-z0-9][a-z0-9._-]{0,63}$/.test(name)) throw new PolicyError('a robot name is 1-64 of a-z 0-9 . _ - (starting with a letter or digit)');
  const secret = randomBytes(32).toString('base64url');
  return {
    username: `${robotPrefix}${name}`,
    secret,
    policyEntry: `robots:\n  ${name}: { secret: "${hashSecret(secret)}" }`,
  };
}
