// Helpers for gc-vs-writer tests: versions of a small checkpoint, a gc loop in
// other processes, and a checkout of every commit.
import * as path from 'node:path';
import { expect } from 'vitest';
import { coral, coralAsync, f32, sha256, weights } from '../helpers/cli';

/** Version `i` of a checkpoint: `shared` is the same in every version, `w` and `small` change. */
export function version(i: number, n = 4096): Record<string, { dtype: string; shape: number[]; data: Uint8Array }> {
  return {
    shared: { dtype: 'F32', shape: [n], data: f32(weights(n, 7)) },
    w: { dtype: 'F32', shape: [n], data: f32(weights(n, 1000 + i)) },
    small: { dtype: 'F32', shape: [16], data: f32(weights(16, 5000 + i)) },
  };
}

/** Runs `coral gc --prune=now` in a loop, each run in a new process. */
export function gcLoop(cwd: string, extra: string[] = []) {
  let stopped = false;
  let started = 0;
  const finished: number[] = []; // start sequence numbers of finished rounds
  const failures: string[] = [];
  const waiters: Array<() => void> = [];
  const loop = (async () => {
    while (!stopped) {
      const seq = started++;
      const r = await coralAsync(cwd, ['gc', '--prune=now', ...extra]);
      // LockedError (a writer held a session too long) is not a failure of the protocol.
      if (r.code !== 0 && !/CORAL_LOCKED/.test(r.stderr)) failures.push(r.stderr);
      finished.push(seq);
      for (const w of waiters.splice(0)) w();
    }
  })();
  return {
    rounds: () => finished.length,
    /** Resolves once a gc round that started after this call has finished. */
    async waitFresh(): Promise<void> {
      const from = started;
      while (!finished.some((s) => s >= from)) {
        if (failures.length) throw new Error(`gc failed: ${failures[0]}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    async stop(): Promise<void> {
      stopped = true;
      await loop;
      expect(failures).toEqual([]);
    },
  };
}

/** Checks out each commit (detached, forced) and compares the file with the bytes committed. */
export async function checkoutEveryCommit(
  dir: string,
  commits: Array<{ id: string; sha: string }>,
  file = 'm.safetensors',
): Promise<void> {
  for (const c of commits) {
    const r = coral(dir, ['checkout', '-f', '--detach', c.id]);
    expect(r.code, r.stderr).toBe(0);
    expect(sha256(path.join(dir, file))).toBe(c.sha);
  }
}
