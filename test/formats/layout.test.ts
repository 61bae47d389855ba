import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError, LimitExceededError, UnsafePickleError, UnsupportedFormatError } from '../../lib/errors';
import {
  type CheckpointLayout,
  detectFormat,
  readSegment,
  scanCheckpoint,
  skeletonRanges,
  tensorFromSegment,
} from '../../lib/formats/layout';
import { readNpy, readNpz, serializeNpz } from '../../lib/formats/numpy';
import { loadStateDict, serializePyTorch } from '../../lib/formats/pytorch';
import { readSafetensors, serializeSafetensors, writeSafetensors } from '../../lib/formats/safetensors';
import type { Tensor } from '../../lib/tensor/tensor';
import { FIXTURES, allDtypeTensors, expectCode, hex, randomTensor, rng, tmpDir } from './helpers';

/** Checks the skeleton/segment invariant and returns each tensor materialised from its segment. */
async function checkInvariant(file: string): Promise<{ layout: CheckpointLayout; tensors: Map<string, Tensor> }> {
  const bytes = fs.readFileSync(file);
  const layout = await scanCheckpoint(file);
  expect(layout.fileSize).toBe(bytes.byteLength);
  let prevEnd = 0;
  for (const s of layout.segments) {
    expect(s.offset).toBeGreaterThanOrEqual(prevEnd);
    prevEnd = s.offset + s.length;
    expect(prevEnd).toBeLessThanOrEqual(bytes.byteLength);
    if (!s.compression)
      expect(
        s.shape.reduce((a, b) => a * b, 1) *
          (
            { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4, F16: 2, BF16: 2, I16: 2, U16: 2 } as Record<
              string,
              number
            >
          )[s.dtype] || s.length,
      ).toBe(s.length);
  }
  // file == skeleton pieces interleaved with segments, in order
  const fh = await fs.promises.open(file, 'r');
  try {
    const segs = await Promise.all(layout.segments.map((s) => readSegment(fh, s)));
    const pieces: { offset: number; bytes: Uint8Array }[] = [
      ...skeletonRanges(layout).map((r) => ({
        offset: r.offset,
        bytes: bytes.subarray(r.offset, r.offset + r.length),
      })),
      ...layout.segments.map((s, i) => ({ offset: s.offset, bytes: segs[i] })),
    ].sort((a, b) => a.offset - b.offset || a.bytes.byteLength - b.bytes.byteLength);
    expect(Buffer.concat(pieces.map((p) => p.bytes)).equals(bytes)).toBe(true);
    const skeletonLen = skeletonRanges(layout).reduce((a, r) => a + r.length, 0);
    expect(skeletonLen + layout.segments.reduce((a, s) => a + s.length, 0)).toBe(bytes.byteLength);
    const tensors = new Map<string, Tensor>();
    for (const info of layout.tensors) tensors.set(info.name, tensorFromSegment(layout, info, segs[info.segment]));
    return { layout, tensors };
  } finally {
    await fh.close();
  }
}

function sameTensors(a: Map<string, Tensor>, b: Map<string, Tensor>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, t] of a) {
    const u = b.get(k)!;
    expect([t.dtype, t.shape, hex(t.data)], k).toEqual([u.dtype, u.shape, hex(u.data)]);
  }
}

