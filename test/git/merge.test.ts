// git merge / rebase / cherry-pick / stash / worktrees of checkpoints, with the
// real git binary: per-group three-way merge, strategies by config, attribute
// and `coral git resolve`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../../lib/formats/safetensors';
import {
  baseWeights,
  coral,
  coralOk,
  git,
  gitEnv,
  initRepo,
  randomF32,
  run,
  sha256,
  sparseUpdate,
  writeCheckpoint,
  type GitEnv,
  type Weights,
} from './helpers';

const envs: GitEnv[] = [];
function env(): GitEnv {
  const e = gitEnv();
  envs.push(e);
  return e;
}
afterAll(() => {
  for (const e of envs) fs.rmSync(e.root, { recursive: true, force: true });
});

async function load(file: string): Promise<Map<string, Float32Array>> {
  const { tensors } = await readSafetensors(file);
  const out = new Map<string, Float32Array>();
  for (const [k, t] of tensors) out.set(k, new Float32Array(new Uint8Array(t.data).buffer));
  return out;
}

function commitWeights(e: GitEnv, dir: string, w: Weights, msg: string): void {
  writeCheckpoint(path.join(dir, 'model.safetensors'), w);
  git(e, dir, 'add', 'model.safetensors');
  git(e, dir, 'commit', '-q', '-m', msg);
}

/** main and feature diverge from a base; returns the three weight sets. */
function diverge(e: GitEnv, dir: string, ours: (w: Weights) => Weights, theirs: (w: Weights) => Weights) {
  const base: Weights = {
    ...baseWeights(31, 32, 32),
    'a.weight': { shape: [16], data: randomF32(16, 40) },
    'b.weight': { shape: [16], data: randomF32(16, 41) },
    'c.weight': { shape: [16], data: randomF32(16, 42) },
  };
  commitWeights(e, dir, base, 'base');
  git(e, dir, 'checkout', '-q', '-b', 'feature');
  const t = theirs(base);
  commitWeights(e, dir, t, 'theirs');
  git(e, dir, 'checkout', '-q', 'main');
  const o = ours(base);
  commitWeights(e, dir, o, 'ours');
  return { base, o, t };
}

const bump = (w: Weights, name: string, by: number): Weights => ({
  ...w,
  [name]: { shape: w[name].shape, data: w[name].data.map((x) => x + by) },
});

