/**
 * Writer sessions and the gc exclusion protocol.
 *
 * Anything that may make an object reachable (add, commit, merge, tag) runs
 * inside a writer session; gc runs exclusively. The protocol is a two-flag
 * handshake over files, so it needs no OS locks:
 *   writer: create sessions/<id> (pid, host), THEN look for gc.lock; if present,
 *           remove the session, wait, retry.
 *   gc:     create gc.lock (O_EXCL), THEN list sessions; wait until none is
 *           live (dead holders on this host are swept), else give up.
 * Whichever side creates its flag second sees the other's, so a writer can
 * never rely on an object (e.g. deduplicate against it) while gc is deciding
 * what to delete. Writers run concurrently with each other.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LockedError } from '../errors';
import { pidAlive } from '../util/process';
import { lockTimeoutMs, waitNotice } from '../util/waits';
import type { RepoLayout } from '../layout';

interface Holder {
  pid: number;
  host: string;
  time: number;
  what: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(h: Holder): boolean {
  return pidAlive(h.pid, h.host);
}

function readHolder(p: string): Holder | null {
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8')) as Holder;
  } catch {
    return null;
  }
}

/** "coral add, pid 42 on host" for messages. */
function describeHolder(p: string): string {
  const h = readHolder(p);
  return h ? `${h.what ? `coral ${h.what}, ` : ''}pid ${h.pid} on ${h.host}` : 'holder unknown';
}

function holder(what: string): string {
  return JSON.stringify({ pid: process.pid, host: os.hostname(), time: Date.now(), what });
}

/** Removes a lock/session file whose holder process is gone. Returns true if removed. */
function sweepIfDead(p: string): boolean {
  const h = readHolder(p);
  if (h && alive(h)) return false;
  if (!h) {
    // Unreadable: a holder mid-write, or a crash before writing. Only sweep old ones.
    try {
      if (Date.now() - fs.statSync(p).mtimeMs < 10_000) return false;
    } catch {
      return true;
    }
  }
  try {
    fs.unlinkSync(p);
  } catch {
    /* someone else swept it */
  }
  return true;
}

export class WriterSession {
  private constructor(private readonly file: string) {}

  static async begin(
    layout: RepoLayout,
    what: string,
    timeoutMs = lockTimeoutMs(layout.coral),
  ): Promise<WriterSession> {
    fs.mkdirSync(layout.sessions, { recursive: true });
    const deadline = Date.now() + timeoutMs;
    const notice = waitNotice(() => `gc to finish (${layout.gcLock}, ${describeHolder(layout.gcLock)})`, timeoutMs);
    for (let attempt = 0; ; attempt++) {
      const file = path.join(layout.sessions, `${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
      fs.writeFileSync(file, holder(what), { flag: 'wx' });
      if (!fs.existsSync(layout.gcLock) || sweepIfDead(layout.gcLock)) return new WriterSession(file);
      fs.unlinkSync(file);
      if (Date.now() > deadline)
        throw new LockedError(`gc is running on this repository (${layout.gcLock}); try again when it finishes`, {
          lock: layout.gcLock,
        });
      notice.tick();
      await sleep(Math.min(500, 20 * 2 ** Math.min(attempt, 5)));
    }
  }

  end(): void {
    try {
      fs.unlinkSync(this.file);
    } catch {
      /* already gone */
    }
  }
}

export class GcLock {
  private constructor(private readonly file: string) {}

  /** Takes the gc lock and waits until no writer session is live. */
  static async acquire(layout: RepoLayout, timeoutMs = lockTimeoutMs(layout.coral)): Promise<GcLock> {
    fs.mkdirSync(layout.sessions, { recursive: true });
    try {
      fs.writeFileSync(layout.gcLock, holder('gc'), { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!sweepIfDead(layout.gcLock))
        throw new LockedError(`another gc holds ${layout.gcLock}`, { lock: layout.gcLock });
      fs.writeFileSync(layout.gcLock, holder('gc'), { flag: 'wx' });
    }
    const lock = new GcLock(layout.gcLock);
    const deadline = Date.now() + timeoutMs;
    let live: string[] = [];
    const notice = waitNotice(
      () =>
        `${live.length} active writer session(s) in ${layout.sessions} (${live.map((f) => describeHolder(path.join(layout.sessions, f))).join('; ')})`,
      timeoutMs,
    );
    for (;;) {
      live = fs.readdirSync(layout.sessions).filter((f) => !sweepIfDead(path.join(layout.sessions, f)));
      if (live.length === 0) return lock;
      if (Date.now() > deadline) {
        lock.release();
        throw new LockedError(`gc waited ${timeoutMs} ms for ${live.length} active writer(s); try again later`, {
          sessions: live,
        });
      }
      notice.tick();
      await sleep(100);
    }
  }

  release(): void {
    try {
      fs.unlinkSync(this.file);
    } catch {
      /* gone */
    }
  }
}
