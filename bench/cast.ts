/**
 * Casts and resizes (codecs CAST and ROWS, issue #18), through the repository
 * (Repository API in-process, each measured step on a freshly opened
 * repository so no decoded base is cached from the setup):
 *
 * 1. The BF16 cast of a committed F32 model: bytes its tensors take in the
 *    repository vs the file size (target <= 1%, plus the skeleton); baseline
 *    in the same run: the BF16 tensors encoded standalone (what coral stored
 *    before CAST). Checked byte-exact on export.
 * 2. A BF16 fine-tune (the F32 model fine-tuned, AdamW-like rel 1e-3, then
 *    cast) whose F32 base is committed, with its BF16 cast committed too
 *    (both are candidates) and, in a second repository, alone (CAST is the
 *    only delta): stored bytes vs the better of standalone and a
 *    BF16-to-BF16 delta against the BF16 cast (same run).
 * 3. Ingest time of the cast vs ingest of an exact duplicate of the same size
 *    (a copy of a committed, unrelated BF16 model under a new path: dedup),
 *    in alternating order. Target within 1.2x. The cast is found in the
 *    cast-id index (similarity.castIds) and stored without reading its base.
 * 4. The cost of computing the cast ids: `add` of a new F32 model into a fresh
 *    repository with similarity.castIds true vs false, in alternating order
 *    (target: at most 5% more).
 * 5. An embedding grown by 16 tokens ([32000, 4096] F32, 512 MiB; --quick:
 *    [3200, 1024]) committed under the same path: the embedding's stored bytes
 *    vs the new rows' raw bytes plus 1% of the tensor; baseline: standalone.
 *    One run (--no-rows skips it).
 *
 * Model: 8 F32 matrices of [2048, 2048] (128 MiB; --quick: [1024, 1024], 32 MiB),
 * trained-like values (bench/lib/weights.ts). Medians of 6 runs (--runs N); `sync` before each timed add.
 *
 *   npx tsx bench/cast.ts [--quick] [--runs N] [--no-rows]
 */
import { execSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { castTensorSync, encode } from '../lib/codec';
import { ObjectReader } from '../lib/odb/objects';
import { Repository } from '../lib/repository';
import type { Tensor } from '../lib/tensor/tensor';
import { argFlag, emitJson, header, median, table } from './lib/harness';
import { fineTune, trainedLike } from './lib/weights';

const quick = argFlag('quick');
const N = quick ? 1024 : 2048;
const LAYERS = 8;
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Math.max(1, Number(process.argv[runsArg + 1])) : 6;
const ROWS = !argFlag('no-rows');
const V = quick ? 3200 : 32000;
const D = quick ? 1024 : 4096;

type Tensors = Record<string, Tensor>;

function writeSafetensors(file: string, ts: Tensors): void {
  const names = Object.keys(ts).sort();
  const hdr: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const n of names) {
    hdr[n] = { dtype: ts[n].dtype, shape: ts[n].shape, data_offsets: [off, off + ts[n].data.byteLength] };
    off += ts[n].data.byteLength;
  }
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, len);
  fs.writeSync(fd, h);
  for (const n of names) fs.writeSync(fd, ts[n].data);
  fs.closeSync(fd);
}

const f32 = (a: Float32Array, shape: number[]): Tensor => ({
  dtype: 'F32',
  shape,
  data: new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
});
const sha = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const cast = (ts: Tensors, dtype: 'BF16'): Tensors =>
  Object.fromEntries(Object.entries(ts).map(([k, t]) => [k, castTensorSync(t, dtype)]));

async function segmentBytes(
  repo: Repository,
  file: string,
): Promise<{ segments: number; skeleton: number; size: number; codecs: string[] }> {
  const e = (await repo.treeOf('HEAD')).files[file];
  let segments = 0;
  const codecs = new Set<string>();
  for (const s of e.segments) {
    const i = await repo.reader.info(s.object);
    segments += i.storedSize;
    codecs.add(i.codec);
  }
  return { segments, skeleton: (await repo.reader.info(e.skeleton)).storedSize, size: e.size, codecs: [...codecs] };
}

