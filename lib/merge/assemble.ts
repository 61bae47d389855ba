/**
 * Writing one merged file (the planner's last step): either splice the merged
 * tensors into one side's layout (its skeleton kept, changed segments stored
 * as new objects) or, when neither side's layout fits, rebuild a safetensors
 * file and ingest it. The bytes go to a prepared temp file (prepared.ts) as
 * they are made, so applying the merge only renames it into place.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { CorruptObjectError, UnsupportedError } from '../errors';
import { serializeSafetensors } from '../formats/safetensors';
import { contentId } from '../hash';
import { ingestFile, segmentNames, type FindBase } from '../ingest/ingest';
import type { FileEntry, TensorEntry } from '../models';
import type { ObjectReader, ObjectWriter } from '../odb/objects';
import type { ObjectStore } from '../store/object-store';
import { DTYPES, type DType } from '../tensor/dtype';
import { tensor, type Tensor } from '../tensor/tensor';
import { interleave, readFileTensor, writeHashed } from '../worktree/materialize';
import type { PreparedFiles } from './prepared';
import { sameTensor, type TensorVersion } from './three-way';

/** One side's version of a tensor, with its entry in the file. */
export interface Version extends TensorVersion {
  te: TensorEntry;
}

/** Where a merged tensor comes from; `id`: the merged tensor, already stored as an object (whole-segment case). */
export type Source = { side: 'base' | 'ours' | 'theirs'; v: Version } | { merged: Tensor | null; id?: string };

/** The merged tensors of one file, by name. */
export type MergedTensors = Map<string, { dtype: string; shape: readonly number[]; src: Source }>;

/** The three versions of the file being merged. */
export interface FileSides {
  base?: FileEntry;
  ours: FileEntry;
  theirs: FileEntry;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** True when the tensor is all of its segment (so the segment's object id is the tensor's content id). */
export function wholeSegment(e: FileEntry, te: TensorEntry): boolean {
  const seg = e.segments[te.segment];
  return te.strides === null && te.elementOffset === 0 && seg.dtype === te.dtype && sameShape(seg.shape, te.shape);
}

/** The tensors of a file version by name, with their content ids. */
export async function versions(reader: ObjectReader, e: FileEntry | undefined): Promise<Map<string, Version>> {
  const out = new Map<string, Version>();
  if (!e) return out;
  for (const te of e.tensors) {
    // A tensor that is a whole segment has the segment's object id as its content id.
    const id = wholeSegment(e, te)
      ? e.segments[te.segment].object
      : await contentId(await readFileTensor(reader, e, te));
    out.set(te.name, { dtype: te.dtype, shape: te.shape, id, te });
  }
  return out;
}

/** True when the merged tensor's source is not the tensor `v`. */
export function differs(src: Source, v: Version): boolean {
  return 'merged' in src ? true : !sameTensor(src.v, v);
}

/**
 * Segment `i` of `e`, read from the file at `abs` when it still holds it
 * (checked: its content id must be the segment's object id); null otherwise.
 * HEAD's files are usually in the worktree unchanged, and reading them is far
 * cheaper than decoding their objects.
 */
export async function worktreeSegment(abs: string, e: FileEntry, i: number): Promise<Uint8Array | null> {
  const seg = e.segments[i];
  let fh: fsp.FileHandle | null = null;
  try {
    fh = await fsp.open(abs, 'r');
    if ((await fh.stat()).size !== e.size) return null;
    const buf = Buffer.allocUnsafe(seg.length);
    let done = 0;
    while (done < buf.byteLength) {
      const { bytesRead } = await fh.read(buf, done, buf.byteLength - done, seg.offset + done);
      if (bytesRead === 0) return null;
      done += bytesRead;
    }
    const id = await contentId(tensor(seg.dtype as DType, seg.shape, buf));
    return id === seg.object ? buf : null;
  } catch {
    return null; // missing, unreadable, or not a valid tensor of that shape: decode instead
  } finally {
    await fh?.close();
  }
}

/** Writes the merged files of one plan: what it reads from, stores into and prepares. */
export class FileAssembler {
  constructor(
    private readonly reader: ObjectReader,
    private readonly store: Pick<ObjectStore, 'has'>,
    private readonly writer: ObjectWriter,
    private readonly prepared: PreparedFiles,
    /** Notes for the merge report. */
    private readonly notes: string[],
  ) {}

  /** Bytes of a merged tensor's source. */
  async sourceBytes(src: Source, entries: FileSides): Promise<Uint8Array> {
    if ('merged' in src) {
      if (src.merged) return src.merged.data;
      // Dropped after it was stored (MERGE_HOLD_BYTES): publish pending objects, then decode it.
      if (!(await this.store.has(src.id!))) await this.writer.flush();
      return (await this.reader.tensor(src.id!)).data;
    }
    return (await readFileTensor(this.reader, entries[src.side]!, src.v.te)).data;
  }

