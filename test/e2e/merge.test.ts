// End-to-end merges through the real `coral` CLI (fresh process per command,
// so every step reopens the repository). Tensors are read back from the merged
// checkout and compared bit for bit, or against independent reference
// implementations (plain JS in f64) for the soup strategies.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensors } from '../../lib/formats/safetensors';
import { Repository } from '../../lib/repository';
import type { Tensor } from '../../lib/tensor/tensor';
import { coral, f32, ok, perturb, sha256, tmpdir, weights, writeSafetensors, tempDirs } from '../helpers/cli';
import { refDare, refTask, refTies } from '../merge/strategies-reference';

const dirs = tempDirs();
function repoDir(): string {
  const d = tmpdir('coral-merge-');
  dirs.push(d);
  ok(d, ['init']);
  return d;
}

type Spec = Record<string, Float32Array>;
function write(file: string, spec: Spec, metadata?: Record<string, string>): void {
  const t: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of Object.entries(spec)) t[k] = { dtype: 'F32', shape: [v.length], data: f32(v) };
  writeSafetensors(file, t, metadata);
}
function commit(d: string, msg: string): string {
  ok(d, ['add', '.']);
  return JSON.parse(ok(d, ['commit', '-m', msg, '--json'])).id;
}
async function load(file: string): Promise<{ tensors: Map<string, Tensor>; metadata?: Record<string, string> }> {
  return readSafetensors(file);
}
function f32of(t: Tensor): Float32Array {
  expect(t.dtype).toBe('F32');
  return new Float32Array(t.data.slice().buffer);
}
function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}
function expectBits(got: Tensor | undefined, want: Float32Array | number[]): void {
  expect(got).toBeDefined();
  const w = want instanceof Float32Array ? want : Float32Array.from(want);
  expect(bits(f32of(got!))).toEqual(bits(w));
}
const mean = (a: Float32Array, b: Float32Array) => Float32Array.from(a, (x, i) => 0.5 * x + 0.5 * b[i]);
/** State a failed or aborted merge must leave as it was (`exact`: the index byte for byte, else its entries). */
function snapshot(d: string, file: string, exact = true) {
  const raw = fs.readFileSync(path.join(d, '.coral', 'index'));
  // The index file is "\0CI1" + brotli(JSON) (lib/worktree/staging.ts).
  const json = raw.subarray(0, 4).equals(Buffer.from([0, 0x43, 0x49, 0x31]))
    ? zlib.brotliDecompressSync(raw.subarray(4))
    : raw;
  const index = raw.toString('hex');
  const entries = (JSON.parse(json.toString('utf8')) as { files: Record<string, { entry: unknown }> }).files;
  return {
    file: sha256(path.join(d, file)),
    index: exact ? index : Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, v.entry])),
    log: ok(d, ['log', '--json']),
    status: ok(d, ['status', '--json']),
    branches: ok(d, ['branch', '--json']),
    mergeState: fs.existsSync(path.join(d, '.coral', 'MERGE_STATE')),
  };
}
const W = (seed: number, n = 64) => weights(n, seed);