async function timedAdd(dir: string, file: string, config: Record<string, boolean> = {}): Promise<number> {
  const repo = await Repository.open(dir); // fresh: no decoded base cached from the setup
  for (const [k, v] of Object.entries(config)) await repo.config.set(k, v);
  const t0 = process.hrtime.bigint();
  await repo.add([path.join(dir, file)]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await repo.commit({ message: file });
  await repo.close();
  return s;
}

async function main(): Promise<void> {
  header(`cast: CAST and ROWS through the repository (${quick ? 'quick' : 'full'})`);
  const fp32: Tensors = {};
  const tuned: Tensors = {};
  for (let i = 0; i < LAYERS; i++) {
    const w = trainedLike(N, N, 100 + i);
    fp32[`layers.${i}.weight`] = f32(w, [N, N]);
    tuned[`layers.${i}.weight`] = f32(fineTune(w, 1e-3, 200 + i, N), [N, N]);
  }
  const bf16 = cast(fp32, 'BF16');
  const bf16Tuned = cast(tuned, 'BF16');
  // An unrelated BF16 model of the same size: its copy is the duplicate of 3.
  const otherF32: Tensors = {};
  for (let i = 0; i < LAYERS; i++) otherF32[`layers.${i}.weight`] = f32(trainedLike(N, N, 300 + i), [N, N]);
  const other = cast(otherF32, 'BF16');

  // Baselines, same run: standalone BF16, and BF16-to-BF16 deltas against the cast.
  let standalone = 0;
  let standaloneTuned = 0;
  let deltaVsCast = 0;
  for (const k of Object.keys(bf16)) {
    standalone += (await encode(bf16[k])).bytes.byteLength;
    standaloneTuned += (await encode(bf16Tuned[k])).bytes.byteLength;
    deltaVsCast += (await encode(bf16Tuned[k], { base: { tensor: bf16[k] } })).bytes.byteLength;
  }

  const castStored: number[] = [];
  const tunedStored: number[] = [];
  const castSecs: number[] = [];
  const dupSecs: number[] = [];
  const f32With: number[] = [];
  const f32Without: number[] = [];
  const castReads: number[] = [];
  const tunedF32Only: number[] = [];
  let fileSize = 0;
  let skeleton = 0;
  let exact = true;
  let castCodecs: string[] = [];
  const mk = () => fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-cast-'));
  for (let r = 0; r < RUNS; r++) {
    const dir = mk();
    const off = mk();
    try {
      await (await Repository.init(dir)).close();
      await (await Repository.init(off)).close();
      for (const d of [dir, off]) writeSafetensors(path.join(d, 'model-fp32.safetensors'), fp32);
      // 4. New-model F32 ingest with and without the cast ids, alternating which goes first.
      for (const on of r % 2 ? [false, true] : [true, false]) {
        // Dirty pages of the files just written are flushed first, so neither add pays their writeback.
        execSync('sync');
        const s = await timedAdd(on ? dir : off, 'model-fp32.safetensors', { 'similarity.castIds': on });
        (on ? f32With : f32Without).push(s);
      }
      writeSafetensors(path.join(dir, 'model-bf16.safetensors'), bf16);
      writeSafetensors(path.join(dir, 'tuned-bf16.safetensors'), bf16Tuned);
      writeSafetensors(path.join(dir, 'other-bf16.safetensors'), other);
      const want = sha(path.join(dir, 'model-bf16.safetensors'));
      // 3. An unrelated BF16 model of the same size is committed; its copy is the duplicate.
      await timedAdd(dir, 'other-bf16.safetensors');
      fs.copyFileSync(path.join(dir, 'other-bf16.safetensors'), path.join(dir, 'copy-bf16.safetensors'));
      // Read the files once so both timed adds find them in the page cache.
      for (const f of ['model-bf16', 'copy-bf16']) fs.readFileSync(path.join(dir, `${f}.safetensors`));
      // Cast vs duplicate, alternating which goes first; tensor reads counted during the cast's add.
      for (const which of r % 2 ? ['dup', 'cast'] : ['cast', 'dup']) {
        execSync('sync');
        if (which === 'dup') {
          dupSecs.push(await timedAdd(dir, 'copy-bf16.safetensors'));
          continue;
        }
        // eslint-disable-next-line @typescript-eslint/unbound-method -- re-applied to its own receiver below
        const orig = ObjectReader.prototype.tensor;
        let reads = 0;
        ObjectReader.prototype.tensor = function (this: ObjectReader, ...a: Parameters<typeof orig>) {
          reads++;
          return orig.apply(this, a);
        };
        try {
          castSecs.push(await timedAdd(dir, 'model-bf16.safetensors'));
        } finally {
          ObjectReader.prototype.tensor = orig;
        }
        castReads.push(reads);
      }
      // 2. The fine-tune, with the BF16 cast stored (a same-dtype candidate) and, in the other
      // repository, with only the F32 model stored (CAST is the only delta).
      await timedAdd(dir, 'tuned-bf16.safetensors');
      writeSafetensors(path.join(off, 'tuned-bf16.safetensors'), bf16Tuned);
      await timedAdd(off, 'tuned-bf16.safetensors');
      const offRepo = await Repository.open(off);
      tunedF32Only.push((await segmentBytes(offRepo, 'tuned-bf16.safetensors')).segments);
      await offRepo.close();
      const check = await Repository.open(dir);
      const c = await segmentBytes(check, 'model-bf16.safetensors');
      castStored.push(c.segments);
      castCodecs = c.codecs;
      fileSize = c.size;
      skeleton = c.skeleton;
      tunedStored.push((await segmentBytes(check, 'tuned-bf16.safetensors')).segments);
      const out = path.join(dir, 'export.bin');
      await check.exportFile('HEAD', 'model-bf16.safetensors', out);
      exact &&= sha(out) === want;
      await check.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(off, { recursive: true, force: true });
    }
  }

  // 16 new tokens on an embedding, committed under the same path.
  const embDir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-rows-'));
  const emb = { stored: 0, standalone: 0, codec: '', exact: false };
  if (ROWS)
    try {
      const e0 = trainedLike(V, D, 7);
      const repo = await Repository.init(embDir);
      const file = path.join(embDir, 'model.safetensors');
      writeSafetensors(file, { 'embed.weight': f32(e0, [V, D]) });
      await repo.add([file]);
      await repo.commit({ message: 'v1' });
      await repo.close();
      const e1 = new Float32Array((V + 16) * D);
      e1.set(e0);
      e1.set(trainedLike(16, D, 8), V * D);
      const grown = f32(e1, [V + 16, D]);
      emb.standalone = (await encode(grown)).bytes.byteLength;
      writeSafetensors(file, { 'embed.weight': grown });
      const want = sha(file);
      await timedAdd(embDir, 'model.safetensors');
      const check = await Repository.open(embDir);
      const s = await segmentBytes(check, 'model.safetensors');
      emb.stored = s.segments;
      emb.codec = s.codecs.join(',');
      await check.exportFile('HEAD', 'model.safetensors', path.join(embDir, 'export.bin'));
      emb.exact = sha(path.join(embDir, 'export.bin')) === want;
      await check.close();
    } finally {
      fs.rmSync(embDir, { recursive: true, force: true });
    }

  const newRows = 16 * D * 4;
  const embRaw = (V + 16) * D * 4;
  const res = {
    modelBytes: fileSize,
    castStored: median(castStored),
    castFraction: median(castStored) / fileSize,
    castSkeleton: skeleton,
    castCodecs: castCodecs.join(','),
    castStandalone: standalone,
    castExact: exact,
    tunedStored: median(tunedStored),
    tunedStandalone: standaloneTuned,
    tunedDeltaVsCast: deltaVsCast,
    tunedVsBestBaseline: median(tunedStored) / Math.min(standaloneTuned, deltaVsCast),
    tunedStoredF32Only: median(tunedF32Only),
    tunedF32OnlyVsBestBaseline: median(tunedF32Only) / Math.min(standaloneTuned, deltaVsCast),
    castIngestSeconds: median(castSecs),
    duplicateIngestSeconds: median(dupSecs),
    ingestRatio: median(castSecs) / median(dupSecs),
    castIngestTensorReads: median(castReads),
    f32IngestSecondsCastIds: median(f32With),
    f32IngestSecondsNoCastIds: median(f32Without),
    castIdCost: median(f32With) / median(f32Without),
    runs: RUNS,
    perRun: { castSecs, dupSecs, f32With, f32Without },
    embShape: [V + 16, D],
    embStored: emb.stored,
    embNewRowsBytes: newRows,
    embBudget: newRows + 0.01 * embRaw,
    embStandalone: emb.standalone,
    embCodec: emb.codec,
    embExact: emb.exact,
  };
  table([
    {
      workload: 'bf16 cast of committed fp32',
      coral: res.castStored,
      baseline: standalone,
      ratio: res.castStored / standalone,
      target: `<= ${(0.01 * fileSize).toFixed(0)} (1% of file)`,
    },
    {
      workload: 'bf16 fine-tune, fp32 base committed',
      coral: res.tunedStored,
      baseline: Math.min(standaloneTuned, deltaVsCast),
      ratio: res.tunedVsBestBaseline,
      target: '<= 1.000 x best of standalone / bf16 delta',
    },
    {
      workload: 'bf16 fine-tune, only fp32 stored',
      coral: res.tunedStoredF32Only,
      baseline: Math.min(standaloneTuned, deltaVsCast),
      ratio: res.tunedF32OnlyVsBestBaseline,
      target: '(CAST: + its params)',
    },
    {
      workload: 'ingest s: cast vs exact duplicate',
      coral: res.castIngestSeconds,
      baseline: res.duplicateIngestSeconds,
      ratio: res.ingestRatio,
      target: '<= 1.2',
    },
    {
      workload: 'new F32 model add s: cast ids on vs off',
      coral: res.f32IngestSecondsCastIds,
      baseline: res.f32IngestSecondsNoCastIds,
      ratio: res.castIdCost,
      target: '<= 1.05',
    },
    ...(ROWS
      ? [
          {
            workload: `embedding +16 rows [${V + 16},${D}]`,
            coral: emb.stored,
            baseline: emb.standalone,
            ratio: emb.stored / emb.standalone,
            target: `<= ${res.embBudget.toFixed(0)} (new rows + 1%)`,
          },
        ]
      : []),
  ]);
  console.log(
    `cast file ${fileSize} B, skeleton ${skeleton} B, codecs ${res.castCodecs}; byte-exact: ${exact && (!ROWS || emb.exact)}; ` +
      `tensor reads during the cast's add: ${res.castIngestTensorReads}; medians of ${RUNS} runs`,
  );
  emitJson('cast', res);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
