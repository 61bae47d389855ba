import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError, LockedError } from '../../../lib/errors';
import { LockFile, pidAlive, withLock } from '../../../lib/refs';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-lock-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** A pid that existed a moment ago and no longer does. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const pid = Number(r.stdout.toString());
  expect(pidAlive(pid)).toBe(false);
  return pid;
}

describe('LockFile', () => {
  it('creates <target>.lock with the owner, commits atomically and unlocks', async () => {
    const target = path.join(root, 'ref');
    await fsp.writeFile(target, 'old\n');
    const lock = await LockFile.acquire(target);
    const owner = JSON.parse(await fsp.readFile(`${target}.lock`, 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, hostname: os.hostname() });
    expect(typeof owner.time).toBe('number');
    await lock.write('new\n');
    expect(await fsp.readFile(target, 'utf8')).toBe('old\n'); // not visible before commit
    await lock.commit();
    expect(await fsp.readFile(target, 'utf8')).toBe('new\n');
    expect((await fsp.readdir(root)).sort()).toEqual(['ref']);
    expect(lock.held).toBe(false);
    await expect(lock.write('x')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('release leaves the target untouched and removes staged content', async () => {
    const target = path.join(root, 'cfg');
    const lock = await LockFile.acquire(target);
    await lock.write('x');
    await lock.release();
    await lock.release(); // idempotent
    expect(await fsp.readdir(root)).toEqual([]);
  });

  it('commit without write is an error', async () => {
    const lock = await LockFile.acquire(path.join(root, 't'));
    await expect(lock.commit()).rejects.toBeInstanceOf(InvalidArgumentError);
    await lock.release();
  });

  it('creates missing parent directories', async () => {
    const target = path.join(root, 'refs', 'heads', 'feature', 'x');
    await withLock(target, async (l) => {
      await l.write('1\n');
      await l.commit();
    });
    expect(await fsp.readFile(target, 'utf8')).toBe('1\n');
  });

  it('times out with LockedError naming the lock and the holder pid', async () => {
    const target = path.join(root, 't');
    const held = await LockFile.acquire(target);
    const t0 = Date.now();
    const err = await LockFile.acquire(target, { timeoutMs: 300 }).catch((e) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
    expect(err).toBeInstanceOf(LockedError);
    expect(err.code).toBe(LockedError.code);
    expect(err.message).toContain(`${target}.lock`);
    expect(err.message).toContain(`pid ${process.pid}`);
    expect(err.data).toMatchObject({ lockPath: `${target}.lock`, pid: process.pid });
    await held.release();
    await (await LockFile.acquire(target, { timeoutMs: 0 })).release();
  });

  it('waits for a live holder and gets the lock when it is released', async () => {
    const target = path.join(root, 't');
    const held = await LockFile.acquire(target);
    setTimeout(() => void held.release(), 150);
    const lock = await LockFile.acquire(target, { timeoutMs: 5000 });
    expect(lock.held).toBe(true);
    await lock.release();
  });

  it('breaks a stale lock left by a dead process on this host', async () => {
    const target = path.join(root, 't');
    const pid = deadPid();
    const nonce = 'deadbeefdeadbeef';
    await fsp.writeFile(`${target}.lock`, JSON.stringify({ pid, hostname: os.hostname(), time: Date.now(), nonce }));
    await fsp.writeFile(`${target}.lock~${nonce}`, 'half-written'); // its staged content
    const lock = await LockFile.acquire(target, { timeoutMs: 0 });
    expect(JSON.parse(await fsp.readFile(`${target}.lock`, 'utf8')).pid).toBe(process.pid);
    await lock.write('ok');
    await lock.commit();
    expect(await fsp.readdir(root)).toEqual(['t']);
  });

  it('recovers from a holder killed with SIGKILL mid-update (target untouched)', async () => {
    const target = path.join(root, 'ref');
    await fsp.writeFile(target, 'old\n');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'lock-holder.ts'), target], {
      cwd: path.resolve(__dirname, '../../..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
      child.on('exit', (code) => reject(new Error(`holder exited early (${code})`)));
    });
    await expect(LockFile.acquire(target, { timeoutMs: 100 })).rejects.toBeInstanceOf(LockedError);
    child.removeAllListeners('exit');
    const exited = new Promise((r) => child.on('exit', r));
    child.kill('SIGKILL');
    await exited;
    const lock = await LockFile.acquire(target, { timeoutMs: 2000 });
    expect(await fsp.readFile(target, 'utf8')).toBe('old\n');
    await lock.release();
    expect(await fsp.readdir(root)).toEqual(['ref']); // the dead holder's staged file is gone too
  });

  it('many concurrent waiters on a stale lock: exactly one holder at a time', async () => {
    const target = path.join(root, 't');
    await fsp.writeFile(
      `${target}.lock`,
      JSON.stringify({ pid: deadPid(), hostname: os.hostname(), time: 0, nonce: 'x' }),
    );
    let inside = 0;
    let maxInside = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: 12 }, () =>
        withLock(target, async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          await new Promise((r) => setTimeout(r, 3));
          inside--;
          done++;
        }),
      ),
    );
    expect(done).toBe(12);
    expect(maxInside).toBe(1);
    expect(await fsp.readdir(root)).toEqual([]);
  });

  it('does not break a lock of another host unless staleMs says so', async () => {
    const target = path.join(root, 't');
    const owner = { pid: 1, hostname: 'some-other-host.invalid', time: Date.now() - 60_000, nonce: 'n' };
    await fsp.writeFile(`${target}.lock`, JSON.stringify(owner));
    await expect(LockFile.acquire(target, { timeoutMs: 50 })).rejects.toBeInstanceOf(LockedError);
    const lock = await LockFile.acquire(target, { timeoutMs: 50, staleMs: 30_000 });
    await lock.release();
  });

  it('breaks an unreadable lock (crash between create and write) only when old', async () => {
    const target = path.join(root, 't');
    await fsp.writeFile(`${target}.lock`, '');
    await expect(LockFile.acquire(target, { timeoutMs: 50 })).rejects.toBeInstanceOf(LockedError);
    const past = new Date(Date.now() - 60_000);
    await fsp.utimes(`${target}.lock`, past, past);
    await (await LockFile.acquire(target, { timeoutMs: 50 })).release();
  });

  it('withLock releases when fn throws', async () => {
    const target = path.join(root, 't');
    await expect(
      withLock(target, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await fsp.readdir(root)).toEqual([]);
  });

  it('validates options', async () => {
    await expect(LockFile.acquire(path.join(root, 't'), { timeoutMs: -1 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(LockFile.acquire('')).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
