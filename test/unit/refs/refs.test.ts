import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  CorruptObjectError,
  InvalidArgumentError,
  NotARepositoryError,
  RefConflictError,
  RefNotFoundError,
} from '../../../lib/errors';
import type { Signature } from '../../../lib/models';
import { checkRefName, checkShortRefName, isValidRefName, RefStore, ZERO_ID } from '../../../lib/refs';

const H = (c: string) => c.repeat(64).slice(0, 64);
const WHO: Signature = { name: 'Ada L', email: 'ada@example.com', timestamp: 1_790_000_000, tzOffset: -330 };

let root: string;
let refs: RefStore;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-refs-'));
  refs = new RefStore(root);
  await refs.setHeadSymbolic('refs/heads/main');
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('RefStore', () => {
  it('starts unborn on main', async () => {
    expect(await fsp.readFile(path.join(root, 'HEAD'), 'utf8')).toBe('ref: refs/heads/main\n');
    expect(await refs.readHead()).toEqual({ kind: 'symbolic', target: 'refs/heads/main' });
    expect(await refs.resolveHead()).toBeNull();
    expect(await refs.readRef('refs/heads/main')).toBeNull();
    expect(await refs.readReflog('HEAD')).toEqual([]); // no zero->zero line for an unborn HEAD
  });

  it('missing HEAD is NotARepositoryError', async () => {
    await expect(new RefStore(path.join(root, 'nope')).readHead()).rejects.toBeInstanceOf(NotARepositoryError);
  });

  it('creates, fast-forwards and logs in git format (branch and HEAD)', async () => {
    await refs.updateRef('refs/heads/main', H('1'), { expectedOld: null, message: 'commit (initial): init', who: WHO });
    await refs.updateRef('refs/heads/main', H('2'), {
      expectedOld: H('1'),
      message: 'commit: two\nsecond line',
      who: WHO,
    });
    expect(await fsp.readFile(path.join(root, 'refs', 'heads', 'main'), 'utf8')).toBe(`${H('2')}\n`);
    expect(await refs.resolveHead()).toBe(H('2'));
    expect(await refs.readRef('HEAD')).toBe(H('2'));
    const log = await fsp.readFile(path.join(root, 'logs', 'refs', 'heads', 'main'), 'utf8');
    expect(log).toBe(
      `${ZERO_ID} ${H('1')} Ada L <ada@example.com> 1790000000 -0530\tcommit (initial): init\n` +
        `${H('1')} ${H('2')} Ada L <ada@example.com> 1790000000 -0530\tcommit: two second line\n`,
    );
    expect(await fsp.readFile(path.join(root, 'logs', 'HEAD'), 'utf8')).toBe(log);
    expect(await refs.readReflog('refs/heads/main')).toEqual([
      { oldId: null, newId: H('1'), who: WHO, message: 'commit (initial): init' },
      { oldId: H('1'), newId: H('2'), who: WHO, message: 'commit: two second line' },
    ]);
  });

  it('compare-and-swap conflicts carry both ids', async () => {
    await refs.updateRef('refs/heads/main', H('1'), { expectedOld: null, message: 'a' });
    const e1 = await refs.updateRef('refs/heads/main', H('2'), { expectedOld: null, message: 'b' }).catch((e) => e);
    expect(e1).toBeInstanceOf(RefConflictError);
    expect(e1.code).toBe(RefConflictError.code);
    expect(e1.data).toEqual({ ref: 'refs/heads/main', expected: null, actual: H('1') });
    const e2 = await refs.updateRef('refs/heads/main', H('2'), { expectedOld: H('3'), message: 'b' }).catch((e) => e);
    expect(e2.data).toEqual({ ref: 'refs/heads/main', expected: H('3'), actual: H('1') });
    expect(await refs.readRef('refs/heads/main')).toBe(H('1'));
    expect(await refs.readReflog('refs/heads/main')).toHaveLength(1);
    // undefined = unconditional
    await refs.updateRef('refs/heads/main', H('4'), { message: 'force' });
    expect(await refs.readRef('refs/heads/main')).toBe(H('4'));
    expect(await fsp.readdir(path.join(root, 'refs', 'heads'))).toEqual(['main']); // no lock litter
  });

  it('only logs HEAD for the branch HEAD is on', async () => {
    await refs.updateRef('refs/heads/other', H('1'), { expectedOld: null, message: 'branch: created' });
    expect(await refs.readReflog('refs/heads/other')).toHaveLength(1);
    expect(await refs.readReflog('HEAD')).toHaveLength(0);
  });

  it('updateRef("HEAD") moves the current branch, or HEAD itself when detached', async () => {
    await refs.updateRef('HEAD', H('1'), { expectedOld: null, message: 'c1' });
    expect(await refs.readRef('refs/heads/main')).toBe(H('1'));
    await refs.setHeadDetached(H('1'), { message: 'checkout: moving from main to 1111', who: WHO });
    expect(await fsp.readFile(path.join(root, 'HEAD'), 'utf8')).toBe(`${H('1')}\n`);
    expect(await refs.readHead()).toEqual({ kind: 'detached', id: H('1') });
    expect(await refs.currentBranch()).toBeNull();
    await refs.updateRef('HEAD', H('2'), { expectedOld: H('1'), message: 'commit: detached' });
    expect(await refs.resolveHead()).toBe(H('2'));
    expect(await refs.readRef('refs/heads/main')).toBe(H('1'));
    await expect(refs.updateRef('HEAD', H('3'), { expectedOld: H('1'), message: 'x' })).rejects.toBeInstanceOf(
      RefConflictError,
    );
    await refs.setHeadSymbolic('refs/heads/main');
    const headLog = await refs.readReflog('HEAD');
    expect(headLog.map((e) => [e.oldId, e.newId])).toEqual([
      [null, H('1')],
      [H('1'), H('1')],
      [H('1'), H('2')],
      [H('2'), H('1')],
    ]);
    expect(headLog[1].message).toBe('checkout: moving from main to 1111');
    expect(headLog[3].message).toBe('checkout: moving to refs/heads/main');
  });

  it('lists nested refs sorted, ignoring locks and helper files', async () => {
    for (const n of [
      'refs/heads/main',
      'refs/heads/feature/x',
      'refs/heads/feature/y/z',
      'refs/tags/v1',
      'refs/heads/a',
    ])
      await refs.updateRef(n, H('1'), { expectedOld: null, message: 'create' });
    await fsp.writeFile(path.join(root, 'refs', 'heads', 'wip.lock'), '{}');
    await fsp.writeFile(path.join(root, 'refs', 'heads', 'main.lock~abc'), 'x');
    expect((await refs.listRefs('refs/heads/')).map((r) => r.name)).toEqual([
      'refs/heads/a',
      'refs/heads/feature/x',
      'refs/heads/feature/y/z',
      'refs/heads/main',
    ]);
    expect(await refs.listRefs('refs/tags')).toEqual([{ name: 'refs/tags/v1', id: H('1') }]);
    expect((await refs.listRefs()).length).toBe(5);
    expect(await refs.listRefs('refs/remotes/')).toEqual([]);
    await expect(refs.listRefs('heads/')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('deletes refs with CAS, drops their reflog and empty directories', async () => {
    await refs.updateRef('refs/heads/feature/x', H('1'), { expectedOld: null, message: 'create' });
    await expect(refs.deleteRef('refs/heads/feature/x', H('2'))).rejects.toBeInstanceOf(RefConflictError);
    await refs.deleteRef('refs/heads/feature/x', H('1'));
    expect(await refs.readRef('refs/heads/feature/x')).toBeNull();
    expect(await refs.readReflog('refs/heads/feature/x')).toEqual([]);
    await expect(refs.deleteRef('refs/heads/feature/x')).rejects.toBeInstanceOf(RefNotFoundError);
    await expect(refs.deleteRef('HEAD')).rejects.toBeInstanceOf(InvalidArgumentError);
    // the directory is gone, so 'feature' can now be a branch itself
    await refs.updateRef('refs/heads/feature', H('2'), { expectedOld: null, message: 'create' });
    expect(await refs.readRef('refs/heads/feature')).toBe(H('2'));
  });

  it('refuses file/directory ref conflicts', async () => {
    await refs.updateRef('refs/heads/a/b', H('1'), { expectedOld: null, message: 'create' });
    await expect(refs.updateRef('refs/heads/a', H('1'), { expectedOld: null, message: 'x' })).rejects.toBeInstanceOf(
      AlreadyExistsError,
    );
    await refs.updateRef('refs/heads/c', H('1'), { expectedOld: null, message: 'create' });
    await expect(refs.updateRef('refs/heads/c/d', H('1'), { message: 'x' })).rejects.toBeInstanceOf(AlreadyExistsError);
  });

  it('reports corrupt refs and HEAD; ignores a torn reflog tail', async () => {
    await fsp.mkdir(path.join(root, 'refs', 'heads'), { recursive: true });
    await fsp.writeFile(path.join(root, 'refs', 'heads', 'bad'), 'not an id\n');
    await expect(refs.readRef('refs/heads/bad')).rejects.toBeInstanceOf(CorruptObjectError);
    await refs.updateRef('refs/heads/main', H('1'), { expectedOld: null, message: 'ok', who: WHO });
    await fsp.appendFile(path.join(root, 'logs', 'refs', 'heads', 'main'), `${H('1')} ${H('2')} Ada <a`);
    expect(await refs.readReflog('refs/heads/main')).toHaveLength(1);
    await fsp.appendFile(path.join(root, 'logs', 'refs', 'heads', 'main'), `\ngarbage\n`);
    await expect(refs.readReflog('refs/heads/main')).rejects.toBeInstanceOf(CorruptObjectError);
    await fsp.writeFile(path.join(root, 'HEAD'), 'ref: ../../etc\n');
    await expect(refs.readHead()).rejects.toBeInstanceOf(CorruptObjectError);
  });

  it('validates ids and options', async () => {
    await expect(refs.updateRef('refs/heads/main', 'abc', { message: 'x' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(refs.updateRef('refs/heads/main', H('1'), { message: 'x', expectedOld: 'zz' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(refs.updateRef('refs/heads/main', H('1'), {} as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(refs.setHeadSymbolic('main')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(refs.setHeadDetached('HEAD')).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  describe('ref name validation (git check-ref-format)', () => {
    it.each([
      'refs/heads/main',
      'refs/heads/feature/x',
      'refs/tags/v1.0.0',
      'refs/heads/a-b_c',
      'refs/heads/ü',
      'HEAD',
      'refs/heads/x.lockx',
      'refs/heads/a@b',
    ])('accepts %j', (n) => {
      expect(isValidRefName(n)).toBe(true);
      expect(checkRefName(n)).toBe(n);
    });
    it.each([
      'main',
      'refs/',
      'refs/heads/a..b',
      'refs/heads/a b',
      'refs/heads/a~1',
      'refs/heads/a^',
      'refs/heads/a:b',
      'refs/heads/a?',
      'refs/heads/a*',
      'refs/heads/a[',
      'refs/heads/a\\b',
      'refs/heads/x.lock',
      'refs/heads/x.lock/y',
      'refs/heads/.hidden',
      'refs/heads/a/.b',
      'refs/heads/a.',
      'refs/heads//a',
      'refs/heads/a/',
      'refs/heads/a@{1}',
      'refs/heads/tab\t',
      'refs/heads/nul\0',
      'refs/heads/del\x7f',
      '/refs/heads/a',
      '-refs/heads/a',
      '',
    ])('rejects %j', async (n) => {
      expect(isValidRefName(n)).toBe(false);
      expect(() => checkRefName(n)).toThrow(InvalidArgumentError);
      await expect(refs.updateRef(n, H('1'), { message: 'x' })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(refs.readRef(n)).rejects.toBeInstanceOf(InvalidArgumentError);
    });
    it('short names', () => {
      expect(checkShortRefName('feature/x')).toBe('feature/x');
      for (const n of ['-b', 'HEAD', 'a..b', '@', 'x.lock', ''])
        expect(() => checkShortRefName(n)).toThrow(InvalidArgumentError);
    });
  });
});

describe('concurrent updates in one process', () => {
  it('serialise on the lock: 20 unconditional updates leave a consistent chained reflog', async () => {
    const enc = (n: number) => n.toString(16).padStart(64, '0');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => refs.updateRef('refs/heads/main', enc(i + 1), { message: `u${i}` })),
    );
    const log = await refs.readReflog('refs/heads/main');
    expect(log).toHaveLength(20);
    for (let i = 1; i < log.length; i++) expect(log[i].oldId).toBe(log[i - 1].newId);
    expect(await refs.readRef('refs/heads/main')).toBe(log[19].newId);
    expect(await refs.readReflog('HEAD')).toEqual(log);
  });
});

describe('compare-and-swap across processes', () => {
  it('4 processes x 25 increments: no lost update, 100 reflog entries', async () => {
    const WORKERS = 4;
    const N = 25;
    const worker = path.join(__dirname, 'cas-worker.ts');
    const ref = 'refs/heads/counter';
    const run = promisify(execFile);
    const startAt = String(Date.now() + 2500);
    const outs = await Promise.all(
      Array.from({ length: WORKERS }, (_, w) =>
        run(process.execPath, ['--import', 'tsx', worker, root, ref, String(N), String(w), startAt], {
          cwd: path.resolve(__dirname, '../../..'),
          timeout: 90_000,
        }),
      ),
    );
    const conflicts = outs.reduce((s, o) => s + JSON.parse(o.stdout).conflicts, 0);
    const final = await refs.readRef(ref);
    expect(parseInt(final!, 16)).toBe(WORKERS * N);
    const log = await refs.readReflog(ref);
    expect(log).toHaveLength(WORKERS * N);
    // The reflog is a chain: each entry starts where the previous ended, counting 0..100.
    log.forEach((e, i) => {
      expect(e.oldId === null ? 0 : parseInt(e.oldId, 16)).toBe(i);
      expect(parseInt(e.newId!, 16)).toBe(i + 1);
    });
    const perWorker = new Map<string, number>();
    for (const e of log) perWorker.set(e.who.name, (perWorker.get(e.who.name) ?? 0) + 1);
    expect([...perWorker.values()]).toEqual(Array(WORKERS).fill(N));
    expect((await fsp.readdir(path.join(root, 'refs', 'heads'))).sort()).toEqual(['counter']);
    console.log(`CAS: ${WORKERS * N} updates, ${conflicts} conflicts retried`);
  });
});
