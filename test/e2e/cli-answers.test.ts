// End-to-end: the CLI gives the answers a git user expects (issue #10, "Wrong answers" and CLI
// expectations): tensor diffs of .pt files, log filters and graph, status paths, show of tags and
// plain files, config validation, branch listings and usage errors in coral's own words.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coral, f32, hasTorch, ok, python, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';

const dirs = tempDirs();
function repoDir(): string {
  const d = tmpdir();
  dirs.push(d);
  ok(d, ['init']);
  return d;
}

function st(file: string, tensors: Record<string, Float32Array>): void {
  const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of Object.entries(tensors)) out[k] = { dtype: 'F32', shape: [v.length], data: f32(v) };
  writeSafetensors(file, out);
}

describe('diff metrics', () => {
  it.skipIf(!hasTorch())('a .pt file edited in one tensor lists only that tensor, with the new size', () => {
    const d = repoDir();
    python(
      `import torch, sys
torch.manual_seed(0)
sd = {'conv.weight': torch.randn(4, 3, 3, 3), 'fc.weight': torch.randn(4, 6), 'fc.bias': torch.randn(4)}
torch.save(sd, sys.argv[1] + '/m.pt')`,
      [d],
    );
    ok(d, ['add', 'm.pt']);
    ok(d, ['commit', '-m', 'base']);
    python(
      `import torch, sys
sd = torch.load(sys.argv[1] + '/m.pt')
sd['fc.weight'][0, 0] += 1
sd['extra'] = torch.zeros(100)
torch.save(sd, sys.argv[1] + '/m.pt')`,
      [d],
    );
    const size = fs.statSync(path.join(d, 'm.pt')).size;
    for (const args of [['diff'], ['diff', 'HEAD']]) {
      const j = JSON.parse(ok(d, [...args, '--json']));
      expect(j).toHaveLength(1);
      expect(j[0].newSize).toBe(size);
      expect(j[0].oldSize).not.toBe(size);
      expect(j[0].tensors.map((t: { name: string; change: string }) => `${t.change} ${t.name}`)).toEqual([
        'added extra',
        'modified fc.weight',
      ]);
      const text = ok(d, args);
      expect(text).not.toMatch(/conv\.weight|fc\.bias/);
    }
  });

  it('NaN/Inf changes show in text, undefined ratios are null in JSON and "-" in text', () => {
    const d = repoDir();
    const f = path.join(d, 'm.safetensors');
    const w = weights(64, 1);
    st(f, { a: w, z: new Float32Array(64), y: new Float32Array(64) });
    ok(d, ['add', 'm.safetensors']);
    ok(d, ['commit', '-m', 'base']);
    const w2 = new Float32Array(w);
    w2[3] = NaN;
    w2[5] = Infinity;
    const z2 = new Float32Array(64);
    z2[0] = 1;
    st(f, { a: w2, z: z2, y: new Float32Array(64) });
    const j = JSON.parse(ok(d, ['diff', '--json']));
    const byName = Object.fromEntries(j[0].tensors.map((t: { name: string }) => [t.name, t]));
    expect(Object.keys(byName).sort()).toEqual(['a', 'z']);
    expect(byName.a.metrics.nonFinite).toBe(2);
    expect(byName.z.metrics.relL2).toBeNull();
    expect(byName.z.metrics.cosine).toBeNull();
    expect(ok(d, ['diff', '--json'])).not.toMatch(/Infinity|NaN/);
    const text = ok(d, ['diff']);
    expect(text).toMatch(/~ a .*nonFinite 2/);
    expect(text).toMatch(/~ z .*relL2 - {2}maxAbs 1 {2}cos -/);
    ok(d, ['add', 'm.safetensors']);
    ok(d, ['commit', '-m', 'nan']);
    const cmp = JSON.parse(ok(d, ['compare', 'HEAD~1', 'HEAD', '--json']));
    expect(cmp.summary.tensorsModified).toBe(2);
    expect(cmp.summary.undefinedMetrics).toBe(1);
  });
});

