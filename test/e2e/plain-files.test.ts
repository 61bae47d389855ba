// A file coral cannot parse as a checkpoint is stored as a plain file, with a
// one-line reason, never refused (unless --strict) and never executed; it
// comes back byte-for-byte on checkout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, hasTorch, ok, python, sha256, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });
function repoDir(): string {
  const d = tmpdir();
  dirs.push(d);
  ok(d, ['init']);
  return d;
}

function safetensors(file: string, dtype = 'F32'): void {
  writeSafetensors(file, {
    'layer.weight': { dtype, shape: [64, 32], data: f32(weights(64 * 32, 7)) },
    'layer.bias': { dtype: 'F32', shape: [64], data: f32(weights(64, 8)) },
  });
}

interface AddJson {
  files: Array<{ path: string; plainFile?: string }>;
}

/** Commit, delete the files, check out again: every file is back byte-for-byte. */
function roundTrip(d: string, files: string[]): void {
  const before = Object.fromEntries(files.map((f) => [f, sha256(path.join(d, f))]));
  ok(d, ['commit', '-m', 'plain files']);
  for (const f of files) fs.rmSync(path.join(d, f));
  ok(d, ['checkout', '-f', 'main']);
  for (const f of files) expect(sha256(path.join(d, f)), f).toBe(before[f]);
  expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);
}

describe('unparsable checkpoints are stored as plain files', () => {
  it('a truncated .safetensors and one with an unknown dtype: stored, with the reason; scripts without one', () => {
    const d = repoDir();
    safetensors(path.join(d, 'cut.safetensors'));
    const full = fs.readFileSync(path.join(d, 'cut.safetensors'));
    fs.writeFileSync(path.join(d, 'cut.safetensors'), full.subarray(0, full.length - 1000));
    safetensors(path.join(d, 'odd.safetensors'), 'Q4_K');
    safetensors(path.join(d, 'good.safetensors'));
    fs.writeFileSync(path.join(d, 'train.py'), 'print("hi")\n');
    fs.writeFileSync(path.join(d, 'config.json'), '{"lr": 0.001}\n');

    const r = JSON.parse(ok(d, ['add', '.', '--json'])) as AddJson;
    const note = Object.fromEntries(r.files.map((f) => [f.path, f.plainFile]));
    expect(Object.keys(note).sort()).toEqual([
      'config.json',
      'cut.safetensors',
      'good.safetensors',
      'odd.safetensors',
      'train.py',
    ]);
    expect(note['cut.safetensors']).toMatch(/\S/);
    expect(note['odd.safetensors']).toContain('Q4_K');
    expect(note['good.safetensors']).toBeUndefined();
    expect(note['train.py']).toBeUndefined();
    expect(note['config.json']).toBeUndefined();
    roundTrip(d, ['cut.safetensors', 'odd.safetensors', 'good.safetensors', 'train.py']);
    const show = JSON.parse(ok(d, ['show', 'HEAD:odd.safetensors', '--json']));
    expect(show.format).toBe('raw');
    // Diff against the worktree reads a plain file as a plain file (no parser error).
    fs.writeFileSync(path.join(d, 'cut.safetensors'), full.subarray(0, full.length - 2000));
    const diff = JSON.parse(ok(d, ['diff', '--json']));
    expect(diff).toEqual([expect.objectContaining({ path: 'cut.safetensors', change: 'modified', tensors: [] })]);
  });

  it('prints "stored as a plain file: <reason>"; --strict refuses with the parser\'s error code', () => {
    const d = repoDir();
    safetensors(path.join(d, 'odd.safetensors'), 'Q4_K');
    const strict = coral(d, ['add', '--strict', 'odd.safetensors']);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toContain('(CORAL_UNSUPPORTED_FORMAT)');
    expect(strict.stderr).toContain('Q4_K');
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);

    const out = ok(d, ['add', 'odd.safetensors']);
    expect(out).toMatch(/odd\.safetensors: stored as a plain file: .*"Q4_K"/);
    expect(out.split('\n').filter((l) => l.includes('stored as a plain file'))).toHaveLength(1);
  });

  it.skipIf(!hasTorch())('a whole-model torch.save(model) is stored (never unpickled), restored byte-for-byte', () => {
    const d = repoDir();
    python(
      `import torch, sys
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
torch.save(m, sys.argv[1] + '/whole.pt')`,
      [d],
    );
    const strict = coral(d, ['add', '--strict', 'whole.pt']);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toContain('(CORAL_UNSAFE_PICKLE)');

    const out = ok(d, ['add', 'whole.pt']);
    expect(out).toMatch(/whole\.pt: stored as a plain file: .*torch\.nn/);
    roundTrip(d, ['whole.pt']);
    // The restored file is the real thing: torch loads it.
    const loaded = python(
      `import torch, sys
m = torch.load(sys.argv[1] + '/whole.pt', weights_only=False)
print(type(m).__name__, len(m))`,
      [d],
    );
    expect(loaded.trim()).toBe('Sequential 3');
  });
});
