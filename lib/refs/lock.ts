/**
 * Lock files, git style: `<target>.lock` created with O_EXCL marks an update in
 * progress; the new content is published by an atomic rename onto the target.
 *
 * The lock file always holds its owner `{pid, hostname, time, nonce}` so a
 * lock left behind by a crashed process can be recognised and broken: when the
 * owner ran on this host and its pid no longer exists (kill(pid, 0) -> ESRCH),
 * or (opt-in) when it is older than `staleMs`. To keep that information for
 * the whole life of the lock, `write()` stages the new content in a sibling
 * file `<target>.lock~<nonce>` (fsynced) and `commit()` renames it onto the
 * target, fsyncs the directory, then removes the lock. Readers see the old or
 * the new target, never a partial one. The '~' makes every helper file an
 * invalid ref name, so ref listings can never mistake one for a ref.
 *
 * Breaking a stale lock is serialised by a second, short-lived lock
 * (`<target>.lock~break`, held for a few syscalls) and done by renaming the
 * stale file aside after re-checking it is byte-identical to the one judged
 * stale, so two breakers can never both win and a fresh lock is never broken.
 *
 * @example
 * const lock = await LockFile.acquire('.coral/refs/heads/main');
 * try { await lock.write(id + '\n'); await lock.commit(); } finally { await lock.release(); }
 * // or: await withLock(path, async (lock) => { await lock.write(data); await lock.commit(); });
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError, LockedError, invalidParameter } from '../errors';
import { fsyncDir, ioError } from '../util/fsutil';
import { pidAlive } from '../util/process';
import { waitNotice } from '../util/waits';

export interface LockOptions {
  /** How long to wait for a held lock before LockedError (default 10000 ms; 0 = try once). */
  timeoutMs?: number;
  /**
   * Also treat locks older than this as stale (default: never by age). Only
   * safe when no legitimate holder can take that long; pid-based detection is
   * always on for locks taken on this host.
   */
  staleMs?: number;
}

/** What a lock file contains. */
export interface LockOwner {
  pid: number;
  hostname: string;
  /** ms since epoch when the lock was taken. */
  time: number;
  nonce: string;
}

/** A lock file that is empty or unparseable (owner died between create and write) is stale after this. */
const UNREADABLE_GRACE_MS = 5000;
const DEFAULT_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function parseOwner(raw: string): LockOwner | null {
  try {
    const o = JSON.parse(raw) as Partial<LockOwner>;
    if (
      o &&
      typeof o.pid === 'number' &&
      typeof o.hostname === 'string' &&
      typeof o.time === 'number' &&
      typeof o.nonce === 'string'
    )
      return o as LockOwner;
  } catch {
    /* fallthrough */
  }
  return null;
}

/** Liveness of a lock owner: one definition for all of coral (lib/util/process.ts). */
export { pidAlive };

interface Observed {
  raw: string;
  owner: LockOwner | null;
  mtimeMs: number;
}

async function observe(p: string): Promise<Observed | null> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(p, 'r');
    const st = await fh.stat();
    const raw = (await fh.readFile()).toString('utf8');
    return { raw, owner: parseOwner(raw), mtimeMs: st.mtimeMs };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError(e, 'read lock', p);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

function isStale(o: Observed, staleMs: number | undefined): boolean {
  const now = Date.now();
  if (!o.owner) return now - o.mtimeMs > UNREADABLE_GRACE_MS;
  if (!pidAlive(o.owner.pid, o.owner.hostname)) return true;
  return staleMs !== undefined && now - Math.max(o.owner.time, 0) > staleMs;
}

function holderText(o: LockOwner | null): string {
  return o ? `pid ${o.pid} on ${o.hostname} since ${new Date(o.time).toISOString()}` : 'an unknown process';
}

function newOwner(): LockOwner {
  return { pid: process.pid, hostname: os.hostname(), time: Date.now(), nonce: randomBytes(8).toString('hex') };
}

/** Creates `p` exclusively with the owner JSON. Returns the raw content, or null if `p` exists. */
async function createExclusive(p: string, owner: LockOwner): Promise<string | null> {
  const raw = JSON.stringify(owner);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(p, 'wx', 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return null;
    if (code === 'ENOENT') {
      await fsp.mkdir(path.dirname(p), { recursive: true }).catch((e2) => {
        throw ioError(e2, 'mkdir', path.dirname(p));
      });
      return createExclusive(p, owner);
    }
    throw ioError(e, 'create lock', p);
  }
  try {
    await fh.writeFile(raw);
  } finally {
    await fh.close();
  }
  return raw;
}

/**
 * Breaks the lock at `lockPath` if it still has content `raw`. Serialised by
 * `<lock>~break`; returns when done or when another process is breaking it.
 */
async function breakStale(lockPath: string, raw: string): Promise<void> {
  const breakPath = `${lockPath}~break`;
  const mine = newOwner();
  const created = await createExclusive(breakPath, mine);
  if (created === null) {
    // Someone else is breaking; their break lock lives for a few syscalls unless they died.
    const b = await observe(breakPath);
    if (b && isStale(b, 30_000)) {
      const aside = `${breakPath}~${mine.nonce}`;
      try {
        await fsp.rename(breakPath, aside);
        const moved = await observe(aside);
        if (moved && moved.raw !== b.raw) await fsp.link(aside, breakPath).catch(() => undefined);
        await fsp.unlink(aside).catch(() => undefined);
      } catch {
        /* lost a race with another cleaner: fine */
      }
    }
    return;
  }
  try {
    const cur = await observe(lockPath);
    if (!cur || cur.raw !== raw) return; // already broken or re-taken by a live owner
    const aside = `${lockPath}~stale-${mine.nonce}`;
    try {
      await fsp.rename(lockPath, aside);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw ioError(e, 'break stale lock', lockPath);
    }
    const moved = await observe(aside);
    // Only possible if a break lock was itself wrongly broken: put a live lock back.
    if (moved && moved.raw !== raw) await fsp.link(aside, lockPath).catch(() => undefined);
    await fsp.unlink(aside).catch(() => undefined);
    if (cur.owner) await fsp.unlink(`${lockPath}~${cur.owner.nonce}`).catch(() => undefined);
  } finally {
    await fsp.unlink(breakPath).catch(() => undefined);
  }
}

