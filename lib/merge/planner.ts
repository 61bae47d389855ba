/**
 * The merge planner: classifies every file and tensor of three trees against
 * the base (three-way.ts), resolves conflicts with the configured strategies
 * (params.ts, strategies.ts), stores merged objects through a writer, and
 * writes each merged file ahead into a prepared temp file (assemble.ts,
 * prepared.ts). Nothing is visible to refs, the index or the worktree.
 *
 * @example
 * const plan = await withWriter(ctx, 'merge', (w) => planMerge(ctx, w, baseTree, oursTree, theirsTree, { strategy: 'average' }));
 * plan.tree; plan.conflicts; plan.unresolved
 * await plan.prepared.discard();
 */
import { MergeConflictError } from '../errors';
import { absPath, type RepoContext } from '../context';
import { fileTable, type FileEntry, type Tree } from '../models';
import type { ObjectWriter } from '../odb/objects';
import type { DType } from '../tensor/dtype';
import { tensor } from '../tensor/tensor';
import { OneInFlight } from '../util/in-flight';
import { readFileTensor } from '../worktree/materialize';
import {
  differs,
  FileAssembler,
  sameShape,
  versions,
  wholeSegment,
  worktreeSegment,
  type MergedTensors,
  type Source,
  type Version,
} from './assemble';
import { mergeConfig, strategyFor, type MergeConfig, type MergeParams } from './params';
import { PreparedFiles } from './prepared';
import { resolveTensor, type MergeStrategyName } from './strategies';
import { classifyFiles, classifyTensors, isConflict, type MergeKind } from './three-way';

/** One item the merge took without a strategy (tensor null = the whole file). */
export interface MergeItem {
  file: string;
  tensor: string | null;
  kind: MergeKind;
}

export interface MergeConflict extends MergeItem {
  /** Strategy chosen for this item (default or --resolve). */
  strategy: MergeStrategyName;
  /** Strategy that produced the result, or null while unresolved. */
  resolvedBy: MergeStrategyName | null;
  /** Why it is unresolved ('fail', 'shape', 'dtype', 'delete-modify', 'content', ...). */
  reason?: string;
  message?: string;
}

export interface Plan {
  tree: Tree;
  autoMerged: MergeItem[];
  conflicts: MergeConflict[];
  unresolved: MergeConflict[];
  notes: string[];
  /**
   * Merged files already written (fsynced) under .coral/tmp while they were
   * planned, by path: applying the tree renames them into place instead of
   * decoding, hashing and writing every segment again. The caller discards them.
   */
  prepared: PreparedFiles;
  cfg: MergeConfig;
}

/** What the planner reads: objects, the worktree (ours' files) and `.coral/tmp`. */
export type PlannerContext = Pick<RepoContext, 'worktree' | 'layout' | 'reader' | 'store'>;

/**
 * Merged tensors of one file kept in memory for writing the merged file; past
 * this, a merged tensor is dropped once stored and decoded again when the file
 * is written, so memory stays bounded whatever the file size.
 */
const MERGE_HOLD_BYTES = 512 << 20;

/** The MergeConflictError for a plan with unresolved conflicts (the merge changes nothing). */
export function conflictError(unresolved: MergeConflict[], strategy: MergeStrategyName): MergeConflictError {
  const list = unresolved.map((c) => `${c.file}${c.tensor !== null ? `:${c.tensor}` : ''}`);
  const shown = list.slice(0, 10).join(', ') + (list.length > 10 ? `, ... (${list.length - 10} more)` : '');
  const first = unresolved[0];
  const why = first.reason && first.reason !== 'fail' && first.message ? `; first: ${first.message}` : '';
  return new MergeConflictError(
    `merge stopped with ${unresolved.length} unresolved conflict(s) (strategy ${strategy}): ${shown}${why}; ` +
      'nothing was changed. Pick a resolution with --strategy or --resolve GLOB=STRATEGY',
    { conflicts: unresolved },
  );
}

class Planner {
  readonly autoMerged: MergeItem[] = [];
  readonly conflicts: MergeConflict[] = [];
  readonly unresolved: MergeConflict[] = [];
  readonly notes: string[] = [];
  readonly prepared: PreparedFiles;
  private readonly files: FileAssembler;
  /** Bytes of merged tensors held for the file being merged. */
  private held = 0;

  constructor(
    private readonly ctx: PlannerContext,
    private readonly writer: ObjectWriter,
    private readonly cfg: MergeConfig,
  ) {
    this.prepared = new PreparedFiles(ctx.layout.tmp);
    this.files = new FileAssembler(ctx.reader, ctx.store, writer, this.prepared, this.notes);
  }

