/**
 * Tensor-aware diff between two trees, or a tree and the working tree.
 *
 * Files are compared by sha256; inside a modified file, tensors are matched by
 * name and compared by content id. For a modified tensor of unchanged dtype and
 * shape, the native kernel measures how much changed: fraction of elements
 * whose bits differ, relative L2 (‖b−a‖/‖a‖), max |b−a| and cosine similarity.
 *
 * Undefined ratios are `null`, never Infinity or NaN, so JSON consumers get one
 * representation: `relL2` is null when the old tensor is all zeros and the new
 * one is not, `cosine` is null when exactly one side is all zeros (both zero:
 * identical, cosine 1). NaN/Inf pairs are counted in `nonFinite` and left out
 * of the sums, so a change that only touches non-finite values shows there.
 */
import * as fsp from 'node:fs/promises';
import { contentId } from '../hash';
import { tensorFromSegment, readSegment } from '../formats';
import type { FileEntry, LossyMark, Tree } from '../models/tree';
import { ASYNC_THRESHOLD_BYTES, callAsync, native } from '../native';
import { DTYPES, type DType } from '../tensor/dtype';
import { numel, type Tensor } from '../tensor/tensor';
import { scanOrPlain } from '../ingest/plain';
import { readFileTensor } from '../worktree/materialize';
import { isSymlinkEntry, readLinkBytes, symlinkTarget } from '../worktree/symlink';
import type { ObjectReader } from '../odb/objects';

export interface TensorMetrics {
  /** Fraction of elements whose bit patterns differ. */
  changedFraction: number;
  /** ‖new − old‖₂ / ‖old‖₂ over finite elements; null (undefined) when old is all zeros and new is not. */
  relL2: number | null;
  maxAbs: number;
  /** Cosine similarity over finite elements; 1 when both are all zeros, null when exactly one is. */
  cosine: number | null;
  /** Element pairs with NaN/Inf on either side, left out of the sums. */
  nonFinite: number;
}

export interface TensorChange {
  name: string;
  change: 'added' | 'removed' | 'modified';
  dtype: string;
  shape: number[];
  oldDtype?: string;
  oldShape?: number[];
  metrics?: TensorMetrics;
}

export interface FileChange {
  path: string;
  change: 'added' | 'removed' | 'modified';
  format: string;
  oldSize?: number;
  newSize?: number;
  tensors: TensorChange[];
  /** Symlinks (format 'symlink'): the link target before / after. */
  oldTarget?: string;
  newTarget?: string;
  /** The lossy marks (`coral add --lossy`) of the old and new versions, when stored lossy. */
  oldLossy?: LossyMark;
  newLossy?: LossyMark;
}

interface TensorRef {
  dtype: string;
  shape: number[];
  id: () => Promise<string>;
  load: () => Promise<Tensor>;
}

/**
 * Does a tensor cover its whole segment, in the segment's dtype? Then both
 * sides of a diff identify it by the segment's content id (the stored object's
 * id, computed over the segment's dtype and shape: a .pt storage is 1-D while
 * its tensor is not), so neither side has to decode it.
 */
function coversSegment(
  t: { dtype: string; shape: number[]; strides?: number[] | null; elementOffset: number },
  seg: { dtype: string; length: number } | undefined,
): boolean {
  return (
    !!seg &&
    !t.strides &&
    t.elementOffset === 0 &&
    seg.dtype === t.dtype &&
    numel(t.shape) * DTYPES[t.dtype as DType].size === seg.length
  );
}

/** Tensors of a committed file, keyed by name. Full-segment tensors reuse the segment's id. */
function treeTensors(reader: ObjectReader, e: FileEntry): Map<string, TensorRef> {
  const m = new Map<string, TensorRef>();
  for (const te of e.tensors) {
    const seg = e.segments[te.segment];
    const load = () => readFileTensor(reader, e, te);
    m.set(te.name, {
      dtype: te.dtype,
      shape: te.shape,
      id: coversSegment(te, seg) ? async () => seg.object : async () => contentId(await load()),
      load,
    });
  }
  return m;
}