describe('git merge of checkpoints', () => {
  it('merges every one-sided classification by itself', async () => {
    const e = env();
    const dir = initRepo(e);
    const { base, o, t } = diverge(
      e,
      dir,
      (w) => {
        const x = bump(bump(w, 'layer0.weight', 0.5), 'c.weight', 1); // modified-ours, modified-both-same (c)
        delete x['a.weight']; // deleted-ours
        x['ours.new'] = { shape: [4], data: randomF32(4, 50) }; // added-ours
        x['both.new'] = { shape: [4], data: randomF32(4, 52) }; // added-both-same
        return x;
      },
      (w) => {
        const x = bump(bump(w, 'layer1.weight', -0.5), 'c.weight', 1); // modified-theirs
        delete x['b.weight']; // deleted-theirs
        x['theirs.new'] = { shape: [4], data: randomF32(4, 51) }; // added-theirs
        x['both.new'] = { shape: [4], data: randomF32(4, 52) };
        return x;
      },
    );
    const r = run(e, dir, 'git', ['merge', '--no-edit', 'feature']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const m = await load(path.join(dir, 'model.safetensors'));
    expect([...m.keys()].sort()).toEqual(
      ['both.new', 'c.weight', 'layer0.bias', 'layer0.weight', 'layer1.weight', 'ours.new', 'theirs.new'].sort(),
    );
    expect(m.get('layer0.weight')).toEqual(o['layer0.weight'].data);
    expect(m.get('layer1.weight')).toEqual(t['layer1.weight'].data);
    expect(m.get('layer0.bias')).toEqual(base['layer0.bias'].data);
    expect(m.get('c.weight')).toEqual(o['c.weight'].data);
    expect(m.get('theirs.new')).toEqual(t['theirs.new'].data);
    expect(git(e, dir, 'status', '--porcelain')).toBe('');
    // The committed pointer rebuilds the very file in the worktree.
    const h = sha256(path.join(dir, 'model.safetensors'));
    fs.rmSync(path.join(dir, 'model.safetensors'));
    git(e, dir, 'checkout', '--', 'model.safetensors');
    expect(sha256(path.join(dir, 'model.safetensors'))).toBe(h);
  });

  it('leaves a conflict by default and settles it with coral git resolve --strategy', async () => {
    const e = env();
    const dir = initRepo(e);
    const { o, t } = diverge(
      e,
      dir,
      (w) => bump(w, 'layer0.weight', 0.25),
      (w) => bump(bump(w, 'layer0.weight', -0.25), 'layer1.weight', 0.125),
    );
    const r = run(e, dir, 'git', ['merge', '--no-edit', 'feature']);
    expect(r.code).not.toBe(0);
    expect(r.stderr + r.stdout).toMatch(/layer0\.weight: conflict-modify-modify/);
    expect(git(e, dir, 'status', '--porcelain')).toMatch(/^UU model\.safetensors/m);
    // The worktree holds ours with theirs' one-sided change merged in (a valid checkpoint).
    const wt = await load(path.join(dir, 'model.safetensors'));
    expect(wt.get('layer0.weight')).toEqual(o['layer0.weight'].data);
    expect(wt.get('layer1.weight')).toEqual(t['layer1.weight'].data);
    coralOk(e, dir, 'git', 'resolve', 'model.safetensors', '--strategy', 'average');
    expect(git(e, dir, 'status', '--porcelain')).toMatch(/^M {2}model\.safetensors/m);
    git(e, dir, 'commit', '-q', '--no-edit');
    const m = await load(path.join(dir, 'model.safetensors'));
    const avg = o['layer0.weight'].data.map((x, i) => (x + t['layer0.weight'].data[i]) / 2);
    const got = m.get('layer0.weight')!;
    for (let i = 0; i < avg.length; i++) expect(Math.abs(got[i] - avg[i])).toBeLessThan(1e-6);
    expect(m.get('layer1.weight')).toEqual(t['layer1.weight'].data);
    expect(git(e, dir, 'status', '--porcelain')).toBe('');
  });

  it('settles conflicts by git config coral.mergeStrategy, by attribute, and resolve --theirs', async () => {
    const e = env();
    const dir = initRepo(e);
    const { o, t } = diverge(
      e,
      dir,
      (w) => bump(w, 'layer0.weight', 0.25),
      (w) => bump(w, 'layer0.weight', -0.25),
    );
    // config
    git(e, dir, 'config', 'coral.mergeStrategy', 'theirs');
    expect(run(e, dir, 'git', ['merge', '--no-edit', 'feature']).code).toBe(0);
    expect((await load(path.join(dir, 'model.safetensors'))).get('layer0.weight')).toEqual(t['layer0.weight'].data);
    git(e, dir, 'reset', '-q', '--hard', 'HEAD~1');
    // attribute beats config
    coralOk(e, dir, 'git', 'track', '*.safetensors', '--strategy', 'weighted:alpha=0.75');
    expect(fs.readFileSync(path.join(dir, '.gitattributes'), 'utf8')).toMatch(
      /^\*\.safetensors filter=coral diff=coral merge=coral -text coral-strategy=weighted:alpha=0\.75$/m,
    );
    const r = run(e, dir, 'git', ['merge', '--no-edit', 'feature']);
    expect(r.code, r.stderr).toBe(0);
    const got = (await load(path.join(dir, 'model.safetensors'))).get('layer0.weight')!;
    const want = o['layer0.weight'].data.map((x, i) => 0.75 * x + 0.25 * t['layer0.weight'].data[i]);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
    git(e, dir, 'reset', '-q', '--hard', 'HEAD~1');
    // fail again, then --theirs
    git(e, dir, 'checkout', '-q', '.gitattributes');
    git(e, dir, 'config', '--unset', 'coral.mergeStrategy');
    expect(run(e, dir, 'git', ['merge', '--no-edit', 'feature']).code).not.toBe(0);
    const bad = coral(e, dir, 'git', 'resolve', 'model.safetensors');
    expect(bad.code).toBe(2);
    coralOk(e, dir, 'git', 'resolve', 'model.safetensors', '--theirs');
    git(e, dir, 'commit', '-q', '--no-edit');
    expect((await load(path.join(dir, 'model.safetensors'))).get('layer0.weight')).toEqual(t['layer0.weight'].data);
  });

  it('coral git mergetool writes candidates, scores them with --eval and picks the best', async () => {
    const e = env();
    const dir = initRepo(e);
    const { o, t } = diverge(
      e,
      dir,
      (w) => bump(w, 'layer0.weight', 0.25),
      (w) => bump(w, 'layer0.weight', -0.25),
    );
    expect(run(e, dir, 'git', ['merge', '--no-edit', 'feature']).code).not.toBe(0);
    const out = path.join(e.root, 'cands');
    const score = 'case $CORAL_CANDIDATE_STRATEGY in average) echo "loss 0.5";; *) echo "loss 2";; esac';
    const r = JSON.parse(
      coralOk(
        e,
        dir,
        'git',
        'mergetool',
        'model.safetensors',
        '--try',
        'ours,average',
        '--try',
        'weighted:alpha=0.9',
        '--out',
        out,
        '--eval',
        score,
        '--minimize',
        '--json',
      ),
    );
    expect(r.candidates.map((c: { spec: string; score: number }) => [c.spec, c.score])).toEqual([
      ['ours', 2],
      ['average', 0.5],
      ['weighted:alpha=0.9', 2],
    ]);
    expect(r.next).toBe('coral git resolve model.safetensors --strategy average');
    expect(fs.existsSync(path.join(out, 'average', 'model.safetensors'))).toBe(true);
    // Nothing changed yet: still conflicted.
    expect(git(e, dir, 'status', '--porcelain')).toMatch(/^UU /m);
    coralOk(
      e,
      dir,
      'git',
      'mergetool',
      'model.safetensors',
      '--try',
      'ours,average',
      '--out',
      out,
      '--eval',
      score,
      '--minimize',
      '--pick',
    );
    git(e, dir, 'commit', '-q', '--no-edit');
    const got = (await load(path.join(dir, 'model.safetensors'))).get('layer0.weight')!;
    const avg = o['layer0.weight'].data.map((x, i) => (x + t['layer0.weight'].data[i]) / 2);
    for (let i = 0; i < avg.length; i++) expect(Math.abs(got[i] - avg[i])).toBeLessThan(1e-6);
  });

  it('rebase, cherry-pick and stash carry checkpoint changes', async () => {
    const e = env();
    const dir = initRepo(e);
    const f = path.join(dir, 'model.safetensors');
    const { o, t } = diverge(
      e,
      dir,
      (w) => bump(w, 'layer0.weight', 0.5),
      (w) => sparseUpdate(w, 'layer1.weight', 0.02, 9),
    );
    // rebase feature onto main: both changes in the result, replayed by the merge driver.
    git(e, dir, 'checkout', '-q', 'feature');
    const r = run(e, dir, 'git', ['rebase', 'main']);
    expect(r.code, r.stderr).toBe(0);
    let m = await load(f);
    expect(m.get('layer0.weight')).toEqual(o['layer0.weight'].data);
    expect(m.get('layer1.weight')).toEqual(t['layer1.weight'].data);
    expect(git(e, dir, 'status', '--porcelain')).toBe('');
    // cherry-pick a later feature commit onto main.
    commitWeights(e, dir, { ...bump(t, 'layer0.bias', 1), 'layer0.weight': o['layer0.weight'] }, 'bias');
    const pick = git(e, dir, 'rev-parse', 'HEAD').trim();
    git(e, dir, 'checkout', '-q', 'main');
    expect(run(e, dir, 'git', ['cherry-pick', pick]).code).toBe(0);
    m = await load(f);
    expect(m.get('layer0.bias')).toEqual(t['layer0.bias'].data.map((x) => x + 1));
    expect(m.get('layer0.weight')).toEqual(o['layer0.weight'].data);
    // stash and pop a worktree change.
    const before = sha256(f);
    writeCheckpoint(f, bump(o, 'layer1.weight', 2));
    const changed = sha256(f);
    git(e, dir, 'stash', '-q');
    expect(sha256(f)).toBe(before);
    git(e, dir, 'stash', 'pop', '-q');
    expect(sha256(f)).toBe(changed);
  });

  it('linked worktrees share the payload store', () => {
    const e = env();
    const dir = initRepo(e);
    commitWeights(e, dir, baseWeights(2), 'v0');
    const h = sha256(path.join(dir, 'model.safetensors'));
    const wt = path.join(e.root, 'wt2');
    git(e, dir, 'worktree', 'add', '-q', wt, '-b', 'side');
    expect(sha256(path.join(wt, 'model.safetensors'))).toBe(h);
    expect(git(e, wt, 'status', '--porcelain')).toBe('');
    expect(fs.existsSync(path.join(dir, '.git', 'worktrees', 'wt2', 'coral'))).toBe(false);
  });
});