export class LockFile {
  /** The file this lock protects. */
  readonly targetPath: string;
  /** `<target>.lock` */
  readonly lockPath: string;
  readonly owner: LockOwner;
  private readonly raw: string;
  private staged: string | null = null;
  private state: 'held' | 'committed' | 'released' = 'held';

  private constructor(targetPath: string, owner: LockOwner, raw: string) {
    this.targetPath = targetPath;
    this.lockPath = `${targetPath}.lock`;
    this.owner = owner;
    this.raw = raw;
  }

  /**
   * Takes the lock on `targetPath`, waiting with jittered exponential backoff
   * up to `timeoutMs`; then LockedError naming the lock file and its holder.
   * Missing parent directories are created.
   */
  static async acquire(targetPath: string, opts: LockOptions = {}): Promise<LockFile> {
    if (typeof targetPath !== 'string' || !targetPath)
      throw invalidParameter('targetPath', 'non-empty string', targetPath);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0))
      throw invalidParameter('timeoutMs', 'number >= 0', timeoutMs);
    const staleMs = opts.staleMs;
    if (staleMs !== undefined && (typeof staleMs !== 'number' || !(staleMs >= 0)))
      throw invalidParameter('staleMs', 'number >= 0', staleMs);
    const lockPath = `${targetPath}.lock`;
    const deadline = Date.now() + timeoutMs;
    let delay = 2;
    let last: Observed | null = null;
    let breaks = 0;
    const notice = waitNotice(() => `${lockPath} (held by ${holderText(last?.owner ?? null)})`, timeoutMs);
    for (;;) {
      const owner = newOwner();
      const raw = await createExclusive(lockPath, owner);
      if (raw !== null) return new LockFile(targetPath, owner, raw);
      const seen = await observe(lockPath);
      if (seen === null) continue; // released between our attempts: retry at once
      last = seen;
      if (isStale(seen, staleMs)) {
        await breakStale(lockPath, seen.raw);
        // Retry at once (even past the deadline: the holder is gone), but bounded.
        if (breaks++ < 50) {
          if (breaks > 1) await sleep(2);
          continue;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const o = last.owner;
        const who = holderText(o);
        throw new LockedError(
          `Could not lock ${targetPath}: ${lockPath} is held by ${who} (waited ${timeoutMs} ms). ` +
            `If no coral process is running, delete ${lockPath}.`,
          { lockPath, target: targetPath, pid: o?.pid, hostname: o?.hostname, time: o?.time },
        );
      }
      notice.tick();
      await sleep(Math.min(left, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, 200);
    }
  }

  /** True until commit() or release(). */
  get held(): boolean {
    return this.state === 'held';
  }

  /** Stages the new content of the target (fsynced). May be called again to replace it. */
  async write(data: Uint8Array | string): Promise<void> {
    this.mustHold('write');
    if (typeof data !== 'string' && !(data instanceof Uint8Array))
      throw invalidParameter('data', 'Uint8Array or string', data);
    const staged = `${this.lockPath}~${this.owner.nonce}`;
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(staged, 'w', 0o644);
      await fh.writeFile(data);
      await fh.sync();
    } catch (e) {
      throw ioError(e, 'write', staged);
    } finally {
      await fh?.close().catch(() => undefined);
    }
    this.staged = staged;
  }

  /** Publishes the written content: atomic rename onto the target, directory fsync, unlock. */
  async commit(): Promise<void> {
    this.mustHold('commit');
    if (this.staged === null) throw new InvalidArgumentError(`commit of ${this.lockPath} without write()`);
    try {
      await fsp.rename(this.staged, this.targetPath);
    } catch (e) {
      throw ioError(e, 'commit lock onto', this.targetPath);
    }
    this.staged = null;
    this.state = 'committed';
    try {
      await fsyncDir(path.dirname(this.targetPath));
    } finally {
      await this.unlinkOwnLock();
    }
  }

  /** Drops the lock without touching the target. Idempotent. */
  async release(): Promise<void> {
    if (this.state !== 'held') return;
    this.state = 'released';
    if (this.staged) await fsp.unlink(this.staged).catch(() => undefined);
    this.staged = null;
    await this.unlinkOwnLock();
  }

  private async unlinkOwnLock(): Promise<void> {
    // Never remove a lock that is no longer ours (possible only if broken by staleMs).
    const cur = await observe(this.lockPath);
    if (cur && cur.raw === this.raw) await fsp.unlink(this.lockPath).catch(() => undefined);
  }

  private mustHold(op: string): void {
    if (this.state !== 'held') throw new InvalidArgumentError(`${op} on ${this.lockPath} after it was ${this.state}`);
  }
}

/**
 * Runs `fn` while holding the lock on `targetPath`; the lock is released
 * afterwards unless `fn` committed it.
 */
export async function withLock<T>(
  targetPath: string,
  fn: (lock: LockFile) => Promise<T>,
  opts?: LockOptions,
): Promise<T> {
  const lock = await LockFile.acquire(targetPath, opts);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}
