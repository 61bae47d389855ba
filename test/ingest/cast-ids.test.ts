// Cast ids (issue #18): the content ids of an F32/F64 tensor's RNE casts are
// computed in the content-id pass (portable and AVX2 alike, bit-exact on every
// edge value) and recorded in the cast-id index; adding such a cast later
// stores a CAST object without reading the base, checks out byte for byte and
// passes fsck. The index is a hint: damaged, missing or stale entries (a base
// gone from the store) fall back to the ordinary path; gc drops entries whose
// base went, and fsck --rebuild-index recreates it.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { castTensorSync, decodeSync, encodePureCast, encodeSync, inspectObject } from '../../lib/codec';
import { contentIdSync, contentIdWithCasts } from '../../lib/hash';
import { ObjectReader } from '../../lib/odb/objects';
import { Repository } from '../../lib/repository';
import { RepoSimilarity } from '../../lib/ingest/similarity';
import { CastIndex } from '../../lib/similarity/cast-index';
import { SimilarityStore } from '../../lib/similarity/index-file';
import type { DType } from '../../lib/tensor/dtype';
import type { Tensor } from '../../lib/tensor/tensor';
import { runPortableScript } from '../helpers/portable';
import { f32, weights, writeSafetensors } from './helpers';

const dirs: string[] = [];
afterAll(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** F32 values covering the rounding's edge cases, then seeded weights. */
function hostileF32(n: number, seed: number): Tensor {
  const w = weights(n, seed);
  const u = new Uint32Array(w.buffer);
  const special = [
    0x7fc00001, // quiet NaN with payload
    0xff800001, // signalling NaN, negative, low payload (lost in BF16: quiet bit set)
    0x7fffffff, // NaN, all payload bits
    0x80000000, // -0.0
    0x00000001, // smallest subnormal
    0x807fffff, // largest negative subnormal
    0x7f7fffff, // max finite: rounds to Inf in BF16 and F16
    0x477fe000, // 65504 (F16 max)
    0x477ff000, // halfway past F16 max: RNE to Inf
    0x3f808000, // BF16 tie, even stays
    0x3f818000, // BF16 tie, odd rounds up
    0x33000000, // 2^-25: F16 tie to zero
    0x33000001, // just above: smallest F16 subnormal
    0x7f800000,
    0xff800000,
  ];
  for (let i = 0; i < special.length && i < n; i++) u[(i * 7919) % n] = special[i];
  return { dtype: 'F32', shape: [n], data: f32(w) };
}

function toF64(t: Tensor): Tensor {
  return castTensorSync(t, 'F64');
}

describe('contentIdWithCasts', () => {
  // 0, tiny, one chunk, chunk boundaries of both the source and the casts, and odd tails.
  const sizes = [0, 1, 5, 4096, 262144, 262144 + 3, 524288, 1048576 + 17];

  it('gives the content id and the exact ids of the RNE casts (F32 -> BF16/F16, F64 -> F32)', async () => {
    for (const n of sizes) {
      const t = hostileF32(n, n + 1);
      const r = await contentIdWithCasts(t);
      expect(r.id).toBe(contentIdSync(t));
      expect(r.casts.map((c) => c.dtype)).toEqual(['BF16', 'F16']);
      for (const c of r.casts) expect(c.id, `${n} ${c.dtype}`).toBe(contentIdSync(castTensorSync(t, c.dtype, 'RNE')));
      const d = toF64(t);
      // Values F32 cannot hold: the F64 -> F32 rounding matters.
      const dv = new Float64Array(d.data.buffer, d.data.byteOffset, n);
      for (let i = 0; i < n; i += 3) dv[i] = dv[i] * (1 + 2 ** -30) + 2 ** -1070;
      const r64 = await contentIdWithCasts(d);
      expect(r64.id).toBe(contentIdSync(d));
      expect(r64.casts).toEqual([{ dtype: 'F32', id: contentIdSync(castTensorSync(d, 'F32', 'RNE')) }]);
    }
  });

  it('is the id alone for other dtypes, and keeps shape in the ids', async () => {
    const t = hostileF32(64, 3);
    const b = castTensorSync(t, 'BF16');
    expect(await contentIdWithCasts(b)).toEqual({ id: contentIdSync(b), casts: [] });
    const m = { ...t, shape: [8, 8] };
    const r = await contentIdWithCasts(m);
    expect(r.casts[0].id).toBe(contentIdSync({ ...castTensorSync(m, 'BF16'), shape: [8, 8] }));
    expect(r.casts[0].id).not.toBe((await contentIdWithCasts(t)).casts[0].id);
  });

  it('writes the same ids on the portable kernels as on AVX2', async () => {
    const jobs = [hostileF32(262144 * 2 + 9, 11), toF64(hostileF32(70001, 12)), hostileF32(33, 13)];
    const here = await Promise.all(jobs.map((t) => contentIdWithCasts(t)));
    const child = path.join(__dirname, 'cast-ids-child.ts');
    const wire = JSON.stringify(
      jobs.map((t) => ({ dtype: t.dtype, shape: t.shape, data: Buffer.from(t.data).toString('base64') })),
    );
    expect(JSON.parse(runPortableScript(child, wire))).toEqual(here);
  });

  it('encodePureCast writes the bytes encode writes for a pure cast, and they decode bit-exactly', () => {
    const t = hostileF32(5000, 21);
    for (const dt of ['BF16', 'F16'] as DType[]) {
      const c = castTensorSync(t, dt);
      const enc = encodePureCast(c, contentIdSync(c), { dtype: 'F32', id: contentIdSync(t) });
      expect(Buffer.compare(enc.bytes, encodeSync(c, { base: { tensor: t } }).bytes)).toBe(0);
      expect(Buffer.from(decodeSync(enc.bytes, { tensor: t }).data).equals(Buffer.from(c.data))).toBe(true);
      const h = inspectObject(enc.bytes);
      expect(h.params).toEqual({ baseDtype: 'F32', rounding: 'RNE', inner: 'SPARSE_UPDATE', residual: 0 });
    }
    // A wrong id is caught by decode's content-id check, as for every object.
    const c = castTensorSync(t, 'BF16');
    const bad = encodePureCast(
      c,
      contentIdSync(t).replace(/^./, (x) => (x === '0' ? '1' : '0')),
      {
        dtype: 'F32',
        id: contentIdSync(t),
      },
    );
    expect(() => decodeSync(bad.bytes, { tensor: t })).toThrow();
  });
});

// ---- through the repository -------------------------------------------------------------

type Model = Record<string, Tensor>;

function model(seed: number): Model {
  const m: Model = {};
  m['a.weight'] = { ...hostileF32(256 * 300, seed), shape: [256, 300] };
  m['b.weight'] = { dtype: 'F32', shape: [128, 64], data: f32(weights(128 * 64, seed + 1)) };
  m['c.bias'] = { dtype: 'F32', shape: [300], data: f32(weights(300, seed + 2)) };
  return m;
}

function write(file: string, m: Model, dtype: DType = 'F32'): void {
  const t: Record<string, { dtype: DType; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of Object.entries(m))
    t[k] = { ...(dtype === v.dtype ? v : castTensorSync(v, dtype)), shape: v.shape.slice() };
  writeSafetensors(file, t, { format: 'pt' });
}

async function newRepo(): Promise<Repository> {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-castids-'));
  dirs.push(d);
  const repo = await Repository.init(d);
  await repo.config.set('core.compressionLevel', 1);
  return repo;
}

const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** Counts tensor reads (decodes) of the given ids while fn runs. */
async function countingReads<T>(ids: Set<string>, fn: () => Promise<T>): Promise<{ reads: number; value: T }> {
  let reads = 0;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- re-applied to its own receiver below
  const real = ObjectReader.prototype.tensor;
  const spy = vi.spyOn(ObjectReader.prototype, 'tensor').mockImplementation(function (this: ObjectReader, ...a) {
    if (ids.has(a[0])) reads++;
    return real.apply(this, a);
  });
  try {
    const value = await fn();
    return { reads, value };
  } finally {
    spy.mockRestore();
  }
}

async function segmentInfo(repo: Repository, file: string) {
  const e = (await repo.treeOf('HEAD')).files[file];
  return Promise.all(e.segments.map((s) => repo.reader.info(s.object)));
}

async function f32Ids(repo: Repository, file: string): Promise<Set<string>> {
  return new Set((await repo.treeOf('HEAD')).files[file].segments.map((s) => s.object));
}

async function exportsExactly(repo: Repository, file: string): Promise<boolean> {
  const out = path.join(repo.worktree, '..', `${path.basename(repo.worktree)}-${file}.out`);
  dirs.push(out);
  await repo.exportFile('HEAD', file, out);
  return sha(out) === sha(path.join(repo.worktree, file));
}

describe('the cast-id index', () => {
  it('a BF16/F16 copy of a committed model is stored as CAST without reading the base', async () => {
    const repo = await newRepo();
    const m = model(1);
    write(path.join(repo.worktree, 'fp32.safetensors'), m);
    await repo.add([path.join(repo.worktree, 'fp32.safetensors')]);
    await repo.commit({ message: 'fp32' });
    const bases = await f32Ids(repo, 'fp32.safetensors');
    const ix = await CastIndex.open(path.join(repo.worktree, '.coral', 'castindex'));
    expect(ix.size).toBe(2 * bases.size); // BF16 and F16 per F32 tensor
    for (const dt of ['BF16', 'F16'] as const) {
      const name = `${dt}.safetensors`;
      write(path.join(repo.worktree, name), m, dt);
      const { reads } = await countingReads(bases, () => repo.add([path.join(repo.worktree, name)]));
      expect(reads, dt).toBe(0);
      await repo.commit({ message: dt });
      for (const i of await segmentInfo(repo, name)) {
        expect(i.codec).toBe('CAST');
        expect(bases.has(i.base!)).toBe(true);
      }
      expect(await exportsExactly(repo, name)).toBe(true);
    }
    expect((await repo.fsck({ full: true })).ok).toBe(true);
    await repo.close();
  });

  it("a pure cast is indexed under its source's fingerprint, without a fingerprint pass over the cast", async () => {
    const repo = await newRepo();
    const m = model(5);
    write(path.join(repo.worktree, 'fp32.safetensors'), m);
    await repo.add([path.join(repo.worktree, 'fp32.safetensors')]);
    await repo.commit({ message: 'fp32' });
    write(path.join(repo.worktree, 'bf16.safetensors'), m, 'BF16');
    const passes = vi.spyOn(RepoSimilarity.prototype, 'fingerprint');
    await repo.add([path.join(repo.worktree, 'bf16.safetensors')]);
    expect(passes).not.toHaveBeenCalled();
    passes.mockRestore();
    await repo.commit({ message: 'bf16' });
    const sim = await SimilarityStore.open(path.join(repo.worktree, '.coral', 'simindex'));
    let indexed = 0;
    for (const i of await segmentInfo(repo, 'bf16.safetensors')) {
      expect(i.codec).toBe('CAST');
      const src = sim.index.get(i.base!);
      if (!src) continue; // too small to be indexed
      const e = sim.index.get(i.id)!;
      expect(e.dtype).toBe('BF16');
      expect(Buffer.from(e.signature).equals(Buffer.from(src.signature))).toBe(true);
      indexed++;
    }
    expect(indexed).toBeGreaterThan(0);
    await sim.close();
    // Queried across dtypes, the copy still finds its source first.
    const r = await repo.similar({ file: path.join(repo.worktree, 'bf16.safetensors') });
    expect(r.matches.filter((x) => x.path !== 'bf16.safetensors')[0].path).toBe('fp32.safetensors');
    await repo.close();
  });

  it('F64 -> F32 too; with similarity.castIds off nothing is recorded and the ordinary path stores the cast', async () => {
    const repo = await newRepo();
    const m = model(2);
    const m64: Model = Object.fromEntries(Object.entries(m).map(([k, v]) => [k, { ...toF64(v), shape: v.shape }]));
    write(path.join(repo.worktree, 'fp64.safetensors'), m64, 'F64');
    await repo.add([path.join(repo.worktree, 'fp64.safetensors')]);
    await repo.commit({ message: 'fp64' });
    const bases = await f32Ids(repo, 'fp64.safetensors');
    write(path.join(repo.worktree, 'fp32.safetensors'), m64, 'F32');
    const { reads } = await countingReads(bases, () => repo.add([path.join(repo.worktree, 'fp32.safetensors')]));
    expect(reads).toBe(0);
    await repo.commit({ message: 'fp32' });
    expect(await exportsExactly(repo, 'fp32.safetensors')).toBe(true);

    await repo.config.set('similarity.castIds', false);
    const other = model(3);
    write(path.join(repo.worktree, 'other.safetensors'), other);
    await repo.add([path.join(repo.worktree, 'other.safetensors')]);
    await repo.commit({ message: 'other' });
    const ix = await CastIndex.open(path.join(repo.worktree, '.coral', 'castindex'));
    const otherIds = await f32Ids(repo, 'other.safetensors');
    expect(ix.all().some((e) => otherIds.has(e.base))).toBe(false);
    write(path.join(repo.worktree, 'other-bf16.safetensors'), other, 'BF16');
    const r = await countingReads(otherIds, () => repo.add([path.join(repo.worktree, 'other-bf16.safetensors')]));
    expect(r.reads).toBeGreaterThan(0); // the slow path decodes the base
    await repo.commit({ message: 'other bf16' });
    expect(await exportsExactly(repo, 'other-bf16.safetensors')).toBe(true);
    expect((await repo.fsck({ full: true })).ok).toBe(true);
    await repo.close();
  });

  it('a hint only: a base gone from the store, a damaged entry or a damaged snapshot take the ordinary path', async () => {
    const repo = await newRepo();
    const dir = path.join(repo.worktree, '.coral', 'castindex');
    const m = model(4);
    const bf = Object.fromEntries(
      Object.entries(m).map(([k, v]) => [k, { ...castTensorSync(v, 'BF16'), shape: v.shape }]),
    );
    // Entries naming bases that are not stored.
    const ix = await CastIndex.open(dir);
    await ix.add(
      Object.values(bf).map((t) => ({
        castId: contentIdSync(t),
        base: crypto.createHash('md5').update(contentIdSync(t)).digest('hex'),
        dtype: 'BF16' as const,
        rounding: 'RNE' as const,
      })),
    );
    await ix.close();
    write(path.join(repo.worktree, 'bf16.safetensors'), m, 'BF16');
    await repo.add([path.join(repo.worktree, 'bf16.safetensors')]);
    await repo.commit({ message: 'bf16 alone' });
    for (const i of await segmentInfo(repo, 'bf16.safetensors')) expect(i.codec).not.toBe('CAST');
    expect(await exportsExactly(repo, 'bf16.safetensors')).toBe(true);

    // A damaged log record and a torn tail are skipped; a damaged snapshot counts as empty.
    const ix2 = await CastIndex.open(dir);
    const n = ix2.size;
    const log = path.join(dir, 'log-zz-test-1-00000000.ccl');
    const good = Buffer.alloc(12 + 40 * 2);
    Buffer.from('CORALCCL').copy(good, 0);
    good.writeUInt32LE(1, 8);
    good[12] = 1; // an add record with a bad checksum
    fs.writeFileSync(log, Buffer.concat([good, Buffer.from([1, 3, 0])]));
    expect((await CastIndex.open(dir)).size).toBe(n);
    fs.writeFileSync(path.join(dir, 'casts.ccx'), Buffer.from('CORALCCX garbage'));
    fs.rmSync(log);
    const ix3 = await CastIndex.open(dir);
    expect(ix3.size).toBeLessThanOrEqual(n);
    await ix3.close();
    expect((await repo.fsck({ full: true })).ok).toBe(true);
    await repo.close();
  });

  it('gc drops entries whose base went; fsck --rebuild-index recreates the index', async () => {
    const repo = await newRepo();
    const dir = path.join(repo.worktree, '.coral', 'castindex');
    const keep = model(5);
    write(path.join(repo.worktree, 'keep.safetensors'), keep);
    await repo.add([path.join(repo.worktree, 'keep.safetensors')]);
    await repo.commit({ message: 'keep' });
    const kept = await f32Ids(repo, 'keep.safetensors');
    const file = path.join(repo.worktree, 'gone.safetensors');
    write(file, model(6));
    await repo.add([file]); // staged only, then unstaged: nothing names it
    const all = (await CastIndex.open(dir)).all();
    const goneBases = new Set(all.filter((e) => !kept.has(e.base)).map((e) => e.base));
    expect(goneBases.size).toBe(3);
    await repo.reset([file]);
    const report = await repo.gc({ pruneExpireMs: 0 });
    for (const b of goneBases) expect(await repo.store.has(b)).toBe(false);
    expect(report.removedCastIds).toBe(6);
    const after = await CastIndex.open(dir);
    expect(after.size).toBe(2 * kept.size);
    expect(after.all().every((e) => kept.has(e.base))).toBe(true);

    // Rebuilt from the stored objects (decoding them: no castids attributes by default).
    fs.rmSync(dir, { recursive: true, force: true });
    const si = await repo.rebuildSimilarityIndex();
    expect(si.castIds).toBe(2 * kept.size);
    const rebuilt = await CastIndex.open(dir);
    expect(new Set(rebuilt.all().map((e) => `${e.castId}${e.base}${e.dtype}`))).toEqual(
      new Set(after.all().map((e) => `${e.castId}${e.base}${e.dtype}`)),
    );
    // And from attributes when fingerprints (and cast ids) are stored with the objects.
    await repo.config.set('similarity.storeFingerprints', true);
    const m2 = model(7);
    write(path.join(repo.worktree, 'attrs.safetensors'), m2);
    await repo.add([path.join(repo.worktree, 'attrs.safetensors')]);
    await repo.commit({ message: 'attrs' });
    for (const id of await f32Ids(repo, 'attrs.safetensors'))
      expect((await repo.store.stat(id)).extra?.castids).toMatch(/^BF16:[0-9a-f]{32},F16:[0-9a-f]{32}$/);
    const si2 = await repo.rebuildSimilarityIndex();
    expect(si2.castIds).toBe(2 * (kept.size + 3));
    write(path.join(repo.worktree, 'attrs-f16.safetensors'), m2, 'F16');
    await repo.add([path.join(repo.worktree, 'attrs-f16.safetensors')]);
    await repo.commit({ message: 'f16' });
    for (const i of await segmentInfo(repo, 'attrs-f16.safetensors')) expect(i.codec).toBe('CAST');
    expect(await exportsExactly(repo, 'attrs-f16.safetensors')).toBe(true);
    expect((await repo.fsck({ full: true })).ok).toBe(true);
    await repo.close();
  });
});