describe('log', () => {
  // base (a, b) -> main: edit b -> merge of feature (edit a)
  function history() {
    const d = repoDir();
    const A = path.join(d, 'a.safetensors');
    const B = path.join(d, 'b.safetensors');
    st(A, { w: weights(32, 1) });
    st(B, { w: weights(32, 2) });
    ok(d, ['add', '.']);
    const id = () => JSON.parse(ok(d, ['log', '-n', '1', '--json']))[0].id as string;
    ok(d, ['commit', '-m', 'base']);
    const base = id();
    ok(d, ['branch', 'feature']);
    st(B, { w: weights(32, 3) });
    ok(d, ['add', 'b.safetensors']);
    ok(d, ['commit', '-m', 'main edits b']);
    const mainB = id();
    ok(d, ['checkout', 'feature']);
    st(A, { w: weights(32, 4) });
    ok(d, ['add', 'a.safetensors']);
    ok(d, ['commit', '-m', 'feature edits a']);
    const featA = id();
    ok(d, ['checkout', 'main']);
    ok(d, ['merge', 'feature', '-m', 'merge feature', '-m', 'second paragraph']);
    const merge = id();
    return { d, base, mainB, featA, merge };
  }

  it('-- <path>, -n 0, -<n>, a..b, --graph and -m paragraphs', () => {
    const { d, base, mainB, featA, merge } = history();
    const ids = (args: string[]) =>
      (JSON.parse(ok(d, ['log', '--json', ...args])) as Array<{ id: string }>).map((e) => e.id);
    expect(ids([])).toHaveLength(4);
    // Path-limited: the merge took a.safetensors unchanged from feature, so it is not listed (git's rule).
    expect(ids(['--', 'a.safetensors'])).toEqual([featA, base]);
    expect(ids(['--', 'b.safetensors'])).toEqual([mainB, base]);
    // From a subdirectory, a pathspec is relative to where you stand.
    fs.mkdirSync(path.join(d, 'sub'));
    expect(
      (JSON.parse(ok(path.join(d, 'sub'), ['log', '--json', '--', '../a.safetensors'])) as Array<{ id: string }>).map(
        (e) => e.id,
      ),
    ).toEqual([featA, base]);
    expect(ok(d, ['log', '-n', '0'])).toBe('');
    expect(ids(['-n', '0'])).toEqual([]);
    expect(ids(['-2'])).toHaveLength(2);
    expect(ok(d, ['log', '-3', '--oneline']).trim().split('\n')).toHaveLength(3);
    expect(ids(['main..feature'])).toEqual([]);
    expect(ids(['feature..main'])).toEqual([merge, mainB]);
    expect(ids([`${base}..feature`])).toEqual([featA]);
    expect(ids(['^feature', 'main'])).toEqual([merge, mainB]);
    const msg = JSON.parse(ok(d, ['log', '-1', '--json']))[0].commit.message;
    expect(msg).toMatch(/^merge feature\n\nsecond paragraph\n?$/);

    const s = (id: string) => id.slice(0, 12);
    const graph = ok(d, ['log', '--graph', '--oneline'])
      .split('\n')
      .map((l) => l.replace(/ \(.*?\)/, ''));
    expect(graph.slice(0, 6)).toEqual([
      `* ${s(merge)} merge feature`,
      '|\\',
      `| * ${s(featA)} feature edits a`,
      `* | ${s(mainB)} main edits b`,
      '|/',
      `* ${s(base)} base`,
    ]);
    const full = ok(d, ['log', '--graph']);
    expect(full).toMatch(/^\| \* commit /m);
    expect(full).toMatch(/^\| \| {5}feature edits a$/m);
  });

  it('commit and tag join repeated -m as paragraphs', () => {
    const d = repoDir();
    st(path.join(d, 'm.safetensors'), { w: weights(8, 1) });
    ok(d, ['add', 'm.safetensors']);
    ok(d, ['commit', '-m', 'subject', '-m', 'body one', '-m', 'body two']);
    expect(JSON.parse(ok(d, ['log', '--json']))[0].commit.message).toBe('subject\n\nbody one\n\nbody two\n');
    ok(d, ['tag', 'v1', '-m', 'release', '-m', 'notes']);
    expect(JSON.parse(ok(d, ['tag', '--json']))[0].tag.message).toMatch(/^release\n\nnotes\n?$/);
  });
});

