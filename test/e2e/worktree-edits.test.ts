// Regression tests for issue #10: the worktree never loses an edit (checkout, rm,
// commit during a merge, branch -f) and the commands around it behave as in git
// (checkout <rev>, `.` as a pathspec, reset modes, commit -a, rm -r/--cached).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, ok, sha256, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });

function repoDir(): string {
  const d = tmpdir('coral-wt-');
  dirs.push(d);
  ok(d, ['init']);
  return d;
}

/** A small safetensors checkpoint whose bytes depend on `seed`. */
function ckpt(file: string, seed: number): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, {
    w: { dtype: 'F32', shape: [32, 8], data: f32(weights(256, seed)) },
    b: { dtype: 'F32', shape: [8], data: f32(weights(8, seed + 1)) },
  });
  return sha256(file);
}

function commit(d: string, msg: string, ...files: string[]): string {
  ok(d, ['add', ...(files.length ? files : ['.'])]);
  return JSON.parse(ok(d, ['commit', '-m', msg, '--json'])).id;
}

const status = (d: string) => JSON.parse(ok(d, ['status', '--json']));
const head = (d: string) => JSON.parse(ok(d, ['log', '--json', '-n', '1']))[0];

describe('checkout keeps or refuses, never loses (#10.1)', () => {
  it('checkout -b, of the current branch, of another branch and of a commit carry an edit to a file that is the same in both', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'b.safetensors');
    ckpt(A, 1);
    ckpt(B, 2);
    const c1 = commit(d, 'one');
    ok(d, ['branch', 'other']);
    ckpt(B, 3);
    commit(d, 'two', 'b.safetensors');
    const edit = ckpt(A, 9); // unstaged edit of a file equal in every commit here

    const out = ok(d, ['checkout', '-b', 'feature']);
    expect(sha256(A)).toBe(edit);
    expect(out).toContain('M\ta.safetensors');
    ok(d, ['checkout', 'feature']); // the current branch
    expect(sha256(A)).toBe(edit);
    ok(d, ['checkout', 'other']); // b differs, a does not
    expect(sha256(A)).toBe(edit);
    ok(d, ['checkout', c1]); // a commit (detached)
    expect(sha256(A)).toBe(edit);
    expect(status(d).files).toEqual([{ path: 'a.safetensors', staged: null, unstaged: 'modified' }]);

    // A staged edit is carried too (index entry and file).
    ok(d, ['checkout', 'main']);
    ok(d, ['add', 'a.safetensors']);
    ok(d, ['checkout', 'other']);
    expect(sha256(A)).toBe(edit);
    expect(status(d).files).toEqual([{ path: 'a.safetensors', staged: 'modified', unstaged: null }]);
  });

  it('refuses, before writing anything, when a changed path has a local change (unstaged, staged or untracked); -f overwrites', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'b.safetensors');
    ckpt(A, 1);
    ckpt(B, 2);
    commit(d, 'one');
    ok(d, ['checkout', '-b', 'side']);
    ckpt(A, 3);
    ckpt(B, 4);
    const n = path.join(d, 'new.safetensors');
    ckpt(n, 5);
    commit(d, 'side');
    ok(d, ['checkout', 'main']);
    expect(fs.existsSync(n)).toBe(false);

    // unstaged edit of a (which differs between main and side): refused, nothing written
    const ea = ckpt(A, 7);
    const hb = sha256(B);
    let r = coral(d, ['checkout', 'side']);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/a\.safetensors.*CORAL_DIRTY_WORKTREE/);
    expect(sha256(A)).toBe(ea);
    expect(sha256(B)).toBe(hb);
    expect(JSON.parse(ok(d, ['branch', '--json'])).find((b: { current: boolean }) => b.current).name).toBe('main');

    // staged edit: refused too
    ok(d, ['add', 'a.safetensors']);
    fs.writeFileSync(path.join(d, 'scratch'), 'x'); // unrelated untracked file: no obstacle
    expect(coral(d, ['checkout', 'side']).code).toBe(6);
    expect(sha256(A)).toBe(ea);
    ok(d, ['reset', '--hard']);

    // untracked file where the target puts one: refused
    const en = ckpt(n, 8);
    r = coral(d, ['checkout', 'side']);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('new.safetensors');
    expect(sha256(n)).toBe(en);
    ok(d, ['checkout', '-f', 'side']);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);
    expect(fs.readFileSync(path.join(d, 'scratch'), 'utf8')).toBe('x');
  });
});

