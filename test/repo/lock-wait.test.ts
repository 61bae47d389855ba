// Waits for a lock held by a live process: announced on a TTY after ~1 s,
// bounded by one setting (core.lockTimeout / CORAL_LOCK_TIMEOUT) (issue #11).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CORAL_BIN, coral, f32, ok, ROOT, tmpdir, weights, writeSafetensors } from '../helpers/cli';
import { lockTimeoutMs, setWaitReporter, waitNotice } from '../../lib/util/waits';

const HOLDER = path.join(ROOT, 'test', 'unit', 'refs', 'lock-holder.ts');
const dirs: string[] = [];
const kids: ChildProcess[] = [];
afterEach(() => {
  for (const k of kids.splice(0)) k.kill('SIGKILL');
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** A live process holding `<target>.lock`. */
async function holdLock(target: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, ['--import', 'tsx', HOLDER, target], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  kids.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
    p.on('exit', (c) => reject(new Error(`lock holder exited ${c}`)));
  });
  return p;
}

function repoWithFile(): string {
  const d = tmpdir('coral-wait-');
  dirs.push(d);
  ok(d, ['init']);
  writeSafetensors(path.join(d, 'm.safetensors'), { w: { dtype: 'F32', shape: [256], data: f32(weights(256, 1)) } });
  return d;
}

describe('waiting for a lock held by a live process', () => {
  it('says what it waits on, on a TTY only, and gives up after CORAL_LOCK_TIMEOUT', async () => {
    const d = repoWithFile();
    const holder = await holdLock(path.join(d, '.coral', 'index'));
    const env = { ...process.env, CORAL_LOCK_TIMEOUT: '2', NO_COLOR: '1' };
    // On a pseudo-terminal (script(1)): one line naming the lock and its holder.
    const t0 = Date.now();
    const tty = spawnSync('script', ['-qec', `${process.execPath} ${CORAL_BIN} add m.safetensors`, '/dev/null'], {
      cwd: d,
      env,
      encoding: 'utf8',
    });
    const took = Date.now() - t0;
    expect(tty.stdout).toMatch(
      new RegExp(`coral: waiting for \\S+index\\.lock \\(held by pid ${holder.pid} on .*\\); giving up after 2 s`),
    );
    expect(tty.stdout).toMatch(/CORAL_LOCKED/);
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(15_000);
    // Not a TTY: no new output besides the error.
    const r = coral(d, ['add', 'm.safetensors'], { CORAL_LOCK_TIMEOUT: '1' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/waiting for/);
    expect(r.stderr).toMatch(/CORAL_LOCKED/);
  });

  it('core.lockTimeout bounds the wait (the index lock waited 120 s before)', async () => {
    const d = repoWithFile();
    ok(d, ['config', 'core.lockTimeout', '1']);
    expect(lockTimeoutMs(path.join(d, '.coral'))).toBe(1000);
    await holdLock(path.join(d, '.coral', 'index'));
    const t0 = Date.now();
    const r = coral(d, ['add', 'm.safetensors']);
    expect(r.stderr).toMatch(/CORAL_LOCKED/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('the notice goes through the reporter once, after about a second', async () => {
    const got: string[] = [];
    const prev = setWaitReporter((m) => got.push(m));
    try {
      const n = waitNotice(() => 'x.lock', 5000);
      n.tick();
      expect(got).toEqual([]);
      await new Promise((r) => setTimeout(r, 1050));
      n.tick();
      n.tick();
      expect(got).toEqual(['waiting for x.lock; giving up after 5 s (core.lockTimeout, CORAL_LOCK_TIMEOUT)']);
    } finally {
      setWaitReporter(prev);
    }
  });
});

describe('lockTimeoutMs', () => {
  it('env wins over config; an invalid config value falls back to the default, an invalid env value throws', () => {
    const d = tmpdir('coral-wait-');
    dirs.push(d);
    ok(d, ['init']);
    const coralDir = path.join(d, '.coral');
    const saved = process.env.CORAL_LOCK_TIMEOUT;
    try {
      delete process.env.CORAL_LOCK_TIMEOUT;
      expect(lockTimeoutMs(coralDir)).toBe(60_000);
      // Written directly: `coral config` may validate values on write.
      const setRaw = (v: unknown) => {
        const file = path.join(coralDir, 'config');
        const cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as { core: Record<string, unknown> };
        cfg.core.lockTimeout = v;
        fs.writeFileSync(file, JSON.stringify(cfg));
      };
      setRaw('banana');
      expect(lockTimeoutMs(coralDir)).toBe(60_000);
      setRaw(2.5);
      expect(lockTimeoutMs(coralDir)).toBe(2500);
      process.env.CORAL_LOCK_TIMEOUT = '0';
      expect(lockTimeoutMs(coralDir)).toBe(0);
      process.env.CORAL_LOCK_TIMEOUT = 'soon';
      expect(() => lockTimeoutMs(coralDir)).toThrow(/CORAL_LOCK_TIMEOUT/);
    } finally {
      if (saved === undefined) delete process.env.CORAL_LOCK_TIMEOUT;
      else process.env.CORAL_LOCK_TIMEOUT = saved;
    }
  });
});