describe('status and show', () => {
  it('status in a subdirectory shows paths relative to it; --json stays worktree-relative', () => {
    const d = repoDir();
    fs.mkdirSync(path.join(d, 'sub'));
    fs.writeFileSync(path.join(d, 'top.txt'), 'top\n');
    fs.writeFileSync(path.join(d, 'sub', 'in.txt'), 'in\n');
    ok(d, ['add', 'top.txt', 'sub']);
    ok(d, ['commit', '-m', 'one']);
    fs.writeFileSync(path.join(d, 'top.txt'), 'top 2\n');
    fs.writeFileSync(path.join(d, 'sub', 'in.txt'), 'in 2\n');
    fs.writeFileSync(path.join(d, 'sub', 'new.txt'), 'new\n');
    const sub = path.join(d, 'sub');
    expect(ok(sub, ['status', '--short']).split('\n').filter(Boolean)).toEqual([
      ' M in.txt',
      ' M ../top.txt',
      '?? new.txt',
    ]);
    const long = ok(sub, ['status']);
    expect(long).toContain('\tmodified:   ../top.txt\n');
    expect(long).toContain('\tmodified:   in.txt\n');
    expect(long).toMatch(/Untracked files:\n\tnew\.txt\n/);
    const j = JSON.parse(ok(sub, ['status', '--json']));
    expect(j.files.map((f: { path: string }) => f.path)).toEqual(['sub/in.txt', 'top.txt']);
    expect(j.untracked).toEqual(['sub/new.txt']);
    expect(ok(d, ['status', '--short']).split('\n').filter(Boolean)).toEqual([
      ' M sub/in.txt',
      ' M top.txt',
      '?? sub/new.txt',
    ]);
  });

  it('show <annotated tag> prints the tag, its message and metrics, then the commit; show rev:<plain file> prints its bytes', () => {
    const d = repoDir();
    const text = 'line one\nwörld ✓\n\ttabbed\n';
    fs.writeFileSync(path.join(d, 'notes.txt'), text);
    st(path.join(d, 'm.safetensors'), { w: weights(8, 1) });
    ok(d, ['add', 'notes.txt', 'm.safetensors']);
    ok(d, ['commit', '-m', 'one']);
    ok(d, ['tag', 'v1', '-m', 'release one', '--metric', 'loss=0.5', '--metric', 'acc=0.9']);
    ok(d, ['tag', 'light']);
    const out = ok(d, ['show', 'v1']);
    expect(out).toMatch(
      /^tag v1\nTagger: Test User <test@example.com>\nDate: .*\n\nrelease one\nmetrics: acc=0\.9 {2}loss=0\.5\n\ncommit [0-9a-f]{64}\n/,
    );
    expect(ok(d, ['show', 'light'])).toMatch(/^commit /);
    const j = JSON.parse(ok(d, ['show', 'v1', '--json']));
    expect(j.tag.message).toMatch(/^release one\n?$/);
    expect(j.tag.metadata.metrics).toEqual({ loss: 0.5, acc: 0.9 });
    expect(ok(d, ['show', 'HEAD:notes.txt'])).toBe(text);
    expect(ok(d, ['show', 'HEAD:m.safetensors'])).toMatch(/^m\.safetensors {2}safetensors /);
    expect(JSON.parse(ok(d, ['show', 'HEAD:notes.txt', '--json'])).format).toBe('raw');
  });
});