describe('checkout <rev>, pathspec "." (#10.5, #10.6)', () => {
  it('checkout HEAD~1, HEAD^, main~1 detach; a branch name wins', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const h1 = ckpt(A, 1);
    const c1 = commit(d, 'one');
    ckpt(A, 2);
    commit(d, 'two');
    for (const rev of ['HEAD~1', 'main~1', 'HEAD^']) {
      ok(d, ['checkout', 'main']);
      expect(ok(d, ['checkout', rev])).toContain('HEAD is now at');
      expect(sha256(A)).toBe(h1);
      expect(status(d)).toMatchObject({ branch: null, head: c1 });
    }
    ok(d, ['checkout', 'main']);
    expect(status(d).branch).toBe('main');
    ok(d, ['checkout', 'HEAD']); // stays on the branch, as in git
    expect(status(d).branch).toBe('main');
  });

  it('checkout -b on an unborn branch keeps the staged files', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const h = ckpt(A, 1);
    ok(d, ['add', 'a.safetensors']);
    expect(ok(d, ['checkout', '-b', 'dev'])).toContain("Switched to a new branch 'dev'");
    expect(status(d)).toMatchObject({
      branch: 'dev',
      head: null,
      files: [{ path: 'a.safetensors', staged: 'added', unstaged: null }],
    });
    expect(sha256(A)).toBe(h);
  });

  it('"." at the root works for checkout <rev> -- ., diff -- . and reset .', () => {
    const d = repoDir();
    const A = path.join(d, 'sub', 'a.safetensors');
    const h1 = ckpt(A, 1);
    commit(d, 'one');
    ckpt(A, 2);
    expect(JSON.parse(ok(d, ['diff', '--json', '--', '.'])).map((f: { path: string }) => f.path)).toEqual([
      'sub/a.safetensors',
    ]);
    ok(d, ['add', '.']);
    ok(d, ['reset', '.']);
    expect(status(d).files).toEqual([{ path: 'sub/a.safetensors', staged: null, unstaged: 'modified' }]);
    ok(d, ['checkout', 'HEAD', '--', '.']);
    expect(sha256(A)).toBe(h1);
    // From a subdirectory, '.' is that directory.
    ckpt(A, 3);
    expect(JSON.parse(ok(path.join(d, 'sub'), ['diff', '--json', '--', '.'])).length).toBe(1);
  });
});

describe('rm (#10.2, #10.8)', () => {
  it('refuses to delete local modifications without -f; --cached untracks; -r for directories', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'dir', 'b.safetensors');
    ckpt(A, 1);
    ckpt(B, 2);
    commit(d, 'one');
    const ea = ckpt(A, 3);
    let r = coral(d, ['rm', 'a.safetensors']);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('local modifications');
    expect(sha256(A)).toBe(ea);
    // staged but matching the file: rm refuses (changes staged), --cached is fine
    ok(d, ['add', 'a.safetensors']);
    expect(coral(d, ['rm', 'a.safetensors']).stderr).toContain('staged');
    // staged content matches neither HEAD nor the file: --cached refuses too
    const eb = ckpt(A, 4);
    expect(coral(d, ['rm', '--cached', 'a.safetensors']).code).toBe(6);
    ckpt(A, 3);
    ok(d, ['rm', '--cached', 'a.safetensors']);
    expect(sha256(A)).toBe(ea);
    expect(status(d).untracked).toContain('a.safetensors');
    expect(eb).not.toBe(ea);

    r = coral(d, ['rm', 'dir']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('-r');
    expect(fs.existsSync(B)).toBe(true);
    expect(ok(d, ['rm', '-r', 'dir'])).toContain("rm 'dir/b.safetensors'");
    expect(fs.existsSync(B)).toBe(false);
    expect(coral(d, ['rm', 'nothing-here']).code).toBe(2);

    // -f removes a modified file
    commit(d, 'two', '.');
    ckpt(A, 5);
    ok(d, ['rm', '-f', 'a.safetensors']);
    expect(fs.existsSync(A)).toBe(false);
  });
});