/** Tensors of a file in the working tree, read on demand. */
async function fileTensors(abs: string): Promise<Map<string, TensorRef>> {
  const m = new Map<string, TensorRef>();
  // A link has no tensors (never read through it); an unparsable file is a plain file (lib/ingest/plain.ts).
  if ((await fsp.lstat(abs)).isSymbolicLink()) return m;
  const { layout } = await scanOrPlain(abs, abs, {});
  const segCache = new Map<number, Promise<Uint8Array>>();
  const seg = (i: number) => {
    let p = segCache.get(i);
    if (!p) {
      p = (async () => {
        const fh = await fsp.open(abs, 'r');
        try {
          return await readSegment(fh, layout.segments[i]);
        } finally {
          await fh.close();
        }
      })();
      segCache.set(i, p);
    }
    return p;
  };
  for (const ti of layout.tensors) {
    const load = async () => tensorFromSegment(layout, ti, await seg(ti.segment));
    const s = layout.segments[ti.segment];
    const whole = !s.compression && !s.container && coversSegment(ti, s);
    const id = whole
      ? async () => contentId({ dtype: s.dtype, shape: s.shape, data: await seg(ti.segment) })
      : async () => contentId(await load());
    m.set(ti.name, { dtype: ti.dtype, shape: ti.shape, id, load });
  }
  return m;
}

export async function tensorMetrics(a: Tensor, b: Tensor): Promise<TensorMetrics> {
  const code = DTYPES[a.dtype].code;
  const s =
    a.data.byteLength >= ASYNC_THRESHOLD_BYTES
      ? await callAsync(() => native.diffStatsAsync(code, a.data, b.data))
      : native.diffStats(code, a.data, b.data);
  const n = numel(a.shape);
  const na = Math.sqrt(s.sumSqA);
  const nb = Math.sqrt(s.sumSqB);
  return {
    changedFraction: n ? s.changed / n : 0,
    relL2: na > 0 ? Math.sqrt(s.sumSqDiff) / na : s.sumSqDiff > 0 ? null : 0,
    maxAbs: s.maxAbs,
    cosine: na > 0 && nb > 0 ? s.dot / (na * nb) : na === nb ? 1 : null,
    nonFinite: s.nonFinite,
  };
}

async function diffTensorMaps(
  a: Map<string, TensorRef>,
  b: Map<string, TensorRef>,
  metrics: boolean,
): Promise<TensorChange[]> {
  const out: TensorChange[] = [];
  const names = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const name of names) {
    const x = a.get(name);
    const y = b.get(name);
    if (!x) {
      out.push({ name, change: 'added', dtype: y!.dtype, shape: y!.shape });
      continue;
    }
    if (!y) {
      out.push({ name, change: 'removed', dtype: x.dtype, shape: x.shape });
      continue;
    }
    const sameKind =
      x.dtype === y.dtype && x.shape.length === y.shape.length && x.shape.every((d, i) => d === y.shape[i]);
    if (sameKind && (await x.id()) === (await y.id())) continue;
    const c: TensorChange = { name, change: 'modified', dtype: y.dtype, shape: y.shape };
    if (!sameKind) {
      c.oldDtype = x.dtype;
      c.oldShape = x.shape;
    } else if (metrics) {
      c.metrics = await tensorMetrics(await x.load(), await y.load());
    }
    out.push(c);
  }
  return out;
}

export type DiffSide =
  | { kind: 'tree'; tree: Tree }
  | { kind: 'worktree'; files: Record<string, { abs: string; sha256: string; size: number; format: string }> };

