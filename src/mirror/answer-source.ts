import { AsyncLocalStorage } from 'node:async_hooks';

/** Where a mirrored answer came from, for the request's log line. */
export type MirrorAnswer = 'cache' | 'upstream' | 'stale';

/** A request that asked the upstream was answered from it, and one served stale is worth knowing first. */
const weight: Record<MirrorAnswer, number> = { cache: 0, upstream: 1, stale: 2 };

const current = new AsyncLocalStorage<{ answer?: MirrorAnswer }>();

/** Runs a request with a place for the mirror to say where its answer came from. */
export function withMirrorAnswer<T>(holder: { answer?: MirrorAnswer }, run: () => Promise<T>): Promise<T> {
  return current.run(holder, run);
}

/** Called where the mirror counts a hit, a miss or a stale answer. */
export function noteMirrorAnswer(answer: MirrorAnswer): void {
  const holder = current.getStore();
  if (holder && (holder.answer === undefined || weight[answer] > weight[holder.answer])) holder.answer = answer;
}