describe('commit during a merge, merge --continue -m (#10.3)', () => {
  function diverged(d: string) {
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'b.safetensors');
    ckpt(A, 1);
    ckpt(B, 2);
    commit(d, 'base');
    ok(d, ['checkout', '-b', 'feat']);
    ckpt(B, 3);
    const t = commit(d, 'theirs');
    ok(d, ['checkout', 'main']);
    ckpt(A, 4);
    const o = commit(d, 'ours');
    return { o, t, A, B };
  }

  it('commit after merge --no-commit makes a two-parent commit and clears the merge', () => {
    const d = repoDir();
    const { o, t } = diverged(d);
    ok(d, ['merge', 'feat', '--no-commit']);
    expect(status(d).merging).toBe(true);
    const out = ok(d, ['commit']); // message defaults to the merge's
    expect(out).toContain('Merge feat into main');
    const h = head(d);
    expect(h.commit.parents).toEqual([o, t]);
    expect(status(d)).toMatchObject({ merging: false, files: [] });
    expect(fs.existsSync(path.join(d, '.coral', 'MERGE_STATE'))).toBe(false);
    expect(coral(d, ['merge', '--abort']).code).not.toBe(0); // nothing left to abort
  });

  it('commit -m during a merge uses that message; merge --continue -m prints it', () => {
    const d = repoDir();
    const { o, t } = diverged(d);
    ok(d, ['merge', 'feat', '--no-commit']);
    ok(d, ['commit', '-m', 'my merge']);
    expect(head(d).commit).toMatchObject({ message: 'my merge\n', parents: [o, t] });

    const d2 = repoDir();
    diverged(d2);
    ok(d2, ['merge', 'feat', '--no-commit']);
    expect(ok(d2, ['merge', '--continue', '-m', 'continued merge'])).toMatch(/\] continued merge\n$/);
  });

  it('commit refuses while conflicts are unresolved; add marks them resolved', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    ckpt(A, 1);
    commit(d, 'base');
    ok(d, ['checkout', '-b', 'feat']);
    ckpt(A, 2);
    commit(d, 'theirs');
    ok(d, ['checkout', 'main']);
    ckpt(A, 3);
    commit(d, 'ours');
    const m = coral(d, ['merge', 'feat', '--no-commit']);
    expect(m.code).toBe(5);
    const r = coral(d, ['commit', '-m', 'x']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('unresolved');
    expect(status(d).merging).toBe(true);
    ckpt(A, 4);
    ok(d, ['add', 'a.safetensors']);
    ok(d, ['commit', '-m', 'resolved by hand']);
    expect(head(d).commit.parents).toHaveLength(2);
  });
});