describe('config', () => {
  it('validates known keys on write, refuses unknown core.* keys, and says when a key is not set', () => {
    const d = repoDir();
    const bad = coral(d, ['config', 'core.maxChainDepth', 'banana']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/core\.maxChainDepth.*"banana".*\(CORAL_INVALID_ARGUMENT\)\n$/);
    expect(coral(d, ['config', 'core.maxChainDepth', '-1']).code).toBe(2);
    expect(coral(d, ['config', 'similarity.bits', '100']).code).toBe(2);
    expect(coral(d, ['config', 'core.formatVersion', '2']).code).toBe(2);
    expect(ok(d, ['config', 'core.maxChainDepth']).trim()).toBe('8');
    ok(d, ['config', 'core.maxChainDepth', '4']);
    expect(ok(d, ['config', 'core.maxChainDepth']).trim()).toBe('4');
    ok(d, ['config', 'core.deltaAgainstParent', 'off']);
    expect(ok(d, ['config', 'core.deltaAgainstParent']).trim()).toBe('false');
    const unknown = coral(d, ['config', 'core.frobnicate', '1']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown config key 'core\.frobnicate'/);
    expect(coral(d, ['config', 'core.frobnicate']).stderr).toMatch(/unknown config key/);
    const missing = coral(d, ['config', 'team.owner']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("coral: config key 'team.owner' is not set (CORAL_CONFIG_NOT_SET)\n");
    expect(coral(d, ['config', 'similarity.bits']).stderr).toMatch(/not set \(default: 256\)/);
    // Free-form sections stay free; user.* must be strings.
    ok(d, ['config', 'remote.origin.url', 'https://example.com/r']);
    ok(d, ['config', 'user.name', '42']);
    expect(JSON.parse(ok(d, ['config', '--list', '--json']))).toMatchObject({
      'user.name': '42',
      'remote.origin.url': 'https://example.com/r',
      'core.maxChainDepth': 4,
    });
    // A key already in the file (written before validation) still reads back.
    const cfgFile = path.join(d, '.coral', 'config');
    const raw = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { core: Record<string, unknown> };
    raw.core.legacyKey = 1;
    fs.writeFileSync(cfgFile, JSON.stringify(raw));
    expect(ok(d, ['config', 'core.legacyKey']).trim()).toBe('1');
    delete raw.core.legacyKey;
    fs.writeFileSync(cfgFile, JSON.stringify(raw));
    // The add that used to fail on a bad value now just works.
    st(path.join(d, 'm.safetensors'), { w: weights(8, 1) });
    ok(d, ['add', 'm.safetensors']);
  });
});

describe('branch listings and usage errors', () => {
  it('branch -a lists refs/remotes/*, branch -v shows id and subject', () => {
    const d = repoDir();
    st(path.join(d, 'm.safetensors'), { w: weights(8, 1) });
    ok(d, ['add', 'm.safetensors']);
    ok(d, ['commit', '-m', 'first subject', '-m', 'body']);
    ok(d, ['branch', 'feature-long-name']);
    const id = JSON.parse(ok(d, ['log', '--json']))[0].id as string;
    // No command writes remote-tracking refs yet; write one as a fetch would.
    fs.mkdirSync(path.join(d, '.coral', 'refs', 'remotes', 'origin'), { recursive: true });
    fs.writeFileSync(path.join(d, '.coral', 'refs', 'remotes', 'origin', 'main'), `${id}\n`);
    expect(ok(d, ['branch'])).toBe('  feature-long-name\n* main\n');
    expect(ok(d, ['branch', '-a'])).toBe('  feature-long-name\n* main\n  remotes/origin/main\n');
    expect(ok(d, ['branch', '-r'])).toBe('  remotes/origin/main\n');
    const s = id.slice(0, 12);
    expect(ok(d, ['branch', '-v'])).toBe(
      `  feature-long-name ${s} first subject\n* main              ${s} first subject\n`,
    );
    expect(ok(d, ['branch', '-av']).split('\n')[2]).toBe(`  remotes/origin/main ${s} first subject`);
    const j = JSON.parse(ok(d, ['branch', '-a', '-v', '--json']));
    expect(j.map((b: { name: string; remote: boolean }) => [b.name, b.remote])).toEqual([
      ['feature-long-name', false],
      ['main', false],
      ['remotes/origin/main', true],
    ]);
    expect(j[2].subject).toBe('first subject');
  });

  it("unknown options, missing values and stray arguments are reported in coral's words", () => {
    const d = repoDir();
    const cases: Array<[string[], string]> = [
      [
        ['log', '--frobnicate'],
        "coral: unknown option '--frobnicate' for 'coral log' (see 'coral log --help') (CORAL_USAGE)\n",
      ],
      [['status', '-z'], "coral: unknown option '-z' for 'coral status' (see 'coral status --help') (CORAL_USAGE)\n"],
      [
        ['commit', '-m'],
        "coral: option '-m' needs a value for 'coral commit' (see 'coral commit --help') (CORAL_USAGE)\n",
      ],
      [
        ['log', '--oneline=yes'],
        "coral: option '--oneline' takes no value for 'coral log' (see 'coral log --help') (CORAL_USAGE)\n",
      ],
      [
        ['status', 'extra'],
        "coral: unexpected argument 'extra' for 'coral status' (see 'coral status --help') (CORAL_USAGE)\n",
      ],
    ];
    for (const [args, err] of cases) {
      const r = coral(d, args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(err);
    }
  });
});
