import { systemClock, type Clock } from '../clock.js';

export interface ThrottleLimits {
  /** Failed logins of one account from one address within the window before that pair is refused. */
  perAccount: number;
  /** Failed logins from one address, whatever the account, before new accounts from it are refused. */
  perAddress: number;
  windowMs: number;
  /** How long an account that signed in from an address passes that address's limit. */
  knownForMs: number;
}

export const defaultThrottleLimits: ThrottleLimits = { perAccount: 10, perAddress: 100, windowMs: 5 * 60_000, knownForMs: 24 * 3_600_000 };

/** Pairs and addresses tracked at most: a spray from many addresses must not grow the maps without end. */
const maxTracked = 10_000;

/**
 * Slows down password guessing without letting one client lock out others behind the same address
 * (a shared CI runner, NAT):
 * - an account that failed `perAccount` logins from an address within the window is refused from
 *   that address (429 with Retry-After) until the oldest of those failures leaves the window; the
 *   same account from elsewhere, and other accounts from that address, are not;
 * - an address that failed `perAddress` logins in all (a spray over many accounts) is refused for
 *   accounts that have not signed in from it within `knownForMs`, so a correct password of an
 *   account that works from there is never refused because another account failed.
 * Per process: with N replicas a client gets at most N times the guesses.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>();
  private readonly known = new Map<string, number>();

  constructor(
    private readonly limits: ThrottleLimits = defaultThrottleLimits,
    private readonly clock: Clock = systemClock,
  ) {}

  private recent(key: string): number[] {
    const cutoff = this.clock.now() - this.limits.windowMs;
    const kept = (this.failures.get(key) ?? []).filter((time) => time > cutoff);
    if (kept.length === 0) this.failures.delete(key);
    else this.failures.set(key, kept);
    return kept;
  }

  private wait(recent: number[], limit: number): number {
    if (recent.length < limit) return 0;
    return Math.max(1, Math.ceil((recent[recent.length - limit]! + this.limits.windowMs - this.clock.now()) / 1000));
  }

  /** Seconds until the account may try again from the address, and why; 0 when it may now. */
  retryAfter(address: string, account: string): { seconds: number; reason: string } {
    const own = this.wait(this.recent(pairKey(address, account)), this.limits.perAccount);
    if (own > 0) return { seconds: own, reason: `too many failed logins of ${account} from this address` };
    const knownAt = this.known.get(pairKey(address, account));
    if (knownAt !== undefined && knownAt > this.clock.now() - this.limits.knownForMs) return { seconds: 0, reason: '' };
    const all = this.wait(this.recent(addressKey(address)), this.limits.perAddress);
    return all > 0 ? { seconds: all, reason: 'too many failed logins from this address' } : { seconds: 0, reason: '' };
  }

  failed(address: string, account: string): void {
    const now = this.clock.now();
    for (const key of [pairKey(address, account), addressKey(address)]) this.failures.set(key, [...this.recent(key), now]);
    if (this.failures.size > maxTracked) for (const key of [...this.failures.keys()]) this.recent(key);
  }

  succeeded(address: string, account: string): void {
    const key = pairKey(address, account);
    this.failures.delete(key);
    this.known.delete(key);
    this.known.set(key, this.clock.now());
    if (this.known.size > maxTracked) this.known.delete(this.known.keys().next().value as string);
  }
}

function pairKey(address: string, account: string): string {
  return `account\0${address}\0${account}`;
}

function addressKey(address: string): string {
  return `address\0${address}`;
}