describe('branch -f on the checked-out branch (#10.4)', () => {
  it('refuses, leaving HEAD and the index alone', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    ckpt(A, 1);
    commit(d, 'one');
    ckpt(A, 2);
    const c2 = commit(d, 'two');
    const r = coral(d, ['branch', '-f', 'main', 'HEAD~1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("cannot force update the branch 'main'");
    expect(status(d)).toMatchObject({ head: c2, files: [] });
    ok(d, ['branch', 'other']);
    ok(d, ['branch', '-f', 'other', 'HEAD~1']); // another branch may move
  });
});

describe('reset (#10.7)', () => {
  it('--soft, --mixed, --hard move the branch with a reflog line; a missing path is an error', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const h1 = ckpt(A, 1);
    const c1 = commit(d, 'one');
    const h2 = ckpt(A, 2);
    const c2 = commit(d, 'two');

    ok(d, ['reset', '--soft', 'HEAD~1']);
    expect(status(d)).toMatchObject({
      head: c1,
      files: [{ path: 'a.safetensors', staged: 'modified', unstaged: null }],
    });
    expect(sha256(A)).toBe(h2);
    const reflog = fs.readFileSync(path.join(d, '.coral', 'logs', 'refs', 'heads', 'main'), 'utf8');
    expect(reflog).toContain('reset: moving to HEAD~1');

    ok(d, ['reset', '--soft', c2]);
    ok(d, ['reset', 'HEAD~1']); // mixed
    expect(status(d)).toMatchObject({
      head: c1,
      files: [{ path: 'a.safetensors', staged: null, unstaged: 'modified' }],
    });
    expect(sha256(A)).toBe(h2);

    ok(d, ['add', 'a.safetensors']);
    ok(d, ['reset', 'HEAD']); // unstage everything
    expect(status(d).files).toEqual([{ path: 'a.safetensors', staged: null, unstaged: 'modified' }]);

    ok(d, ['reset', '--hard', c2]);
    expect(status(d)).toMatchObject({ head: c2, files: [] });
    expect(sha256(A)).toBe(h2);
    ok(d, ['reset', '--hard', 'HEAD~1']);
    expect(sha256(A)).toBe(h1);

    const r = coral(d, ['reset', 'no-such-file']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('did not match');
    expect(coral(d, ['reset', '--hard', '--', 'a.safetensors']).code).toBe(2);
  });

  it('reset with a corrupt index rebuilds it from HEAD', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const h1 = ckpt(A, 1);
    commit(d, 'one');
    fs.writeFileSync(path.join(d, '.coral', 'index'), 'garbage{');
    expect(coral(d, ['status']).code).not.toBe(0);
    ok(d, ['reset']);
    expect(status(d).files).toEqual([]);
    expect(sha256(A)).toBe(h1);
  });
});

describe('commit -a (#10.8)', () => {
  it('stages modifications and deletions of tracked files, not untracked ones', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'b.safetensors');
    ckpt(A, 1);
    ckpt(B, 2);
    commit(d, 'one');
    const ea = ckpt(A, 3);
    fs.rmSync(B);
    ckpt(path.join(d, 'new.safetensors'), 4);
    ok(d, ['commit', '-a', '-m', 'all']);
    const st = status(d);
    expect(st.files).toEqual([]);
    expect(st.untracked).toEqual(['new.safetensors']);
    const show = JSON.parse(ok(d, ['show', 'HEAD', '--json']));
    expect(Object.keys(show.files)).toEqual(['a.safetensors']);
    expect(show.files['a.safetensors'].sha256).toBe(ea);
  });
});

describe('checkout -- <path> restores the staged version (git checkout -- <path>)', () => {
  it('discards unstaged edits only, keeps the staged change, and refuses an unknown path', () => {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'b.safetensors');
    const a1 = ckpt(A, 1);
    ckpt(B, 2);
    commit(d, 'one');
    const b2 = ckpt(B, 5);
    ok(d, ['add', 'b.safetensors']); // staged change
    ckpt(B, 6); // then an unstaged edit on top
    ckpt(A, 7); // and an unstaged edit of a clean file
    const out = ok(d, ['checkout', '--', '.']);
    expect(out).toContain('Updated 2 path(s) from the index');
    expect(sha256(A)).toBe(a1);
    expect(sha256(B)).toBe(b2); // the staged version, not HEAD's
    expect(status(d).files).toEqual([{ path: 'b.safetensors', staged: 'modified', unstaged: null }]);
    const r = coral(d, ['checkout', '--', 'missing.safetensors']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('CORAL_INVALID_ARGUMENT');
  });
});
