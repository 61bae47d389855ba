/**
 * HEAD, branches and tags as loose files under `.coral/`, with git's formats:
 * a ref file holds `<id>\n`; HEAD holds `ref: refs/heads/<b>\n` (on a branch)
 * or `<id>\n` (detached). Every update is a compare-and-swap under the ref's
 * lock file and appends a reflog line under `.coral/logs/<name>` (and
 * `logs/HEAD` when HEAD points at the ref), in git's format:
 * `<old> <new> <name> <<email>> <unix-seconds> <+hhmm>\t<message>`.
 *
 * @example
 * const refs = new RefStore('.coral');
 * await refs.updateRef('refs/heads/main', id, { expectedOld: null, message: 'commit (initial): init' });
 * await refs.resolveHead(); // id
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AlreadyExistsError,
  CorruptObjectError,
  InvalidArgumentError,
  NotARepositoryError,
  RefConflictError,
  RefNotFoundError,
  invalidParameter,
} from '../errors';
import { isSha256Hex } from '../models/canonical';
import { checkRefName, isValidRefName } from '../models/refname';
import { checkSignature, formatTzOffset, parseTzOffset, signatureNow, type Signature } from '../models/signature';
import { ioError, writeFileAtomic } from '../util/fsutil';
import { LockFile } from './lock';
import { lockTimeoutMs } from '../util/waits';

/** The all-zero id reflogs use for "no value" (ref created or deleted). */
export const ZERO_ID = '0'.repeat(64);

export type HeadState = { kind: 'symbolic'; target: string } | { kind: 'detached'; id: string };

export interface ReflogEntry {
  /** Previous value, null when the ref was created. */
  oldId: string | null;
  /** New value, null when the ref was deleted. */
  newId: string | null;
  who: Signature;
  message: string;
}

export interface UpdateRefOptions {
  /** Compare-and-swap: the value the ref must have now. `null` = must not exist; `undefined` = no check. */
  expectedOld?: string | null;
  /** Reflog message, e.g. 'commit: add layer 3'. */
  message: string;
  /** Reflog identity (default: CORAL_COMMITTER_NAME/EMAIL, else the OS user). */
  who?: Signature;
}

export interface HeadUpdateOptions {
  /** Reflog message for logs/HEAD (default 'checkout: moving to <x>'). */
  message?: string;
  who?: Signature;
}

export interface RefStoreOptions {
  /** Lock wait before LockedError (default 10000 ms). */
  lockTimeoutMs?: number;
}

function defaultIdentity(): Signature {
  let user = 'unknown';
  try {
    user = os.userInfo().username || user;
  } catch {
    /* no passwd entry (containers) */
  }
  const clean = (s: string) => s.replace(/[<>\n\r\0]/g, '');
  const name = clean(process.env.CORAL_COMMITTER_NAME ?? process.env.CORAL_AUTHOR_NAME ?? user);
  const email = clean(
    process.env.CORAL_COMMITTER_EMAIL ?? process.env.CORAL_AUTHOR_EMAIL ?? `${user}@${os.hostname()}`,
  );
  return signatureNow(name, email);
}

