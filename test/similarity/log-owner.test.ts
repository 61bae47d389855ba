// Compaction deletes an absorbed, unsealed log only when its writer is known
// dead (one pidAlive for all of coral, lib/util/process.ts): a live writer's
// log, or one of a writer on another host, survives another process's cleanup.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprintSync } from '../../lib/similarity/fingerprint';
import { SimilarityStore } from '../../lib/similarity/index-file';
import { pidAlive } from '../../lib/util/process';
import { pidAlive as lockPidAlive } from '../../lib/refs/lock';
import { tensor } from '../../lib/tensor/tensor';
import { Rng, trainedLike } from './families';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const host = () =>
  os
    .hostname()
    .replace(/[^A-Za-z0-9_.]/g, '_')
    .slice(0, 64) || 'host';

describe('similarity-index log ownership', () => {
  it("keeps the unsealed logs of live and other-host writers, removes a dead local writer's", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-simlog-'));
    dirs.push(dir);
    const rng = new Rng(3);
    // A writer session that is still open: its log is unsealed.
    const w = await SimilarityStore.open(dir);
    await w.insert('obj-live', fingerprintSync(tensor('F32', [64, 256], trainedLike(rng, 64, 256))));
    await w.flush();
    const [own] = fs.readdirSync(dir).filter((n) => n.endsWith('.csl'));
    const bytes = fs.readFileSync(path.join(dir, own));
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    try {
      const names = {
        live: `log-1-${host()}-${live.pid}-aa.csl`, // another live process on this host
        remote: `log-1-other.example-${process.pid}-bb.csl`, // a writer on another host
        dead: `log-1-${host()}-${dead}-cc.csl`, // a writer that is gone
      };
      const old = new Date(Date.now() - 3 * 86400_000);
      for (const n of Object.values(names)) {
        fs.writeFileSync(path.join(dir, n), bytes);
        fs.utimesSync(path.join(dir, n), old, old); // idle for days
      }
      // Another process's cleanup: compaction absorbs every log, then deletes finished ones.
      const other = await SimilarityStore.open(dir);
      expect(await other.compact()).toBe(true);
      await other.close({ compact: false });
      const left = new Set(fs.readdirSync(dir));
      expect(left.has(names.live)).toBe(true);
      expect(left.has(names.remote)).toBe(true);
      expect(left.has(names.dead)).toBe(false);
      expect(left.has(own)).toBe(true);
      const again = await SimilarityStore.open(dir);
      expect(
        again.query(fingerprintSync(tensor('F32', [64, 256], trainedLike(new Rng(3), 64, 256))), { k: 1 })[0]?.id,
      ).toBe('obj-live');
      await again.close({ compact: false });
    } finally {
      live.kill();
      await w.close({ compact: false });
    }
  });

  it('one definition: dead only on ESRCH; another host is alive', () => {
    expect(lockPidAlive).toBe(pidAlive);
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(process.pid, os.hostname())).toBe(true);
    expect(pidAlive(spawnSync(process.execPath, ['-e', '0']).pid)).toBe(false);
    expect(pidAlive(999_999_999, 'some-other-host')).toBe(true);
    expect(pidAlive(0)).toBe(false);
  });
});
