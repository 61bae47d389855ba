// Issue #10 "done means": a git user's everyday session on a real torch .pt
// checkpoint and a safetensors file, through the real CLI. After every step the
// worktree files are hashed: no edit is ever lost (only `reset --hard` and
// `checkout -f`, asked for explicitly, may discard one).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, hasTorch, ok, python, sha256, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });

/** A small MLP state_dict; `step` > 0 adds a seeded "training step" to every tensor. */
const TORCH_SAVE = `import torch, sys
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
sd = m.state_dict()
step = int(sys.argv[2])
if step > 0:
    g = torch.Generator().manual_seed(step)
    sd = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in sd.items()}
torch.save(sd, sys.argv[1])`;

describe.skipIf(!hasTorch())('everyday session on torch + safetensors: no edit is ever lost', () => {
  it('edit, status, diff, refused and carried switches, commit -a, reset soft/mixed/hard, merge --no-commit + commit', () => {
    const d = tmpdir('coral-everyday-');
    dirs.push(d);
    const PT = path.join(d, 'model.pt');
    const ST = path.join(d, 'adapter.safetensors');
    const pt = (step: number) => {
      python(TORCH_SAVE, [PT, String(step)]);
      return sha256(PT);
    };
    const st = (seed: number) => {
      writeSafetensors(ST, {
        'lora.A': { dtype: 'F32', shape: [16, 64], data: f32(weights(1024, seed)) },
        'lora.B': { dtype: 'F32', shape: [8, 16], data: f32(weights(128, seed + 7)) },
      });
      return sha256(ST);
    };
    /** The worktree holds exactly these bytes (sha256), whatever command ran last. */
    const expectFiles = (want: { pt: string; st: string }, step: string) => {
      expect(sha256(PT), `model.pt after ${step}`).toBe(want.pt);
      expect(sha256(ST), `adapter.safetensors after ${step}`).toBe(want.st);
    };
    const status = () => JSON.parse(ok(d, ['status', '--json']));
    const commitId = (args: string[]) => JSON.parse(ok(d, ['commit', ...args, '--json'])).id as string;

    ok(d, ['init']);
    const base = { pt: pt(0), st: st(1) };
    ok(d, ['add', '.']);
    const c0 = commitId(['-m', 'base']);

    // A feature branch trains the torch model one way.
    ok(d, ['checkout', '-b', 'feature']);
    const feat = { pt: pt(1), st: base.st };
    const cf = commitId(['-a', '-m', 'feature: step 1']);
    ok(d, ['checkout', 'main']);
    expectFiles(base, 'checkout main');

    // Edit on main: status and diff see it.
    const work = { pt: pt(2), st: base.st };
    expect(status().files).toEqual([{ path: 'model.pt', staged: null, unstaged: 'modified' }]);
    const diff = JSON.parse(ok(d, ['diff', '--json']));
    expect(diff.map((f: { path: string; change: string }) => [f.path, f.change])).toEqual([['model.pt', 'modified']]);
    expect(diff[0].tensors.filter((t: { change: string }) => t.change === 'modified').length).toBe(4);
    expect(ok(d, ['diff'])).toMatch(/~ 0\.weight/);

    // A switch that would overwrite the edit is refused; nothing changes.
    const refused = coral(d, ['checkout', 'feature']);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toMatch(/model\.pt.*CORAL_DIRTY_WORKTREE/);
    expectFiles(work, 'refused checkout');
    expect(status().branch).toBe('main');

    // Edit the safetensors too; switching to a branch at the same commit carries both edits over.
    work.st = st(2);
    ok(d, ['checkout', '-b', 'experiment']);
    expectFiles(work, 'checkout -b experiment');
    ok(d, ['checkout', 'main']);
    expectFiles(work, 'checkout main (carried)');
    expect(status().files.map((f: { path: string }) => f.path)).toEqual(['adapter.safetensors', 'model.pt']);

    // commit -a records both edits.
    const c1 = commitId(['-a', '-m', 'main: step 2']);
    expect(status().files).toEqual([]);
    expectFiles(work, 'commit -a');

    // reset --soft: HEAD moves back, the index and files keep the work.
    const more = { pt: work.pt, st: st(3) }; // an unstaged edit on top
    ok(d, ['reset', '--soft', 'HEAD~1']);
    expect(status()).toMatchObject({
      head: c0,
      files: [
        { path: 'adapter.safetensors', staged: 'modified', unstaged: 'modified' },
        { path: 'model.pt', staged: 'modified', unstaged: null },
      ],
    });
    expectFiles(more, 'reset --soft');

    // reset (mixed): the index goes back too; files untouched.
    ok(d, ['reset']);
    expect(status().files).toEqual([
      { path: 'adapter.safetensors', staged: null, unstaged: 'modified' },
      { path: 'model.pt', staged: null, unstaged: 'modified' },
    ]);
    expectFiles(more, 'reset --mixed');

    // reset --hard to the commit made above: the unstaged adapter edit is discarded on request only.
    ok(d, ['reset', '--hard', c1]);
    expect(status()).toMatchObject({ head: c1, files: [] });
    expectFiles(work, 'reset --hard');
    const reflog = fs.readFileSync(path.join(d, '.coral', 'logs', 'refs', 'heads', 'main'), 'utf8');
    expect(reflog).toContain(`reset: moving to ${c1}`);

    // merge --no-commit, then commit: two parents, the merge state gone.
    ok(d, ['merge', 'feature', '--no-commit', '--strategy', 'average']);
    expect(status().merging).toBe(true);
    const merged = { pt: sha256(PT), st: sha256(ST) };
    expect(merged.st).toBe(work.st); // only main touched the adapter
    const cm = commitId([]);
    const h = JSON.parse(ok(d, ['log', '--json', '-n', '1']))[0];
    expect(h.id).toBe(cm);
    expect(h.commit.parents).toEqual([c1, cf]);
    expect(h.commit.message).toBe('Merge feature into main\n');
    expect(status()).toMatchObject({ merging: false, files: [], untracked: [] });
    expectFiles(merged, 'commit concluding the merge');
    expect(fs.existsSync(path.join(d, '.coral', 'MERGE_STATE'))).toBe(false);

    // The merged checkpoint loads in torch and is the average of both sides.
    const avg = python(
      `import torch, sys
m = torch.load(sys.argv[1], weights_only=True)
torch.manual_seed(0)
b = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).state_dict()
def step(s):
    g = torch.Generator().manual_seed(s)
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in b.items()}
one, two = step(1), step(2)
print(all(torch.allclose(m[k], 0.5 * one[k] + 0.5 * two[k], atol=1e-6) for k in b))`,
      [PT],
    );
    expect(avg.trim()).toBe('True');

    // Every commit of the session checks out byte for byte, and back.
    ok(d, ['checkout', c0]);
    expectFiles(base, 'checkout base');
    ok(d, ['checkout', 'feature']);
    expectFiles(feat, 'checkout feature');
    ok(d, ['checkout', 'main']);
    expectFiles(merged, 'checkout main');
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
  });
});