  private record(c: MergeConflict): void {
    this.conflicts.push(c);
    if (c.resolvedBy === null) this.unresolved.push(c);
  }

  async plan(base: Tree, ours: Tree, theirs: Tree): Promise<Plan> {
    const files = fileTable<FileEntry>();
    for (const f of classifyFiles(base.files, ours.files, theirs.files)) {
      const b = base.files[f.name];
      const o = ours.files[f.name];
      const t = theirs.files[f.name];
      if (!isConflict(f.kind)) {
        const e = f.take === 'base' ? b : f.take === 'ours' ? o : f.take === 'theirs' ? t : undefined;
        if (e) files[f.name] = e;
        if (f.kind !== 'unchanged') this.autoMerged.push({ file: f.name, tensor: null, kind: f.kind });
        continue;
      }
      const tensorMerge =
        o &&
        t &&
        o.format === t.format &&
        (o.tensors.length > 0 || t.tensors.length > 0) &&
        (f.kind === 'conflict-modify-modify' || f.kind === 'conflict-add-add');
      const e = tensorMerge ? await this.mergeFile(f.name, b, o, t) : this.wholeFile(f.name, f.kind, o, t);
      if (e) files[f.name] = e;
    }
    return {
      tree: { files },
      autoMerged: this.autoMerged,
      conflicts: this.conflicts,
      unresolved: this.unresolved,
      notes: this.notes,
      prepared: this.prepared,
      cfg: this.cfg,
    };
  }

  /** A file-level conflict that per-tensor merging cannot handle (delete/modify, non-tensor content). */
  private wholeFile(
    file: string,
    kind: MergeKind,
    o: FileEntry | undefined,
    t: FileEntry | undefined,
  ): FileEntry | undefined {
    const s = strategyFor(this.cfg, file, null);
    const c: MergeConflict = { file, tensor: null, kind, strategy: s, resolvedBy: null };
    if (s === 'ours' || s === 'theirs') {
      c.resolvedBy = s;
      this.record(c);
      return s === 'ours' ? o : t;
    }
    if (kind === 'conflict-delete-modify' || kind === 'conflict-modify-delete') {
      c.reason = 'delete-modify';
      c.message =
        `${file} was ${kind === 'conflict-delete-modify' ? 'deleted by ours and modified by theirs' : 'modified by ours and deleted by theirs'}; ` +
        `only ours or theirs can resolve it (--resolve '${file}=ours')`;
    } else if (o && t && o.format !== t.format) {
      c.reason = 'format';
      c.message = `${file} is ${o.format} in ours but ${t.format} in theirs; only ours or theirs can resolve it`;
    } else {
      c.reason = 'content';
      c.message = `${file} (${o?.format ?? t?.format}) has no tensors and changed on both sides; only ours or theirs can resolve it`;
    }
    this.record(c);
    return this.cfg.keepUnresolved ? o : undefined;
  }