describe('coral merge: classification, strategies, DAG', () => {
  it('every tensor classification in one merge; fail changes nothing; average + resolve rules commit two parents', async () => {
    const d = repoDir();
    const F = path.join(d, 'model.safetensors');
    const base: Spec = {
      'a.unchanged': W(1),
      'b.ours': W(2),
      'c.theirs': W(3),
      'd.same': W(4),
      'e.conflict': W(5, 512),
      'g.deleted-both': W(7),
      'i.ours-deleted': W(9),
      'k.delmod': W(11),
      'm.theirs-deleted': W(13),
    };
    write(F, base);
    const b0 = commit(d, 'base model');
    ok(d, ['branch', 'feat']);
    // ours (main)
    const ours: Spec = {
      ...base,
      'b.ours': perturb(base['b.ours'], 21),
      'd.same': perturb(base['d.same'], 41),
      'e.conflict': perturb(base['e.conflict'], 51, 1),
    };
    delete ours['g.deleted-both'];
    delete ours['i.ours-deleted'];
    delete ours['k.delmod'];
    ours['h.added-same'] = W(80);
    ours['l.addadd'] = W(90);
    write(F, ours);
    const oId = commit(d, 'ours');
    ok(d, ['checkout', 'feat']);
    const theirs: Spec = {
      ...base,
      'c.theirs': perturb(base['c.theirs'], 31),
      'd.same': perturb(base['d.same'], 41),
      'e.conflict': perturb(base['e.conflict'], 52, 1),
      'k.delmod': perturb(base['k.delmod'], 111),
    };
    delete theirs['g.deleted-both'];
    delete theirs['m.theirs-deleted'];
    theirs['h.added-same'] = W(80);
    theirs['j.theirs-added'] = W(100);
    theirs['l.addadd'] = W(91);
    write(F, theirs);
    const tId = commit(d, 'theirs');
    ok(d, ['checkout', 'main']);
    expect(sha256(F)).toBeDefined();

    // Default strategy `fail`: exit 5, conflicts listed, nothing changed.
    const before = snapshot(d, 'model.safetensors');
    const r0 = coral(d, ['merge', 'feat']);
    expect(r0.code).toBe(5);
    expect(r0.stderr).toContain('CORAL_MERGE_CONFLICT');
    expect(r0.stderr).toContain('model.safetensors:e.conflict');
    expect(r0.stderr).toContain('model.safetensors:k.delmod');
    expect(snapshot(d, 'model.safetensors')).toEqual(before);
    // A numeric strategy cannot resolve delete-vs-modify: still a conflict, still nothing changed.
    const r1 = coral(d, ['merge', 'feat', '--strategy', 'average']);
    expect(r1.code).toBe(5);
    expect(r1.stderr).toMatch(/k\.delmod.*deleted by ours and modified by theirs/);
    expect(snapshot(d, 'model.safetensors')).toEqual(before);

    const rep = JSON.parse(ok(d, ['merge', 'feat', '--strategy', 'average', '--resolve', 'k.*=theirs', '--json']));
    expect(rep.fastForward).toBe(false);
    expect(rep.base).toBe(b0);
    const kinds = Object.fromEntries(
      [...rep.autoMerged, ...rep.conflicts].map((x: { tensor: string; kind: string }) => [x.tensor, x.kind]),
    );
    expect(kinds).toEqual({
      'b.ours': 'modified-ours',
      'c.theirs': 'modified-theirs',
      'd.same': 'modified-both-same',
      'e.conflict': 'conflict-modify-modify',
      'g.deleted-both': 'deleted-both',
      'h.added-same': 'added-both-same',
      'i.ours-deleted': 'deleted-ours',
      'j.theirs-added': 'added-theirs',
      'k.delmod': 'conflict-delete-modify',
      'l.addadd': 'conflict-add-add',
      'm.theirs-deleted': 'deleted-theirs',
    });
    expect(rep.resolved).toEqual([
      { file: 'model.safetensors', tensor: 'e.conflict', strategy: 'average' },
      { file: 'model.safetensors', tensor: 'k.delmod', strategy: 'theirs' },
      { file: 'model.safetensors', tensor: 'l.addadd', strategy: 'average' },
    ]);

    // Every tensor, bit for bit, from the merged checkout.
    const m = await load(F);
    expect([...m.tensors.keys()].sort()).toEqual([
      'a.unchanged',
      'b.ours',
      'c.theirs',
      'd.same',
      'e.conflict',
      'h.added-same',
      'j.theirs-added',
      'k.delmod',
      'l.addadd',
    ]);
    expectBits(m.tensors.get('a.unchanged'), base['a.unchanged']);
    expectBits(m.tensors.get('b.ours'), ours['b.ours']);
    expectBits(m.tensors.get('c.theirs'), theirs['c.theirs']);
    expectBits(m.tensors.get('d.same'), ours['d.same']);
    expectBits(m.tensors.get('e.conflict'), mean(ours['e.conflict'], theirs['e.conflict']));
    expectBits(m.tensors.get('h.added-same'), ours['h.added-same']);
    expectBits(m.tensors.get('j.theirs-added'), theirs['j.theirs-added']);
    expectBits(m.tensors.get('k.delmod'), theirs['k.delmod']);
    expectBits(m.tensors.get('l.addadd'), mean(ours['l.addadd'], theirs['l.addadd']));
    expect(JSON.parse(ok(d, ['status', '--json']))).toMatchObject({ files: [], untracked: [], merging: false });

    // The DAG, read back by fresh processes.
    const log = JSON.parse(ok(d, ['log', '--json', '-n', '1']));
    expect(log[0].id).toBe(rep.commit);
    expect(log[0].commit.parents).toEqual([oId, tId]);
    expect(log[0].commit.metadata.merge).toMatchObject({
      strategy: 'average',
      base: b0,
      theirs: tId,
      resolved: {
        'model.safetensors:e.conflict': 'average',
        'model.safetensors:k.delmod': 'theirs',
        'model.safetensors:l.addadd': 'average',
      },
    });
    // Reopened in this process: merge base and ancestry are right.
    const repo = await Repository.open(d);
    try {
      expect(await repo.mergeBase('main', 'feat')).toEqual([tId]);
      expect(await repo.mergeBase(oId, tId)).toEqual([b0]);
      expect((await repo.log()).map((e) => e.id)).toEqual(expect.arrayContaining([rep.commit, oId, tId, b0]));
    } finally {
      await repo.close();
    }
    // Checking out the merge commit elsewhere re-assembles the file byte for byte.
    const merged = sha256(F);
    ok(d, ['checkout', 'feat']);
    ok(d, ['checkout', 'main']);
    expect(sha256(F)).toBe(merged);
    expect(ok(d, ['merge', 'feat'])).toContain('Already up to date');
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
  });

  it('try-and-vet with a real scoring command, then soup strategies against reference implementations', async () => {
    const d = repoDir();
    const F = path.join(d, 'model.safetensors');
    const n = 4096;
    const base: Spec = { 'x.w': W(201, n), 'y.w': W(202, 1000), 'z.fixed': W(203, 16) };
    write(F, base, { note: 'base' });
    const b0 = commit(d, 'base');
    ok(d, ['branch', 'feat']);
    const ours: Spec = { ...base, 'x.w': perturb(base['x.w'], 301, 20), 'y.w': perturb(base['y.w'], 302, 20, 0.5) };
    write(F, ours, { note: 'base' });
    const oId = commit(d, 'ours');
    ok(d, ['checkout', 'feat']);
    const theirs: Spec = { ...base, 'x.w': perturb(base['x.w'], 401, 20), 'y.w': perturb(base['y.w'], 402, 20, 0.3) };
    write(F, theirs, { note: 'theirs changed the header metadata' });
    commit(d, 'theirs');
    ok(d, ['checkout', 'main']);

    const before = snapshot(d, 'model.safetensors');
    const out = path.join(d, '..', `${path.basename(d)}-cands`);
    dirs.push(out);
    // The scorer is a real program: loads the candidate's safetensors and prints -L1 distance to theirs.
    const target = path.join(out, 'target.json');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(target, JSON.stringify({ x: Array.from(theirs['x.w']), y: Array.from(theirs['y.w']) }));
    const scorer = path.join(out, 'score.js');
    fs.writeFileSync(
      scorer,
      `
      const fs = require('fs'); const path = require('path');
      const dir = process.argv[2]; if (dir !== process.env.CORAL_CANDIDATE_DIR) throw new Error('dir mismatch');
      const buf = fs.readFileSync(path.join(dir, 'model.safetensors'));
      const hl = Number(buf.readBigUInt64LE(0)); const h = JSON.parse(buf.subarray(8, 8 + hl).toString());
      const get = (k) => { const [a, b] = h[k].data_offsets; const s = buf.subarray(8 + hl + a, 8 + hl + b); return new Float32Array(s.buffer.slice(s.byteOffset, s.byteOffset + s.length)); };
      const t = JSON.parse(fs.readFileSync(${JSON.stringify(target)}, 'utf8'));
      let e = 0; const x = get('x.w'), y = get('y.w');
      for (let i = 0; i < x.length; i++) e += Math.abs(x[i] - t.x[i]);
      for (let i = 0; i < y.length; i++) e += Math.abs(y[i] - t.y[i]);
      console.log('evaluating', dir); console.log('loss', 3, 'score', -e);
    `,
    );
    const strategies = ['ours', 'theirs', 'average', 'weighted', 'task-arithmetic', 'ties', 'dare'];
    const tr = JSON.parse(
      ok(d, [
        'merge',
        'feat',
        '--try',
        strategies.join(','),
        '--out',
        out,
        '--alpha',
        '0.5',
        '--lambda',
        '0.7',
        '--density',
        '0.3',
        '--drop',
        '0.2',
        '--seed',
        '7',
        '--eval',
        `node ${scorer} {}`,
        '--json',
      ]),
    );
    expect(tr.candidates.map((c: { strategy: string; ok: boolean }) => [c.strategy, c.ok])).toEqual(
      strategies.map((s) => [s, true]),
    );
    expect(tr.best.strategy).toBe('theirs');
    expect(tr.best.score).toBe(0);
    for (const c of tr.candidates) expect(typeof c.score).toBe('number');
    expect(tr.next).toBe(
      'coral merge feat --strategy theirs --alpha 0.5 --lambda 0.7 --density 0.3 --drop 0.2 --seed 7',
    );
    expect(snapshot(d, 'model.safetensors')).toEqual(before); // refs, index, files untouched
    const human = ok(d, [
      'merge',
      'feat',
      '--try',
      'average,ours',
      '--out',
      out,
      '--eval',
      `node ${scorer} {}`,
      '--minimize',
    ]);
    expect(human).toMatch(/ours .* <- best/);

    const cand = async (s: string) => load(path.join(out, s, 'model.safetensors'));
    const num = (a: Float32Array) => Array.from(a);
    const check = async (s: string, fx: (b: number[], o: number[], t: number[]) => number[]) => {
      const c = await cand(s);
      for (const k of ['x.w', 'y.w'])
        expectBits(c.tensors.get(k), Float32Array.from(fx(num(base[k]), num(ours[k]), num(theirs[k]))));
      expectBits(c.tensors.get('z.fixed'), base['z.fixed']);
      // Theirs changed only the header metadata: the merged file takes it.
      expect(c.metadata).toEqual({ note: 'theirs changed the header metadata' });
    };
    await check('ours', (_b, o) => o);
    await check('theirs', (_b, _o, t) => t);
    await check('average', (_b, o, t) => o.map((x, i) => 0.5 * x + 0.5 * t[i]));
    await check('weighted', (_b, o, t) => o.map((x, i) => 0.5 * x + 0.5 * t[i]));
    expect(sha256(path.join(out, 'weighted', 'model.safetensors'))).toBe(
      sha256(path.join(out, 'average', 'model.safetensors')),
    );
    await check('task-arithmetic', (b, o, t) => refTask(b, [o, t], 0.7));
    await check('ties', (b, o, t) => refTies(b, [o, t], 0.3, 0.7));
    await check('dare', (b, o, t) => refDare(b, [o, t], 0.2, 7n, 0.7, false));

    // Vetted: commit TIES; the committed file equals the candidate byte for byte.
    const rep = JSON.parse(
      ok(d, ['merge', 'feat', '--strategy', 'ties', '--density', '0.3', '--lambda', '0.7', '--json']),
    );
    expect(sha256(F)).toBe(sha256(path.join(out, 'ties', 'model.safetensors')));
    const head = JSON.parse(ok(d, ['log', '--json', '-n', '1']))[0];
    expect(head.id).toBe(rep.commit);
    expect(head.commit.parents[0]).toBe(oId);
    expect(head.commit.metadata.merge.resolved).toEqual({
      'model.safetensors:x.w': 'ties',
      'model.safetensors:y.w': 'ties',
    });
    expect(head.commit.metadata.merge.params).toMatchObject({ density: 0.3, lambda: 0.7 });
    expect(head.commit.metadata.merge.base).toBe(b0);
  });

  it('library API: weighted alpha, report shape, per-file resolve rules', async () => {
    const d = repoDir();
    const F = path.join(d, 'w.safetensors');
    const base: Spec = { 'enc.w': W(501, 300), 'dec.w': W(502, 300) };
    write(F, base);
    commit(d, 'base');
    ok(d, ['branch', 'feat']);
    const ours = { 'enc.w': perturb(base['enc.w'], 1, 10), 'dec.w': perturb(base['dec.w'], 2, 10) };
    write(F, ours);
    commit(d, 'ours');
    ok(d, ['checkout', 'feat']);
    const theirs = { 'enc.w': perturb(base['enc.w'], 3, 10), 'dec.w': perturb(base['dec.w'], 4, 10) };
    write(F, theirs);
    const tId = commit(d, 'theirs');
    ok(d, ['checkout', 'main']);
    const repo = await Repository.open(d);
    try {
      await expect(repo.merge('feat', { strategy: 'weighted' })).rejects.toMatchObject({
        code: 'CORAL_INVALID_ARGUMENT',
      });
      const r = await repo.merge('feat', {
        strategy: 'weighted',
        alpha: 0.3,
        resolve: ['w.safetensors:enc.*=ours'],
        message: 'soup',
      });
      expect(r).toMatchObject({ status: 'merged', fastForward: false, theirs: tId, unresolved: [] });
      expect(r.resolved).toEqual([
        { file: 'w.safetensors', tensor: 'dec.w', strategy: 'weighted' },
        { file: 'w.safetensors', tensor: 'enc.w', strategy: 'ours' },
      ]);
      const m = await load(F);
      expectBits(m.tensors.get('enc.w'), ours['enc.w']);
      expectBits(
        m.tensors.get('dec.w'),
        Float32Array.from(ours['dec.w'], (x, i) => 0.3 * x + (1 - 0.3) * theirs['dec.w'][i]),
      );
      const c = await repo.readCommit(r.commit!);
      expect(c.parents[1]).toBe(tId);
      expect(c.message).toBe('soup\n');
    } finally {
      await repo.close();
    }
  });

  it('fast-forward, --ff-only, --no-ff, up to date, octopus, dirty worktree, shape mismatch', async () => {
    const d = repoDir();
    const F = path.join(d, 'm.safetensors');
    write(F, { w: W(1), v: W(2) });
    const b0 = commit(d, 'base');
    ok(d, ['checkout', '-b', 'ff']);
    write(F, { w: W(3), v: W(2) });
    const f1 = commit(d, 'ff step');
    const ffSha = sha256(F);
    ok(d, ['checkout', 'main']);
    const r = JSON.parse(ok(d, ['merge', 'ff', '--ff-only', '--json']));
    expect(r).toMatchObject({ fastForward: true, commit: f1 });
    expect(JSON.parse(ok(d, ['log', '--json', '-n', '1']))[0].id).toBe(f1);
    expect(sha256(F)).toBe(ffSha);
    expect(JSON.parse(ok(d, ['status', '--json'])).files).toEqual([]);

    ok(d, ['checkout', '-b', 'side']);
    write(F, { w: W(3), v: W(4) });
    const s1 = commit(d, 'side step');
    ok(d, ['checkout', 'main']);
    const nf = JSON.parse(ok(d, ['merge', 'side', '--no-ff', '-m', 'merge side', '--json']));
    expect(nf.fastForward).toBe(false);
    const head = JSON.parse(ok(d, ['log', '--json', '-n', '1']))[0];
    expect(head.commit.parents).toEqual([f1, s1]);
    expect(head.commit.message).toBe('merge side\n');
    expect(ok(d, ['log'])).toContain('Merge: ');
    expect(ok(d, ['merge', 'side'])).toContain('Already up to date');

    // Diverged: --ff-only refuses; octopus refused; dirty worktree refused.
    ok(d, ['branch', 'div', b0]);
    ok(d, ['checkout', 'div']);
    write(F, { w: W(5), v: W(2) });
    commit(d, 'div');
    ok(d, ['checkout', 'main']);
    const ffo = coral(d, ['merge', 'div', '--ff-only']);
    expect(ffo.code).toBe(2);
    expect(ffo.stderr).toContain('not possible to fast-forward');
    const oct = coral(d, ['merge', 'div', 'side']);
    expect(oct.code).toBe(2);
    expect(oct.stderr).toContain('octopus');
    fs.appendFileSync(F, 'x');
    const dirty = coral(d, ['merge', 'div', '--strategy', 'average']);
    expect(dirty.code).toBe(6);
    ok(d, ['checkout', '-f', 'main']);

    // Shape mismatch: a numeric strategy cannot resolve it, and says so.
    ok(d, ['branch', 'shape', b0]);
    ok(d, ['checkout', 'shape']);
    write(F, { w: W(6, 32), v: W(2) });
    commit(d, 'reshape');
    ok(d, ['checkout', 'main']);
    const sm = coral(d, ['merge', 'shape', '--strategy', 'average']);
    expect(sm.code).toBe(5);
    expect(sm.stderr).toContain('cannot resolve a dtype or shape mismatch');
    const ok2 = JSON.parse(ok(d, ['merge', 'shape', '--strategy', 'average', '--resolve', 'w=theirs', '--json']));
    expect(ok2.resolved).toEqual([{ file: 'm.safetensors', tensor: 'w', strategy: 'theirs' }]);
    expectBits((await load(F)).tensors.get('w'), W(6, 32));
  });

  it('--no-commit/--abort, and a crash after MERGE_STATE recovers with --abort or --continue (gc in between)', async () => {
    const d = repoDir();
    const F = path.join(d, 'm.safetensors');
    const G = path.join(d, 'other.safetensors');
    const base = { w: W(1, 256), v: W(2) };
    write(F, base);
    write(G, { g: W(9) });
    commit(d, 'base');
    ok(d, ['branch', 'feat']);
    const ours = { w: perturb(base.w, 5, 10), v: base.v };
    write(F, ours);
    const oId = commit(d, 'ours');
    ok(d, ['checkout', 'feat']);
    const theirs = { w: perturb(base.w, 6, 10), v: W(3) };
    write(F, theirs);
    write(G, { g: W(10) });
    const tId = commit(d, 'theirs');
    ok(d, ['checkout', 'main']);
    const before = snapshot(d, 'm.safetensors', false);
    const gBefore = sha256(G);

    const nc = JSON.parse(ok(d, ['merge', 'feat', '--strategy', 'average', '--no-commit', '--json']));
    expect(nc).toMatchObject({ status: 'pending', commit: null });
    const mergedF = sha256(F);
    const mergedG = sha256(G);
    expect(mergedF).not.toBe(before.file);
    expectBits((await load(F)).tensors.get('w'), mean(ours.w, theirs.w));
    expectBits((await load(F)).tensors.get('v'), theirs.v);
    expect(ok(d, ['status'])).toContain('middle of a merge');
    expect(coral(d, ['merge', 'feat']).code).toBe(8); // already in progress
    ok(d, ['merge', '--abort']);
    expect(snapshot(d, 'm.safetensors', false)).toEqual(before);
    expect(sha256(G)).toBe(gBefore);

    // Crash right after MERGE_STATE is written: worktree still ours; --abort restores cleanly.
    const crash = coral(d, ['merge', 'feat', '--strategy', 'average'], { CORAL_CRASH_AT: 'merge:after-state' });
    expect(crash.code).not.toBe(0);
    expect(fs.existsSync(path.join(d, '.coral', 'MERGE_STATE'))).toBe(true);
    expect(JSON.parse(ok(d, ['status', '--json'])).merging).toBe(true);
    ok(d, ['merge', '--abort']);
    expect(snapshot(d, 'm.safetensors', false)).toEqual(before);

    // Crash again; gc runs; --continue applies the merged tree and commits with both parents.
    expect(coral(d, ['merge', 'feat', '--strategy', 'average'], { CORAL_CRASH_AT: 'merge:after-state' }).code).not.toBe(
      0,
    );
    ok(d, ['gc', '--prune=now']);
    const id = JSON.parse(ok(d, ['merge', '--continue', '--json'])).commit;
    expect(sha256(F)).toBe(mergedF);
    expect(sha256(G)).toBe(mergedG);
    const head = JSON.parse(ok(d, ['log', '--json', '-n', '1']))[0];
    expect(head.id).toBe(id);
    expect(head.commit.parents).toEqual([oId, tId]);
    expect(head.commit.metadata.merge.resolved).toEqual({ 'm.safetensors:w': 'average' });
    expect(JSON.parse(ok(d, ['status', '--json']))).toMatchObject({ files: [], merging: false });
    expect(JSON.parse(ok(d, ['fsck', '--json'])).ok).toBe(true);
  });
});