/** Diff of two sides. `metrics: false` skips the numeric comparison (names and ids only). */
export async function diffSides(
  reader: ObjectReader,
  a: Tree,
  b: DiffSide,
  opts: { metrics?: boolean; paths?: string[] } = {},
): Promise<FileChange[]> {
  const metrics = opts.metrics !== false;
  const bFiles = b.kind === 'tree' ? b.tree.files : b.files;
  const inScope = (p: string) => !opts.paths?.length || opts.paths.some((q) => p === q || p.startsWith(`${q}/`));
  const paths = [...new Set([...Object.keys(a.files), ...Object.keys(bFiles)])].filter(inScope).sort();
  const out: FileChange[] = [];
  const targets = async (c: FileChange, ea?: FileEntry, eb?: { format: string }) => {
    if (isSymlinkEntry(ea)) c.oldTarget = (await symlinkTarget(reader, ea!)).toString();
    if (ea?.lossy) c.oldLossy = ea.lossy;
    if (eb && b.kind === 'tree' && b.tree.files[c.path]?.lossy) c.newLossy = b.tree.files[c.path].lossy;
    if (eb && b.kind === 'tree') {
      if (isSymlinkEntry(eb)) c.newTarget = (await symlinkTarget(reader, b.tree.files[c.path])).toString();
    } else if (eb) {
      // The worktree side: what is on disk now decides, whatever the index entry was.
      const abs = b.kind === 'worktree' ? b.files[c.path].abs : '';
      if ((await fsp.lstat(abs)).isSymbolicLink()) {
        c.newTarget = (await readLinkBytes(abs)).toString();
        c.format = 'symlink';
      } else if (isSymlinkEntry(eb)) {
        c.format = 'raw';
      }
    }
    return c;
  };
  for (const p of paths) {
    const ea = a.files[p];
    const eb = bFiles[p];
    const tensorsOfB = async () =>
      b.kind === 'tree' ? treeTensors(reader, b.tree.files[p]) : fileTensors(b.files[p].abs);
    if (!ea) {
      const tb = await tensorsOfB();
      out.push(
        await targets(
          {
            path: p,
            change: 'added',
            format: eb.format,
            newSize: eb.size,
            tensors: [...tb].map(([name, t]) => ({ name, change: 'added' as const, dtype: t.dtype, shape: t.shape })),
          },
          ea,
          eb,
        ),
      );
      continue;
    }
    if (!eb) {
      out.push(
        await targets(
          {
            path: p,
            change: 'removed',
            format: ea.format,
            oldSize: ea.size,
            tensors: ea.tensors.map((t) => ({
              name: t.name,
              change: 'removed' as const,
              dtype: t.dtype,
              shape: t.shape,
            })),
          },
          ea,
          eb,
        ),
      );
      continue;
    }
    if (ea.sha256 === eb.sha256 && ea.size === eb.size) continue;
    const tensors = await diffTensorMaps(treeTensors(reader, ea), await tensorsOfB(), metrics);
    out.push(
      await targets(
        { path: p, change: 'modified', format: eb.format, oldSize: ea.size, newSize: eb.size, tensors },
        ea,
        eb,
      ),
    );
  }
  return out;
}

/** Counts and extremes over a diff, as `coral compare` prints them. */
export interface DiffSummary {
  tensorsAdded: number;
  tensorsRemoved: number;
  tensorsModified: number;
  /** Mean relL2 over modified tensors with a defined relL2 (0 when there are none). */
  meanRelL2: number;
  maxAbs: number;
  /** Smallest defined cosine over modified tensors (1 when there are none). */
  minCosine: number;
  /** Modified tensors whose relL2 or cosine is undefined (they started at zero). */
  undefinedMetrics: number;
}

/**
 * Summary of a diff's tensor changes.
 *
 * @example
 * const s = summarizeChanges(await repo.diff('v1', 'v2'));
 * s.tensorsModified; s.meanRelL2;
 */
export function summarizeChanges(changes: readonly FileChange[]): DiffSummary {
  const all = changes.flatMap((f) => f.tensors);
  const mod = all.flatMap((t) => (t.metrics ? [t.metrics] : []));
  const rel = mod.flatMap((m) => (m.relL2 === null ? [] : [m.relL2]));
  const cos = mod.flatMap((m) => (m.cosine === null ? [] : [m.cosine]));
  return {
    tensorsAdded: all.filter((t) => t.change === 'added').length,
    tensorsRemoved: all.filter((t) => t.change === 'removed').length,
    tensorsModified: all.filter((t) => t.change === 'modified').length,
    meanRelL2: rel.length ? rel.reduce((n, x) => n + x, 0) / rel.length : 0,
    maxAbs: mod.reduce((n, m) => Math.max(n, m.maxAbs), 0),
    minCosine: cos.reduce((n, x) => Math.min(n, x), 1),
    undefinedMetrics: mod.filter((m) => m.relL2 === null || m.cosine === null).length,
  };
}