  /**
   * Writes the result's tensors into layout L's segments; keeps L's skeleton.
   * `oursAt`: the worktree path of ours' file, read instead of decoding where it still holds a segment.
   */
  async splice(
    file: string,
    entries: FileSides,
    L: FileEntry,
    Lv: Map<string, Version>,
    result: MergedTensors,
    oursAt: string,
  ): Promise<FileEntry> {
    const changes = new Map<number, Array<{ te: TensorEntry; src: Source }>>();
    for (const [name, r] of result) {
      const v = Lv.get(name)!;
      if (!differs(r.src, v)) continue;
      const list = changes.get(v.te.segment) ?? [];
      list.push({ te: v.te, src: r.src });
      changes.set(v.te.segment, list);
    }
    if (changes.size === 0) return L;
    const skel = (await this.reader.tensor(L.skeleton)).data;
    const segments = L.segments.map((s) => ({ ...s, shape: s.shape.slice() }));
    // The merged file is written (and hashed) as its objects are made, so
    // applying the merge only renames it into place.
    const segment = async (i: number): Promise<Uint8Array> => {
      const seg = L.segments[i];
      const ch = changes.get(i);
      let data: Uint8Array;
      if (!ch) {
        data =
          (L === entries.ours ? await worktreeSegment(oursAt, L, i) : null) ??
          (await this.reader.tensor(seg.object)).data;
      } else {
        const only = ch.length === 1 && wholeSegment(L, ch[0].te) ? ch[0].src : null;
        if (only && 'merged' in only && only.id) {
          data = await this.sourceBytes(only, entries); // stored while planning
          segments[i].object = only.id;
        } else {
          if (only) {
            data = await this.sourceBytes(only, entries);
          } else {
            data = Buffer.from((await this.reader.tensor(seg.object)).data);
            for (const c of ch) {
              const bytes = await this.sourceBytes(c.src, entries);
              (data as Buffer).set(bytes, c.te.elementOffset * DTYPES[c.te.dtype as DType].size);
            }
          }
          const r = await this.writer.put(tensor(seg.dtype as DType, seg.shape, data), { id: seg.object });
          segments[i].object = r.id;
        }
      }
      if (data.byteLength !== seg.length)
        throw new CorruptObjectError(`segment ${i} has ${data.byteLength} bytes, file entry expects ${seg.length}`);
      return data;
    };
    const { tmp, fh } = await this.prepared.tempFile(path.extname(file));
    let ok = false;
    try {
      const { sha256 } = await writeHashed(fh, interleave(skel, L, segment));
      ok = true;
      this.prepared.add(file, tmp, sha256);
      return { ...L, segments, sha256 };
    } finally {
      await fh.close();
      if (!ok) await fsp.rm(tmp, { force: true });
    }
  }

  /** Neither side's layout fits: write a new file (safetensors only) and ingest it. */
  async rebuild(file: string, entries: FileSides, result: MergedTensors): Promise<FileEntry> {
    const { base: b, ours: o, theirs: t } = entries;
    if (o.format !== 'safetensors')
      throw new UnsupportedError(
        `cannot re-assemble ${file}: the merged tensors fit neither side's ${o.format} layout (tensors added, removed or reshaped ` +
          `on both sides); only safetensors files can be rebuilt. Resolve the file with --resolve '${file}=ours' or '=theirs'`,
        { path: file, format: o.format },
      );
    const tensors = new Map<string, Tensor>();
    for (const [name, r] of result)
      tensors.set(name, tensor(r.dtype as DType, r.shape, await this.sourceBytes(r.src, entries)));
    const md = (e?: FileEntry) => JSON.stringify(e?.metadata ?? null);
    const metaSide = md(o) === md(b) ? t : o;
    const bytes = serializeSafetensors(tensors, metaSide.metadata);
    const { tmp, fh } = await this.prepared.tempFile('.safetensors');
    try {
      await writeHashed(fh, [bytes]);
    } catch (e) {
      await fh.close();
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    this.notes.push(`${file}: tensors were added or removed on both sides; rebuilt the safetensors file`);
    const names = segmentNames(o);
    const findBase: FindBase = async (q) => {
      const s = names.get(q.name);
      return s && s.dtype === q.dtype && sameShape(s.shape, q.shape) ? { id: s.object } : null;
    };
    let keep = false;
    try {
      const entry = (await ingestFile(this.writer, tmp, file, findBase)).entry;
      this.prepared.add(file, tmp, entry.sha256); // the very bytes that were ingested
      keep = true;
      return entry;
    } finally {
      if (!keep) await fsp.rm(tmp, { force: true });
    }
  }
}