function checkId(id: unknown, what: string): string {
  if (!isSha256Hex(id)) throw invalidParameter(what, '64 lowercase hex characters', id);
  return id;
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

export class RefStore {
  readonly coralDir: string;
  private readonly lockTimeoutMs: number | undefined;

  constructor(coralDir: string, opts: RefStoreOptions = {}) {
    if (typeof coralDir !== 'string' || !coralDir) throw invalidParameter('coralDir', 'non-empty string', coralDir);
    this.coralDir = coralDir;
    this.lockTimeoutMs = opts.lockTimeoutMs;
  }

  /** Filesystem path of a ref ('HEAD' or 'refs/…'). */
  refPath(name: string): string {
    checkRefName(name);
    return path.join(this.coralDir, ...name.split('/'));
  }

  /** Filesystem path of a ref's reflog. */
  logPath(name: string): string {
    checkRefName(name);
    return path.join(this.coralDir, 'logs', ...name.split('/'));
  }

  /** Current id of a ref, or null if it does not exist. 'HEAD' resolves through a symbolic HEAD. */
  async readRef(name: string): Promise<string | null> {
    checkRefName(name);
    if (name === 'HEAD') return this.resolveHead();
    return this.readRefFile(name);
  }

  private async readRefFile(name: string): Promise<string | null> {
    const file = this.refPath(name);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      const c = errno(e);
      if (c === 'ENOENT' || c === 'ENOTDIR' || c === 'EISDIR') return null;
      throw ioError(e, 'read ref', file);
    }
    const m = /^([0-9a-f]{64})\n?$/.exec(text);
    if (!m)
      throw new CorruptObjectError(`ref ${name} (${file}) does not contain an object id`, { ref: name, path: file });
    return m[1];
  }

  /** HEAD as stored: on a branch (symbolic) or detached at an id. NotARepositoryError if HEAD is missing. */
  async readHead(): Promise<HeadState> {
    const file = path.join(this.coralDir, 'HEAD');
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      const c = errno(e);
      if (c === 'ENOENT' || c === 'ENOTDIR')
        throw new NotARepositoryError(`${this.coralDir} has no HEAD file; is this a coral repository?`, { path: file });
      throw ioError(e, 'read', file);
    }
    return this.parseHead(text, file);
  }

  private parseHead(text: string, file: string): HeadState {
    const sym = /^ref: (\S+)\n?$/.exec(text);
    if (sym && isValidRefName(sym[1]) && sym[1] !== 'HEAD') return { kind: 'symbolic', target: sym[1] };
    const id = /^([0-9a-f]{64})\n?$/.exec(text);
    if (id) return { kind: 'detached', id: id[1] };
    throw new CorruptObjectError(`HEAD (${file}) is neither 'ref: refs/…' nor an object id`, { path: file });
  }

  /** The commit HEAD points at, or null on an unborn branch. */
  async resolveHead(): Promise<string | null> {
    const h = await this.readHead();
    return h.kind === 'detached' ? h.id : this.readRefFile(h.target);
  }

  /** The branch HEAD is on ('refs/heads/main'), or null when detached. */
  async currentBranch(): Promise<string | null> {
    const h = await this.readHead();
    return h.kind === 'symbolic' ? h.target : null;
  }

  /** Points HEAD at a branch (which need not exist yet: unborn). Logged in logs/HEAD. */
  async setHeadSymbolic(target: string, opts: HeadUpdateOptions = {}): Promise<void> {
    checkRefName(target, 'HEAD target');
    if (target === 'HEAD') throw new InvalidArgumentError('HEAD cannot point at itself');
    await this.writeHead(`ref: ${target}\n`, () => this.readRefFile(target), target, opts);
  }

  /** Detaches HEAD at a commit id. Logged in logs/HEAD. */
  async setHeadDetached(id: string, opts: HeadUpdateOptions = {}): Promise<void> {
    checkId(id, 'id');
    await this.writeHead(`${id}\n`, async () => id, id, opts);
  }

  private async writeHead(
    content: string,
    newValue: () => Promise<string | null>,
    shown: string,
    opts: HeadUpdateOptions,
  ) {
    const file = path.join(this.coralDir, 'HEAD');
    const lock = await LockFile.acquire(file, { timeoutMs: this.lockTimeoutMs ?? lockTimeoutMs(this.coralDir) });
    try {
      let oldId: string | null = null;
      try {
        oldId = await this.resolveHead();
      } catch (e) {
        if (!(e instanceof NotARepositoryError) && !(e instanceof CorruptObjectError)) throw e;
      }
      const newId = await newValue();
      await lock.write(content);
      if (oldId !== null || newId !== null)
        await this.appendReflog('HEAD', {
          oldId,
          newId,
          who: opts.who ?? defaultIdentity(),
          message: opts.message ?? `checkout: moving to ${shown}`,
        });
      await lock.commit();
    } finally {
      await lock.release();
    }
  }

  /**
   * Compare-and-swap update of a ref under its lock file, with a reflog line.
   * `name` 'HEAD' updates the branch HEAD points at (or HEAD itself when
   * detached). RefConflictError (data: ref, expected, actual) when the current
   * value is not `opts.expectedOld`; LockedError when the lock cannot be taken.
   */
  async updateRef(name: string, newId: string, opts: UpdateRefOptions): Promise<void> {
    checkRefName(name);
    checkId(newId, 'newId');
    if (!opts || typeof opts.message !== 'string') throw invalidParameter('opts.message', 'string', opts?.message);
    const { expectedOld } = opts;
    if (expectedOld !== undefined && expectedOld !== null) checkId(expectedOld, 'expectedOld');
    const who = opts.who === undefined ? defaultIdentity() : checkSignature(opts.who, 'who');
    let head: HeadState | null = null;
    try {
      head = await this.readHead();
    } catch (e) {
      if (!(e instanceof NotARepositoryError)) throw e;
    }
    if (name === 'HEAD') {
      if (!head) throw new NotARepositoryError(`${this.coralDir} has no HEAD file`);
      if (head.kind === 'symbolic') name = head.target;
    }
    const logHead = name === 'HEAD' || (head?.kind === 'symbolic' && head.target === name);
    await this.checkNoDirFileConflict(name);
    const lock = await LockFile.acquire(this.refPath(name), {
      timeoutMs: this.lockTimeoutMs ?? lockTimeoutMs(this.coralDir),
    });
    try {
      let cur: string | null;
      if (name === 'HEAD') {
        const h = this.parseHead(await fsp.readFile(this.refPath('HEAD'), 'utf8'), this.refPath('HEAD'));
        if (h.kind === 'symbolic')
          throw new RefConflictError(`HEAD moved to ${h.target} during the update; retry`, {
            ref: 'HEAD',
            expected: expectedOld,
            actual: h.target,
          });
        cur = h.id;
      } else {
        cur = await this.readRefFile(name);
      }
      if (expectedOld !== undefined && cur !== expectedOld)
        throw new RefConflictError(
          `ref ${name} is at ${cur ?? '(nothing)'}, expected ${expectedOld ?? '(nothing)'}: it was updated concurrently`,
          { ref: name, expected: expectedOld, actual: cur },
        );
      const entry: ReflogEntry = { oldId: cur, newId, who, message: opts.message };
      // The new value and the reflog lines are independent writes, each fsynced: they run together, and
      // all are settled (none still writing when the lock is released) before the rename publishes the ref.
      const writes = await Promise.allSettled([
        lock.write(`${newId}\n`),
        this.appendReflog(name, entry),
        logHead && name !== 'HEAD' ? this.appendReflog('HEAD', entry) : null,
      ]);
      const failed = writes.find((w): w is PromiseRejectedResult => w.status === 'rejected');
      if (failed) throw failed.reason;
      await lock.commit();
    } finally {
      await lock.release();
    }
  }

  /**
   * Deletes a ref (and its reflog). RefNotFoundError if it does not exist;
   * RefConflictError if `expectedOld` is given and differs.
   */
  async deleteRef(name: string, expectedOld?: string): Promise<void> {
    checkRefName(name);
    if (name === 'HEAD') throw new InvalidArgumentError('HEAD cannot be deleted');
    if (expectedOld !== undefined) checkId(expectedOld, 'expectedOld');
    const file = this.refPath(name);
    const lock = await LockFile.acquire(file, { timeoutMs: this.lockTimeoutMs ?? lockTimeoutMs(this.coralDir) });
    try {
      const cur = await this.readRefFile(name);
      if (cur === null) throw new RefNotFoundError(`ref ${name} does not exist`, { ref: name });
      if (expectedOld !== undefined && cur !== expectedOld)
        throw new RefConflictError(`ref ${name} is at ${cur}, expected ${expectedOld}`, {
          ref: name,
          expected: expectedOld,
          actual: cur,
        });
      try {
        await fsp.unlink(file);
      } catch (e) {
        throw ioError(e, 'delete ref', file);
      }
      await fsp.unlink(this.logPath(name)).catch(() => undefined);
    } finally {
      await lock.release();
    }
    await this.pruneEmptyDirs(path.dirname(file), path.join(this.coralDir, 'refs'));
    await this.pruneEmptyDirs(path.dirname(this.logPath(name)), path.join(this.coralDir, 'logs', 'refs'));
  }

  /** Loose refs under `prefix` ('refs/heads/', 'refs/tags/', 'refs/'), nested dirs included, sorted by name. */
  async listRefs(prefix = 'refs/'): Promise<Array<{ name: string; id: string }>> {
    if (typeof prefix !== 'string' || !(prefix === 'refs' || prefix.startsWith('refs/')))
      throw invalidParameter('prefix', "string starting with 'refs/'", prefix);
    const dirPrefix = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
    const out: Array<{ name: string; id: string }> = [];
    const walk = async (rel: string): Promise<void> => {
      const dir = path.join(this.coralDir, ...rel.split('/'));
      let ents: import('node:fs').Dirent[];
      try {
        ents = await fsp.readdir(dir, { withFileTypes: true });
      } catch (e) {
        const c = errno(e);
        if (c === 'ENOENT' || c === 'ENOTDIR') return;
        throw ioError(e, 'list', dir);
      }
      for (const ent of ents) {
        const name = `${rel}/${ent.name}`;
        if (ent.isDirectory()) {
          if (!ent.name.includes('~')) await walk(name);
        } else if (ent.isFile() && isValidRefName(name)) {
          const id = await this.readRefFile(name);
          if (id !== null) out.push({ name, id });
        }
      }
    };
    await walk(dirPrefix);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Reflog of a ref, oldest first. A torn last line (crash mid-append) is ignored. */
  async readReflog(name: string): Promise<ReflogEntry[]> {
    const file = this.logPath(name);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (e) {
      const c = errno(e);
      if (c === 'ENOENT' || c === 'ENOTDIR' || c === 'EISDIR') return [];
      throw ioError(e, 'read reflog', file);
    }
    const lines = text.split('\n');
    const last = lines.pop(); // '' when the file ends with a newline; a torn line otherwise
    void last;
    const out: ReflogEntry[] = [];
    const re = /^([0-9a-f]{64}) ([0-9a-f]{64}) ([^<>\n]*) <([^<>\n]*)> (-?\d+) ([+-]\d{4})\t(.*)$/;
    lines.forEach((line, i) => {
      const m = re.exec(line);
      const tz = m ? parseTzOffset(m[6]) : null;
      if (!m || tz === null || !Number.isSafeInteger(Number(m[5])))
        throw new CorruptObjectError(`reflog ${file} line ${i + 1} is malformed`, { path: file, line: i + 1 });
      out.push({
        oldId: m[1] === ZERO_ID ? null : m[1],
        newId: m[2] === ZERO_ID ? null : m[2],
        who: { name: m[3], email: m[4], timestamp: Number(m[5]), tzOffset: tz },
        message: m[7],
      });
    });
    return out;
  }

  /**
   * Appends one reflog line (O_APPEND, fsynced). Called by updateRef under the
   * ref lock; exposed for callers that log other events on HEAD.
   */
  async appendReflog(name: string, e: ReflogEntry): Promise<void> {
    const file = this.logPath(name);
    const who = checkSignature(e.who, 'who');
    const msg = e.message.replace(/[\r\n]+/g, ' ').trim();
    const line =
      `${e.oldId ?? ZERO_ID} ${e.newId ?? ZERO_ID} ${who.name} <${who.email}> ` +
      `${who.timestamp} ${formatTzOffset(who.tzOffset)}\t${msg}\n`;
    await fsp.mkdir(path.dirname(file), { recursive: true }).catch((err) => {
      throw ioError(err, 'mkdir', path.dirname(file));
    });
    let fh: import('node:fs/promises').FileHandle | undefined;
    try {
      fh = await fsp.open(file, 'a', 0o644);
      await fh.write(line);
      await fh.sync();
    } catch (err) {
      throw ioError(err, 'append reflog', file);
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /**
   * Removes the reflog lines of `name` that name any id in `ids` (as `git
   * reflog expire` does), so history rewritten away (the checkpoint manager's
   * retention, lib/train) stops being a gc root. Runs under the ref's lock; the
   * log is replaced atomically. Returns the number of lines removed.
   */
  async expireReflog(name: string, ids: ReadonlySet<string>): Promise<number> {
    checkRefName(name);
    const file = this.logPath(name);
    const lock = await LockFile.acquire(this.refPath(name), {
      timeoutMs: this.lockTimeoutMs ?? lockTimeoutMs(this.coralDir),
    });
    try {
      let text: string;
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch (e) {
        if (errno(e) === 'ENOENT') return 0;
        throw ioError(e, 'read reflog', file);
      }
      const lines = text.split('\n');
      const torn = lines.pop();
      const kept = lines.filter((l) => {
        const [a, b] = l.split(' ');
        return !ids.has(a) && !ids.has(b);
      });
      const removed = lines.length - kept.length;
      if (removed) await writeFileAtomic(file, kept.map((l) => `${l}\n`).join('') + (torn ?? ''));
      return removed;
    } finally {
      await lock.release();
    }
  }

  /** refs/heads/a cannot coexist with refs/heads/a/b (one would be a file and a directory). */
  private async checkNoDirFileConflict(name: string): Promise<void> {
    if (name === 'HEAD') return;
    const parts = name.split('/');
    for (let i = 2; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      try {
        const st = await fsp.stat(path.join(this.coralDir, ...parts.slice(0, i)));
        if (!st.isDirectory())
          throw new AlreadyExistsError(`cannot create ref ${name}: ref ${prefix} exists`, {
            ref: name,
            conflict: prefix,
          });
      } catch (e) {
        if (e instanceof AlreadyExistsError) throw e;
        if (errno(e) === 'ENOENT') return;
        throw ioError(e, 'stat', prefix);
      }
    }
    try {
      const st = await fsp.stat(this.refPath(name));
      if (st.isDirectory()) {
        const under = (await this.listRefs(name)).map((r) => r.name);
        if (under.length > 0)
          throw new AlreadyExistsError(
            `cannot create ref ${name}: refs exist under it (${under.slice(0, 3).join(', ')})`,
            {
              ref: name,
              conflict: under[0],
            },
          );
        await this.pruneEmptyDirs(this.refPath(name), path.join(this.coralDir, 'refs'));
      }
    } catch (e) {
      if (e instanceof AlreadyExistsError) throw e;
      if (errno(e) !== 'ENOENT') throw ioError(e, 'stat', name);
    }
  }

  /** Removes empty directories from `dir` up to (excluding) `stop`. */
  private async pruneEmptyDirs(dir: string, stop: string): Promise<void> {
    const stopAbs = path.resolve(stop);
    for (let d = path.resolve(dir); d.startsWith(stopAbs + path.sep); d = path.dirname(d)) {
      // Keep the per-kind directories (refs/heads, refs/tags) themselves.
      if (path.dirname(d) === stopAbs) return;
      try {
        await fsp.rmdir(d);
      } catch {
        return; // not empty (or raced with a creator): stop
      }
    }
  }
}
