// `coral watch` / CheckpointWatcher: a PyTorch training loop (Debian's torch) writes checkpoints while a
// Node process commits each one once complete, with metrics from the sidecar JSON. Deterministic:
// no sleeps asserting timing; the watcher stops after a bounded number of commits.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointWatcher, Repository } from '../../lib/index';
import { CORAL_BIN, ROOT, TORCH_PYTHON, hasTorch, ok, sha256, tmpdir, tempDirs } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });

function run(
  cmd: string,
  args: string[],
  cwd: string,
  limitMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, {
      cwd,
      env: { ...process.env, NO_COLOR: '1', CORAL_AUTHOR_NAME: 'T', CORAL_AUTHOR_EMAIL: 't@e' },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    // A bound, not a timing assertion: a stuck process fails the test instead of hanging it.
    const kill = setTimeout(() => p.kill('SIGKILL'), limitMs);
    p.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('CheckpointWatcher', () => {
  it('commits a checkpoint once unchanged between two scans, again when it changes, never temp files', async () => {
    const d = tmpdir('coral-watch-lib-');
    dirs.push(d);
    const repo = await Repository.init(d);
    try {
      const ck = path.join(d, 'ckpts');
      fs.mkdirSync(ck);
      const w = new CheckpointWatcher(repo, 'ckpts');
      fs.writeFileSync(path.join(ck, 'a.bin'), Buffer.alloc(1000, 1));
      fs.writeFileSync(path.join(ck, 'a.json'), JSON.stringify({ step: 5, metrics: { loss: 0.5 } }));
      fs.writeFileSync(path.join(ck, 'b.bin.tmp'), 'partial');
      fs.writeFileSync(path.join(ck, '.hidden'), 'x');
      expect(await w.scan()).toEqual([]); // first sight
      const first = await w.scan();
      expect(first.map((c) => [c.path, c.step, c.metrics])).toEqual([['ckpts/a.bin', 5, { loss: 0.5 }]]);
      expect(await w.scan()).toEqual([]); // unchanged: nothing new
      fs.writeFileSync(path.join(ck, 'a.bin'), Buffer.alloc(2000, 2));
      fs.rmSync(path.join(ck, 'a.json'));
      expect(await w.scan()).toEqual([]);
      const second = await w.scan();
      expect(second.map((c) => [c.path, c.metrics])).toEqual([['ckpts/a.bin', {}]]);
      const log = await repo.log();
      expect(log.map((e) => e.commit.message.trim())).toEqual([
        'watch: ckpts/a.bin',
        'watch: ckpts/a.bin (step 5) loss=0.5',
      ]);
      expect(Object.keys((await repo.treeOf('HEAD')).files)).toEqual(['ckpts/a.bin']);
      expect(() => new CheckpointWatcher(repo, '/elsewhere')).toThrow(/inside the worktree/);
    } finally {
      await repo.close();
    }
  });

  it.skipIf(!hasTorch())(
    'coral watch commits what a PyTorch loop writes, with sidecar metrics',
    async () => {
      const d = tmpdir('coral-watch-torch-');
      dirs.push(d);
      ok(d, ['init']);
      fs.mkdirSync(path.join(d, 'ckpts'));
      const watcher = run(
        process.execPath,
        [CORAL_BIN, 'watch', 'ckpts', '--interval', '50', '--max-commits', '3'],
        d,
        180_000,
      );
      const train = await run(
        TORCH_PYTHON,
        [path.join(ROOT, 'examples', 'pytorch', 'train.py'), path.join(d, 'ckpts'), '3'],
        d,
        180_000,
      );
      expect(train.code, train.stderr).toBe(0);
      const w = await watcher;
      expect(w.code, w.stderr).toBe(0);
      const lines = w.stdout.trim().split('\n');
      expect(lines).toHaveLength(3);
      expect(lines[0]).toMatch(/^committed ckpts\/ckpt-0001\.pt as [0-9a-f]{12} step 8 loss=[\d.]+ accuracy=[\d.]+$/);
      // Each commit holds the checkpoint byte-for-byte, with the sidecar's numbers as metrics.
      const log = ok(d, ['log', '--oneline', '--metric', 'loss', '--metric', 'step']).trim().split('\n');
      expect(log).toHaveLength(3);
      for (let k = 1; k <= 3; k++) {
        const side = JSON.parse(fs.readFileSync(path.join(d, 'ckpts', `ckpt-000${k}.json`), 'utf8'));
        expect(log[3 - k]).toMatch(new RegExp(`watch: ckpts/ckpt-000${k}\\.pt .*loss=${side.loss} step=${side.step}$`));
      }
      const repo = await Repository.open(d);
      try {
        const tree = (await repo.treeOf('HEAD')).files;
        for (let k = 1; k <= 3; k++) {
          const e = tree[`ckpts/ckpt-000${k}.pt`];
          expect(e.format).toBe('pytorch');
          expect(e.sha256).toBe(sha256(path.join(d, 'ckpts', `ckpt-000${k}.pt`)));
        }
        expect(Object.keys(tree).some((f) => f.endsWith('.json') || f.endsWith('.tmp'))).toBe(false);
      } finally {
        await repo.close();
      }
    },
    240_000,
  );
});