describe('checkpoint layouts', () => {
  it('detects formats by magic bytes', async () => {
    const dir = tmpDir();
    const raw = path.join(dir, 'notes.txt');
    fs.writeFileSync(raw, 'just some text');
    const st = path.join(dir, 'noext');
    fs.writeFileSync(st, serializeSafetensors({ a: randomTensor('F32', [2], 1) }));
    const expectations: [string, string][] = [
      [path.join(FIXTURES, 'model_state.pt'), 'pytorch'],
      [path.join(FIXTURES, 'legacy.pt'), 'pytorch'],
      [path.join(FIXTURES, 'arrays.npz'), 'npz'],
      [path.join(FIXTURES, 'arrays_compressed.npz'), 'npz'],
      [path.join(FIXTURES, 'f32.npy'), 'npy'],
      [raw, 'raw'],
      [st, 'safetensors'],
    ];
    for (const [f, fmt] of expectations) expect(await detectFormat(f), f).toBe(fmt);
    const l = await scanCheckpoint(raw);
    expect(l).toEqual({ format: 'raw', fileSize: 14, segments: [], tensors: [] });
    fs.rmSync(dir, { recursive: true });
  });

  it('torch fixtures: invariant holds and tensors from segments equal loadStateDict', async () => {
    for (const f of ['model_state.pt', 'checkpoint.pt', 'dtypes.pt', 'views.pt']) {
      const file = path.join(FIXTURES, f);
      const { layout, tensors } = await checkInvariant(file);
      expect(layout.format).toBe('pytorch');
      sameTensors(tensors, await loadStateDict(file));
    }
    const { layout } = await checkInvariant(path.join(FIXTURES, 'views.pt'));
    const by = new Map(layout.tensors.map((t) => [t.name, t]));
    expect(by.get('offset_view')).toMatchObject({ segment: by.get('base')!.segment, elementOffset: 5, strides: null });
    expect(by.get('transposed')!.strides).toEqual([1, 5]);
    expect(layout.segments.length).toBe(5);
  });

  it('numpy fixtures: stored npz members are typed segments, deflated ones opaque but decodable', async () => {
    for (const f of ['f32.npy', 'f16.npy', 'u2.npy', 'i8.npy', 'b.npy', 'fortran.npy', 'empty.npy']) {
      const file = path.join(FIXTURES, f);
      const { tensors } = await checkInvariant(file);
      sameTensors(tensors, new Map([['array', await readNpy(file)]]));
    }
    for (const f of ['arrays.npz', 'arrays_compressed.npz']) {
      const file = path.join(FIXTURES, f);
      const { layout, tensors } = await checkInvariant(file);
      sameTensors(tensors, await readNpz(file));
      expect(layout.segments.every((s) => (f === 'arrays.npz' ? !s.compression : s.compression === 'deflate'))).toBe(
        true,
      );
    }
  });

  it('generated safetensors / pytorch / npz files keep the invariant', async () => {
    const dir = tmpDir();
    const t = allDtypeTensors();
    const st = path.join(dir, 'all.safetensors');
    await writeSafetensors(st, t, { a: 'b' });
    const r1 = await checkInvariant(st);
    expect(r1.layout.metadata).toEqual({ a: 'b' });
    expect(r1.layout.segments.length).toBe(Object.keys(t).length);
    sameTensors(r1.tensors, (await readSafetensors(st)).tensors);
    const pt = path.join(dir, 'all.pt');
    fs.writeFileSync(pt, await serializePyTorch({ model: t, epoch: 1 }));
    const r2 = await checkInvariant(pt);
    sameTensors(r2.tensors, await loadStateDict(pt));
    const z = path.join(dir, 'mixed.npz');
    fs.writeFileSync(z, await serializeNpz({ a: randomTensor('F32', [5, 5], 1), b: randomTensor('I8', [0], 2) }));
    sameTensors((await checkInvariant(z)).tensors, await readNpz(z));
    fs.rmSync(dir, { recursive: true });
  });

  it('bad files give typed errors from scanCheckpoint', async () => {
    const dir = tmpDir();
    const w = (name: string, b: Uint8Array): string => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, b);
      return p;
    };
    await expectCode(scanCheckpoint(path.join(FIXTURES, 'legacy.pt')), UnsupportedFormatError.code);
    await expectCode(scanCheckpoint(path.join(FIXTURES, 'scripted.pt')), UnsupportedFormatError.code);
    const st = serializeSafetensors({ a: randomTensor('F32', [4], 1) });
    await expectCode(scanCheckpoint(w('t.safetensors', st.subarray(0, st.byteLength - 1))), FormatError.code);
    const big = Buffer.from(st);
    big.writeBigUInt64LE(500_000_000n);
    await expectCode(scanCheckpoint(w('big.safetensors', big)), LimitExceededError.code);
    const pt = fs.readFileSync(path.join(FIXTURES, 'model_state.pt'));
    await expectCode(scanCheckpoint(w('cut.pt', pt.subarray(0, pt.byteLength - 10))), FormatError.code);
    const evil = Buffer.from(pt);
    const at = evil.indexOf('collections\nOrderedDict');
    evil.write('posixxxxxxx\nsystemDict', at, 'latin1');
    // CRC now fails: the archive is reported corrupt before the pickle is even looked at
    await expectCode(scanCheckpoint(w('evil.pt', evil)), FormatError.code);
    await expectCode(scanCheckpoint(w('evil2.pt', await serializeEvil())), UnsafePickleError.code);
    fs.rmSync(dir, { recursive: true });
  });

  it('streams a 64 MiB tensor: scan reads only the header, segment read is one range', async () => {
    const dir = tmpDir();
    const p = path.join(dir, 'big.safetensors');
    const n = (1 << 24) + 3;
    const bigT = { dtype: 'F32' as const, shape: [n], data: rng(9)(n * 4) };
    await writeSafetensors(p, { big: bigT, small: randomTensor('BF16', [3], 1) });
    const t0 = performance.now();
    const layout = await scanCheckpoint(p);
    const scanMs = performance.now() - t0;
    const fh = await fs.promises.open(p, 'r');
    const t1 = performance.now();
    const seg = await readSegment(fh, layout.segments[0]);
    const readMs = performance.now() - t1;
    await fh.close();
    const t = tensorFromSegment(layout, layout.tensors[0], seg);
    expect(t.data.byteLength).toBe(n * 4);
    expect(Buffer.compare(t.data, bigT.data)).toBe(0);
    expect(scanMs).toBeLessThan(200);
    console.log(
      `scan ${scanMs.toFixed(2)} ms; read 64 MiB segment ${readMs.toFixed(1)} ms (${((n * 4) / 2 ** 30 / (readMs / 1000)).toFixed(2)} GiB/s)`,
    );
    fs.rmSync(dir, { recursive: true });
  });
});

async function serializeEvil(): Promise<Buffer> {
  const { MemorySink } = await import('../../lib/formats/io');
  const { ZipWriter } = await import('../../lib/formats/zip');
  const sink = new MemorySink();
  const zw = new ZipWriter(sink);
  await zw.add('archive/data.pkl', Buffer.from('\x80\x02cposix\nsystem\nX\x02\x00\x00\x00idx\x85R.', 'latin1'));
  await zw.add('archive/version', Buffer.from('3\n'));
  await zw.finish();
  return sink.toBuffer();
}