  private async mergeFile(
    file: string,
    b: FileEntry | undefined,
    o: FileEntry,
    t: FileEntry,
  ): Promise<FileEntry | undefined> {
    const entries = { base: b, ours: o, theirs: t };
    const oursAt = absPath(this.ctx, file);
    this.held = 0;
    const reader = this.ctx.reader;
    const [bv, ov, tv] = [await versions(reader, b), await versions(reader, o), await versions(reader, t)];
    const result: MergedTensors = new Map();
    const sideOf = { base: bv, ours: ov, theirs: tv };
    const take = (name: string, side: 'base' | 'ours' | 'theirs') => {
      const v = sideOf[side].get(name);
      if (v) result.set(name, { dtype: v.dtype, shape: v.shape, src: { side, v } });
    };
    const inflight = new OneInFlight();
    try {
      for (const c of classifyTensors(bv, ov, tv)) {
        if (!isConflict(c.kind)) {
          if (c.take === 'base' || c.take === 'ours' || c.take === 'theirs') take(c.name, c.take);
          if (c.kind !== 'unchanged') this.autoMerged.push({ file, tensor: c.name, kind: c.kind });
          continue;
        }
        const s = strategyFor(this.cfg, file, c.name);
        const rec: MergeConflict = { file, tensor: c.name, kind: c.kind, strategy: s, resolvedBy: null };
        if (s === 'ours' || s === 'theirs') {
          take(c.name, s);
          rec.resolvedBy = s;
        } else if (c.kind === 'conflict-delete-modify' || c.kind === 'conflict-modify-delete') {
          rec.reason = 'delete-modify';
          rec.message =
            `tensor ${JSON.stringify(c.name)} in ${file} was ${c.kind === 'conflict-delete-modify' ? 'deleted by ours and modified by theirs' : 'modified by ours and deleted by theirs'}; ` +
            `a ${s} strategy cannot resolve it; use --resolve '${c.name}=ours' or '=theirs'`;
        } else if (s === 'fail') {
          rec.reason = 'fail';
          rec.message = `tensor ${JSON.stringify(c.name)} in ${file} changed differently on both sides (strategy fail)`;
        } else {
          const oursTe = ov.get(c.name)!.te;
          const oursBytes = wholeSegment(o, oursTe) ? await worktreeSegment(oursAt, o, oursTe.segment) : null;
          const ours = oursBytes
            ? tensor(oursTe.dtype as DType, oursTe.shape, oursBytes)
            : await readFileTensor(reader, o, oursTe);
          const theirs = await readFileTensor(reader, t, tv.get(c.name)!.te);
          const bt = bv.get(c.name);
          const base = bt && b ? await readFileTensor(reader, b, bt.te) : undefined;
          try {
            const merged = await resolveTensor(
              s,
              { base, ours, theirs },
              { ...this.cfg.params, name: `${file}:${c.name}` },
            );
            const src: Source = { merged };
            if (
              merged !== ours &&
              merged !== theirs &&
              wholeSegment(o, oursTe) &&
              merged.dtype === ours.dtype &&
              sameShape(merged.shape, ours.shape)
            ) {
              // Store it now, as a delta candidate against ours' segment, whose decoded
              // bytes we hold (no second decode); splice reuses the object.
              // One put in flight: it encodes while the next conflict is decoded and merged.
              const seg = o.segments[oursTe.segment];
              await inflight.settle();
              const put = this.writer.put(
                tensor(seg.dtype as DType, seg.shape, merged.data),
                { id: seg.object, tensor: tensor(seg.dtype as DType, seg.shape, ours.data) },
                undefined,
                undefined,
                { owned: true },
              );
              const hold = this.held + merged.data.byteLength <= MERGE_HOLD_BYTES;
              if (hold) this.held += merged.data.byteLength;
              inflight.start(
                put.then((r) => {
                  src.id = r.id;
                  if (!hold) src.merged = null;
                }),
              );
            }
            result.set(c.name, { dtype: merged.dtype, shape: merged.shape, src });
            rec.resolvedBy = s;
          } catch (e) {
            if (!(e instanceof MergeConflictError)) throw e;
            rec.reason = String((e.data as { reason?: string } | undefined)?.reason ?? 'conflict');
            rec.message = e.message;
          }
        }
        if (rec.resolvedBy === null && this.cfg.keepUnresolved) take(c.name, 'ours');
        this.record(rec);
      }
      await inflight.settle();
    } finally {
      await inflight.drain();
    }
    // Which side's layout (skeleton + segments) can carry the result?
    const fits = (sv: Map<string, Version>): boolean => {
      if (sv.size !== result.size) return false;
      for (const [name, r] of result) {
        const v = sv.get(name);
        if (!v || v.dtype !== r.dtype || !sameShape(v.shape, r.shape)) return false;
        if (differs(r.src, v) && v.te.strides !== null) return false;
      }
      return true;
    };
    const bSk = b?.skeleton;
    const order: Array<'ours' | 'theirs'> =
      o.skeleton !== t.skeleton && bSk === o.skeleton ? ['theirs', 'ours'] : ['ours', 'theirs'];
    const side = order.find((s) => fits(sideOf[s]));
    if (side) {
      const other = side === 'ours' ? t : o;
      const L = entries[side];
      if (
        L.skeleton !== other.skeleton &&
        bSk !== L.skeleton &&
        bSk !== other.skeleton &&
        fits(sideOf[side === 'ours' ? 'theirs' : 'ours'])
      ) {
        this.notes.push(`${file}: non-tensor bytes (header/metadata) changed on both sides; kept ${side}'s`);
        this.conflicts.push({
          file,
          tensor: null,
          kind: 'conflict-modify-modify',
          strategy: side,
          resolvedBy: side,
          reason: 'skeleton',
        });
      }
      return this.files.splice(file, entries, L, sideOf[side], result, oursAt);
    }
    return this.files.rebuild(file, entries, result);
  }
}

/**
 * Plans a three-way merge of trees; stores merged objects through `writer`.
 * Throws InvalidArgumentError for bad parameters before reading anything.
 * `keepUnresolved` (merge --no-commit): an unresolved item keeps ours.
 */
export async function planMerge(
  ctx: PlannerContext,
  writer: ObjectWriter,
  base: Tree,
  ours: Tree,
  theirs: Tree,
  params: MergeParams,
  opts: { keepUnresolved?: boolean } = {},
): Promise<Plan> {
  const cfg = mergeConfig(params, !!opts.keepUnresolved);
  return new Planner(ctx, writer, cfg).plan(base, ours, theirs);
}
