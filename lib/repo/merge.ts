/**
 * `repo.merge`: three-way, tensor-aware merging of a revision into HEAD, plus
 * the try-and-vet candidates and the in-progress state (`--continue`,
 * `--abort`). Policy, classification and file re-assembly live here; the math
 * is lib/merge/strategies.ts. Design notes: docs/merge.md.
 *
 * Sequence of a merge commit (crash-safe):
 *  1. plan: classify every file and tensor against the merge base, resolve
 *     conflicts, store merged segment objects (writer session, nothing visible
 *     to refs or the index). Unresolved conflicts without `noCommit` throw
 *     MergeConflictError here, leaving refs, index and files untouched.
 *  2. publish the objects, write `.coral/MERGE_STATE` atomically (orig, theirs,
 *     the merged tree inline, applied = false).
 *  3. rewrite changed worktree files and the index; state.applied = true.
 *  4. commit with parents [HEAD, theirs]; remove MERGE_STATE.
 * A crash after 2 leaves a state from which `--continue` (re-applies the tree
 * when needed, then commits) or `--abort` (restores ORIG's files and index)
 * works. gc keeps `orig`, `theirs` and the inline tree alive.
 *
 * @example
 * const r = await repo.merge('feature', { strategy: 'ties', density: 0.2 });
 * r.commit; r.resolved // [{ file: 'model.safetensors', tensor: 'w', strategy: 'ties' }]
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import {
  CoralError, CorruptObjectError, InProgressError, InvalidArgumentError, MergeConflictError, UnsupportedError,
  invalidParameter,
} from '../errors';
import { serializeSafetensors } from '../formats/safetensors';
import { contentId } from '../hash';
import { ingestFile, segmentNames, type FindBase } from '../ingest/ingest';
import { checkAlpha, checkDensity, checkDrop, checkLambda, checkSeed } from '../merge/numeric';
import {
  MERGE_STRATEGIES, isMergeStrategy, parseResolveRules, resolveTensor, type MergeStrategyName, type ResolveRule,
  type StrategyParams,
} from '../merge/strategies';
import {
  classifyFiles, classifyTensors, isConflict, sameTensor, type MergeKind, type TensorVersion,
} from '../merge/three-way';
import { fileTable, type FileEntry, type Signature, type TensorEntry, type Tree } from '../models';
import { mergeBase } from '../refs/ancestry';
import { DTYPES, type DType } from '../tensor/dtype';
import { tensor, type Tensor } from '../tensor/tensor';
import { crashPoint } from '../util/crash';
import { writeFileAtomic } from '../util/fsutil';
import { fsyncDirSync, materializeFile, readFileTensor, writeHashed } from '../worktree/materialize';
import type { ObjectReader, ObjectWriter } from '../odb/objects';
import type { Repository } from '../repository';
import { checkNotInCoral, placeWorktreeFile, type WorktreeLayout } from '../worktree/files';
import { applyTree, checkSwitch } from '../worktree/apply-tree';
import { OneInFlight } from '../util/in-flight';

// ---- options and reports ---------------------------------------------------------------------

/** The strategy parameters (alpha, lambda, density, drop, seed, dareTies, precision) plus merge policy. */
export interface MergeParams extends Omit<StrategyParams, 'name'> {
  /** Default strategy for conflicted tensors; default 'fail'. */
  strategy?: MergeStrategyName;
  /** Per-tensor overrides `GLOB=STRATEGY` (last match wins; matched against `tensor` and `file:tensor`). */
  resolve?: readonly string[];
  /** Merge unrelated histories against an empty base. */
  allowUnrelated?: boolean;
}

export interface MergeOptions extends MergeParams {
  /** Always create a merge commit, even when HEAD could fast-forward. */
  noFf?: boolean;
  /** Refuse unless HEAD can fast-forward. */
  ffOnly?: boolean;
  /** Stop before committing: merged files in the worktree and index, MERGE_STATE written. */
  noCommit?: boolean;
  message?: string;
  author?: Partial<Signature>;
}

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

export interface MergeReport {
  status: 'up-to-date' | 'fast-forward' | 'merged' | 'pending';
  upToDate: boolean;
  fastForward: boolean;
  /** The new commit (merge or fast-forward target); null when nothing was committed. */
  commit: string | null;
  ours: string | null;
  theirs: string;
  /** The merge base used (the first of `bases`), null for an unrelated or fast-forward-from-unborn merge. */
  base: string | null;
  bases: string[];
  autoMerged: MergeItem[];
  conflicts: MergeConflict[];
  resolved: Array<{ file: string; tensor: string | null; strategy: MergeStrategyName }>;
  unresolved: MergeConflict[];
  notes: string[];
  written: string[];
  removed: string[];
}

export interface MergeStateFile {
  version: 1;
  /** HEAD before the merge (ORIG_HEAD). */
  orig: string;
  /** The merged heads (gc roots). */
  theirs: string[];
  base: string | null;
  branch: string | null;
  message: string;
  metadata: Record<string, unknown>;
  /** The merged tree, inline (gc keeps its objects). */
  tree: Tree;
  /** True once the worktree and index hold `tree`. */
  applied: boolean;
  unresolved: MergeConflict[];
  /** Files of `unresolved` that `coral add` staged since (the user's resolution). */
  resolvedFiles?: string[];
}

// ---- parameter handling ----------------------------------------------------------------------

interface Cfg {
  strategy: MergeStrategyName;
  rules: ResolveRule[];
  params: StrategyParams;
  keepUnresolved: boolean;
}

function makeCfg(o: MergeParams, keepUnresolved: boolean): Cfg {
  const strategy = o.strategy ?? 'fail';
  if (!isMergeStrategy(strategy)) throw invalidParameter('strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, strategy);
  const rules = parseResolveRules([...(o.resolve ?? [])]);
  const used = new Set<MergeStrategyName>([strategy, ...rules.map((r) => r.strategy)]);
  // Validate parameters up front: a typo must not hide until a conflict shows up.
  if (o.alpha !== undefined) checkAlpha(o.alpha);
  if (o.lambda !== undefined) checkLambda(o.lambda);
  if (o.density !== undefined) checkDensity(o.density);
  if (o.drop !== undefined) checkDrop(o.drop);
  if (o.seed !== undefined) checkSeed(o.seed);
  if (used.has('weighted') && o.alpha === undefined) throw invalidParameter('alpha', 'number in [0, 1] (weighted needs --alpha)', undefined);
  if (used.has('ties') && o.density === undefined) throw invalidParameter('density', 'number in (0, 1] (ties needs --density)', undefined);
  if (used.has('dare') && o.drop === undefined) throw invalidParameter('drop', 'number in [0, 1) (dare needs --drop)', undefined);
  const params: StrategyParams = {};
  for (const k of ['alpha', 'lambda', 'density', 'drop', 'seed', 'dareTies', 'precision'] as const)
    if (o[k] !== undefined) (params as Record<string, unknown>)[k] = o[k];
  return { strategy, rules, params, keepUnresolved };
}

function pick(cfg: Cfg, file: string, name: string | null): MergeStrategyName {
  for (let i = cfg.rules.length - 1; i >= 0; i--) {
    const re = cfg.rules[i].regex;
    if (name === null ? re.test(file) : re.test(name) || re.test(`${file}:${name}`)) return cfg.rules[i].strategy;
  }
  return cfg.strategy;
}

function paramsRecord(cfg: Cfg): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg.params)) p[k] = typeof v === 'bigint' ? v.toString() : v;
  return p;
}

// ---- planning --------------------------------------------------------------------------------

interface Plan {
  tree: Tree;
  autoMerged: MergeItem[];
  conflicts: MergeConflict[];
  unresolved: MergeConflict[];
  notes: string[];
  /**
   * Merged files already written (fsynced) under .coral/tmp while they were
   * planned, by path: applying the tree renames them into place instead of
   * decoding, hashing and writing every segment again. See `Prepared`.
   */
  prepared: Prepared;
}

/**
 * Files a plan wrote ahead: path -> temp file holding exactly the bytes of the
 * planned entry (its sha256 was computed from those bytes). `take` hands a file
 * over (rename) or returns false so the caller re-assembles it from objects;
 * `discard` removes whatever was not taken.
 */
class Prepared {
  private files = new Map<string, { tmp: string; sha256: string }>();

  add(p: string, tmp: string, sha256: string): void {
    const old = this.files.get(p);
    if (old) fs.rmSync(old.tmp, { force: true });
    this.files.set(p, { tmp, sha256 });
  }

  /** Moves the prepared file for `p` to `dest` if it holds `sha256` (same filesystem); true when done. */
  async take(p: string, sha256: string, dest: string): Promise<boolean> {
    const f = this.files.get(p);
    if (!f || f.sha256 !== sha256) return false;
    this.files.delete(p);
    try {
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      await fsp.rename(f.tmp, dest);
    } catch {
      await fsp.rm(f.tmp, { force: true });
      return false; // e.g. another filesystem: re-assemble instead
    }
    fsyncDirSync(path.dirname(dest));
    return true;
  }

  /** Like `take`, into worktree path `p` through the safe worktree primitives. */
  async takeIntoWorktree(layout: WorktreeLayout, p: string, sha256: string): Promise<boolean> {
    const f = this.files.get(p);
    if (!f || f.sha256 !== sha256) return false;
    this.files.delete(p);
    let placed = false;
    try {
      placed = await placeWorktreeFile(layout, p, f.tmp);
    } finally {
      if (!placed) await fsp.rm(f.tmp, { force: true });
    }
    return placed;
  }

  async discard(): Promise<void> {
    const all = [...this.files.values()];
    this.files.clear();
    await Promise.all(all.map((f) => fsp.rm(f.tmp, { force: true })));
  }
}

interface Version extends TensorVersion {
  te: TensorEntry;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function wholeSegment(e: FileEntry, te: TensorEntry): boolean {
  const seg = e.segments[te.segment];
  return te.strides === null && te.elementOffset === 0 && seg.dtype === te.dtype && sameShape(seg.shape, te.shape);
}

async function versions(reader: ObjectReader, e: FileEntry | undefined): Promise<Map<string, Version>> {
  const out = new Map<string, Version>();
  if (!e) return out;
  for (const te of e.tensors) {
    // A tensor that is a whole segment has the segment's object id as its content id.
    const id = wholeSegment(e, te) ? e.segments[te.segment].object : await contentId(await readFileTensor(reader, e, te));
    out.set(te.name, { dtype: te.dtype, shape: te.shape, id, te });
  }
  return out;
}

/** Where a merged tensor comes from; `id`: the merged tensor, already stored as an object (whole-segment case). */
type Source = { side: 'base' | 'ours' | 'theirs'; v: Version } | { merged: Tensor | null; id?: string };

/**
 * Merged tensors of one file kept in memory for writing the merged file; past
 * this, a merged tensor is dropped once stored and decoded again when the file
 * is written, so memory stays bounded whatever the file size.
 */
const MERGE_HOLD_BYTES = 512 << 20;

function conflictError(unresolved: MergeConflict[], strategy: MergeStrategyName): MergeConflictError {
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
  readonly prepared = new Prepared();

  constructor(
    private readonly repo: Repository,
    private readonly writer: ObjectWriter,
    private readonly cfg: Cfg,
  ) {}

  get reader(): ObjectReader {
    return this.repo.reader;
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
        o && t && o.format === t.format && (o.tensors.length > 0 || t.tensors.length > 0) &&
        (f.kind === 'conflict-modify-modify' || f.kind === 'conflict-add-add');
      const e = tensorMerge ? await this.mergeFile(f.name, b, o!, t!) : this.wholeFile(f.name, f.kind, o, t);
      if (e) files[f.name] = e;
    }
    return {
      tree: { files }, autoMerged: this.autoMerged, conflicts: this.conflicts, unresolved: this.unresolved, notes: this.notes,
      prepared: this.prepared,
    };
  }

  /** A file-level conflict that per-tensor merging cannot handle (delete/modify, non-tensor content). */
  private wholeFile(file: string, kind: MergeKind, o: FileEntry | undefined, t: FileEntry | undefined): FileEntry | undefined {
    const s = pick(this.cfg, file, null);
    const c: MergeConflict = { file, tensor: null, kind, strategy: s, resolvedBy: null };
    if (s === 'ours' || s === 'theirs') {
      c.resolvedBy = s;
      this.record(c);
      return s === 'ours' ? o : t;
    }
    if (kind === 'conflict-delete-modify' || kind === 'conflict-modify-delete') {
      c.reason = 'delete-modify';
      c.message = `${file} was ${kind === 'conflict-delete-modify' ? 'deleted by ours and modified by theirs' : 'modified by ours and deleted by theirs'}; ` +
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

  private async mergeFile(file: string, b: FileEntry | undefined, o: FileEntry, t: FileEntry): Promise<FileEntry | undefined> {
    this.entries = { base: b, ours: o, theirs: t };
    this.held = 0;
    const [bv, ov, tv] = [await versions(this.reader, b), await versions(this.reader, o), await versions(this.reader, t)];
    const result = new Map<string, { dtype: string; shape: readonly number[]; src: Source }>();
    const sideOf = { base: bv, ours: ov, theirs: tv };
    const entryOf = { base: b, ours: o, theirs: t };
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
      const s = pick(this.cfg, file, c.name);
      const rec: MergeConflict = { file, tensor: c.name, kind: c.kind, strategy: s, resolvedBy: null };
      if (s === 'ours' || s === 'theirs') {
        take(c.name, s);
        rec.resolvedBy = s;
      } else if (c.kind === 'conflict-delete-modify' || c.kind === 'conflict-modify-delete') {
        rec.reason = 'delete-modify';
        rec.message = `tensor ${JSON.stringify(c.name)} in ${file} was ${c.kind === 'conflict-delete-modify' ? 'deleted by ours and modified by theirs' : 'modified by ours and deleted by theirs'}; ` +
          `a ${s} strategy cannot resolve it; use --resolve '${c.name}=ours' or '=theirs'`;
      } else if (s === 'fail') {
        rec.reason = 'fail';
        rec.message = `tensor ${JSON.stringify(c.name)} in ${file} changed differently on both sides (strategy fail)`;
      } else {
        const oursTe = ov.get(c.name)!.te;
        const oursBytes = wholeSegment(o, oursTe) ? await this.oursSegment(file, o, oursTe.segment) : null;
        const ours = oursBytes ? tensor(oursTe.dtype as DType, oursTe.shape, oursBytes) : await readFileTensor(this.reader, o, oursTe);
        const theirs = await readFileTensor(this.reader, t, tv.get(c.name)!.te);
        const bt = bv.get(c.name);
        const base = bt && b ? await readFileTensor(this.reader, b, bt.te) : undefined;
        try {
          const merged = await resolveTensor(s, { base, ours, theirs }, { ...this.cfg.params, name: `${file}:${c.name}` });
          const src: Source = { merged };
          if (merged !== ours && merged !== theirs && wholeSegment(o, oursTe) && merged.dtype === ours.dtype && sameShape(merged.shape, ours.shape)) {
            // Store it now, as a delta candidate against ours' segment, whose decoded
            // bytes we hold (no second decode); splice reuses the object.
            // One put in flight: it encodes while the next conflict is decoded and merged.
            const seg = o.segments[oursTe.segment];
            await inflight.settle();
            const put = this.writer.put(tensor(seg.dtype as DType, seg.shape, merged.data), { id: seg.object, tensor: tensor(seg.dtype as DType, seg.shape, ours.data) }, undefined, undefined, { owned: true });
            const hold = this.held + merged.data.byteLength <= MERGE_HOLD_BYTES;
            if (hold) this.held += merged.data.byteLength;
            inflight.start(put.then((r) => {
              src.id = r.id;
              if (!hold) src.merged = null;
            }));
          }
          result.set(c.name, { dtype: merged.dtype, shape: merged.shape, src });
          rec.resolvedBy = s;
        } catch (e) {
          if (!(e instanceof MergeConflictError)) throw e;
          rec.reason = String((e.data as { reason?: unknown } | undefined)?.reason ?? 'conflict');
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
        if (this.differs(r.src, v) && v.te.strides !== null) return false;
      }
      return true;
    };
    const bSk = b?.skeleton;
    const order: Array<'ours' | 'theirs'> = o.skeleton !== t.skeleton && bSk === o.skeleton ? ['theirs', 'ours'] : ['ours', 'theirs'];
    const side = order.find((s) => fits(sideOf[s]));
    if (side) {
      const other = side === 'ours' ? t : o;
      const L = entryOf[side]!;
      if (L.skeleton !== other.skeleton && bSk !== L.skeleton && bSk !== other.skeleton && fits(sideOf[side === 'ours' ? 'theirs' : 'ours'])) {
        this.notes.push(`${file}: non-tensor bytes (header/metadata) changed on both sides; kept ${side}'s`);
        this.conflicts.push({ file, tensor: null, kind: 'conflict-modify-modify', strategy: side, resolvedBy: side, reason: 'skeleton' });
      }
      return this.splice(file, L, sideOf[side], result);
    }
    return this.rebuild(file, b, o, t, result);
  }

  private differs(src: Source, v: Version): boolean {
    return 'merged' in src ? true : !sameTensor(src.v, v);
  }

  private async sourceBytes(src: Source, entries: { base?: FileEntry; ours: FileEntry; theirs: FileEntry }): Promise<Uint8Array> {
    if ('merged' in src) {
      if (src.merged) return src.merged.data;
      // Dropped after it was stored (MERGE_HOLD_BYTES): publish pending objects, then decode it.
      if (!(await this.repo.store.has(src.id!))) await this.writer.flush();
      return (await this.reader.tensor(src.id!)).data;
    }
    return (await readFileTensor(this.reader, entries[src.side]!, src.v.te)).data;
  }

  /** Bytes of merged tensors held for the file being merged. */
  private held = 0;

  /**
   * Segment `i` of ours' version of `file`, read from the worktree when the file
   * there still holds it (checked: its content id must be the segment's object
   * id); null otherwise. HEAD's files are usually in the worktree unchanged, and
   * reading them is far cheaper than decoding their objects.
   */
  private async oursSegment(file: string, e: FileEntry, i: number): Promise<Uint8Array | null> {
    const seg = e.segments[i];
    let fh: fsp.FileHandle | null = null;
    try {
      fh = await fsp.open(this.repo.absPath(file), 'r');
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

  /** The three versions of the file being merged. */
  private entries!: { base?: FileEntry; ours: FileEntry; theirs: FileEntry };

  /** Writes the result's tensors into layout L's segments; keeps L's skeleton. */
  private async splice(
    file: string,
    L: FileEntry,
    Lv: Map<string, Version>,
    result: Map<string, { dtype: string; shape: readonly number[]; src: Source }>,
  ): Promise<FileEntry> {
    const changes = new Map<number, Array<{ te: TensorEntry; src: Source }>>();
    for (const [name, r] of result) {
      const v = Lv.get(name)!;
      if (!this.differs(r.src, v)) continue;
      const list = changes.get(v.te.segment) ?? [];
      list.push({ te: v.te, src: r.src });
      changes.set(v.te.segment, list);
    }
    if (changes.size === 0) return L;
    const skel = (await this.reader.tensor(L.skeleton)).data;
    const segments = L.segments.map((s) => ({ ...s, shape: s.shape.slice() }));
    // The merged file is written (and hashed) as its objects are made, so
    // applying the merge only renames it into place.
    const self = this;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      let pos = 0;
      let sk = 0;
      for (let i = 0; i < L.segments.length; i++) {
        const seg = L.segments[i];
        const gap = seg.offset - pos;
        if (gap < 0 || sk + gap > skel.byteLength) throw new CorruptObjectError(`file entry segments do not fit its skeleton`);
        if (gap > 0) yield skel.subarray(sk, sk + gap);
        sk += gap;
        const ch = changes.get(i);
        let data: Uint8Array;
        if (!ch) {
          data = (L === self.entries.ours ? await self.oursSegment(file, L, i) : null) ?? (await self.reader.tensor(seg.object)).data;
        } else {
          const only = ch.length === 1 && wholeSegment(L, ch[0].te) ? ch[0].src : null;
          if (only && 'merged' in only && only.id) {
            data = await self.sourceBytes(only, self.entries); // stored while planning
            segments[i].object = only.id;
          } else {
            if (only) {
              data = await self.sourceBytes(only, self.entries);
            } else {
              data = Buffer.from((await self.reader.tensor(seg.object)).data);
              for (const c of ch) {
                const bytes = await self.sourceBytes(c.src, self.entries);
                (data as Buffer).set(bytes, c.te.elementOffset * DTYPES[c.te.dtype as DType].size);
              }
            }
            const r = await self.writer.put(tensor(seg.dtype as DType, seg.shape, data), { id: seg.object });
            segments[i].object = r.id;
          }
        }
        if (data.byteLength !== seg.length)
          throw new CorruptObjectError(`segment ${i} has ${data.byteLength} bytes, file entry expects ${seg.length}`);
        yield data;
        pos = seg.offset + seg.length;
      }
      if (skel.byteLength - sk !== L.size - pos) throw new CorruptObjectError(`skeleton ${L.skeleton} length does not match the file entry`);
      if (sk < skel.byteLength) yield skel.subarray(sk);
    }
    const { tmp, fh } = await this.tempFile(path.extname(file));
    let ok = false;
    try {
      const { sha256 } = await writeHashed(fh, chunks());
      ok = true;
      this.prepared.add(file, tmp, sha256);
      return { ...L, segments, sha256 };
    } finally {
      await fh.close();
      if (!ok) await fsp.rm(tmp, { force: true });
    }
  }

  private async tempFile(ext: string): Promise<{ tmp: string; fh: fsp.FileHandle }> {
    await fsp.mkdir(this.repo.layout.tmp, { recursive: true });
    const tmp = path.join(this.repo.layout.tmp, `merge-${process.pid}-${crypto.randomBytes(6).toString('hex')}${ext}`);
    return { tmp, fh: await fsp.open(tmp, 'wx', 0o644) };
  }

  /** Neither side's layout fits: write a new file (safetensors only) and ingest it. */
  private async rebuild(
    file: string,
    b: FileEntry | undefined,
    o: FileEntry,
    t: FileEntry,
    result: Map<string, { dtype: string; shape: readonly number[]; src: Source }>,
  ): Promise<FileEntry> {
    if (o.format !== 'safetensors')
      throw new UnsupportedError(
        `cannot re-assemble ${file}: the merged tensors fit neither side's ${o.format} layout (tensors added, removed or reshaped ` +
          `on both sides); only safetensors files can be rebuilt. Resolve the file with --resolve '${file}=ours' or '=theirs'`,
        { path: file, format: o.format },
      );
    const tensors = new Map<string, Tensor>();
    for (const [name, r] of result)
      tensors.set(name, tensor(r.dtype as DType, r.shape, await this.sourceBytes(r.src, this.entries)));
    const md = (e?: FileEntry) => JSON.stringify(e?.metadata ?? null);
    const metaSide = md(o) === md(b) ? t : o;
    const bytes = serializeSafetensors(tensors, metaSide.metadata);
    const { tmp, fh } = await this.tempFile('.safetensors');
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

/** Plans a three-way merge of trees; stores merged objects through `writer`. */
export async function planMerge(
  repo: Repository,
  writer: ObjectWriter,
  base: Tree,
  ours: Tree,
  theirs: Tree,
  params: MergeParams,
  opts: { keepUnresolved?: boolean } = {},
): Promise<Plan & { cfg: Cfg }> {
  const cfg = makeCfg(params, !!opts.keepUnresolved);
  const plan = await new Planner(repo, writer, cfg).plan(base, ours, theirs);
  return { ...plan, cfg };
}

// ---- worktree application --------------------------------------------------------------------

/**
 * Merge's precondition: no local change anywhere (staged, unstaged, or an
 * untracked file where the merge puts one). The check is apply-tree's, in strict mode.
 */
async function ensureClean(repo: Repository, target: Tree, ours: Tree): Promise<void> {
  await checkSwitch(repo, ours, target, { strict: true, operation: 'merge' });
}

function readState(repo: Repository): MergeStateFile | null {
  let text: string;
  try {
    text = fs.readFileSync(repo.layout.mergeState, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as MergeStateFile;
    if (s && s.version === 1 && typeof s.orig === 'string' && Array.isArray(s.theirs) && s.tree && typeof s.tree.files === 'object' && s.tree.files)
      return { ...s, tree: { files: fileTable(Object.entries(s.tree.files)) } }; // null-prototype: any file name is a plain key
  } catch {
    /* fall through */
  }
  throw new CoralError(`${repo.layout.mergeState} is unreadable; remove it to forget the merge in progress`, undefined, 'CORAL_CORRUPT_OBJECT');
}

async function writeState(repo: Repository, s: MergeStateFile): Promise<void> {
  await writeFileAtomic(repo.layout.mergeState, JSON.stringify(s));
}

// ---- the merge -------------------------------------------------------------------------------

function emptyReport(theirs: string, ours: string | null): MergeReport {
  return {
    status: 'merged', upToDate: false, fastForward: false, commit: null, ours, theirs, base: null, bases: [],
    autoMerged: [], conflicts: [], resolved: [], unresolved: [], notes: [], written: [], removed: [],
  };
}

export async function merge(repo: Repository, other: string, opts: MergeOptions = {}): Promise<MergeReport> {
  if (typeof other !== 'string' || !other) throw invalidParameter('revision', 'branch or revision to merge', other);
  if (opts.noFf && opts.ffOnly) throw new InvalidArgumentError('--no-ff and --ff-only cannot be combined');
  if (readState(repo)) throw new InProgressError('a merge is already in progress; finish it with `coral merge --continue` or `coral merge --abort`');
  makeCfg(opts, false); // validate before touching anything
  const theirsId = await repo.resolve(other);
  const headId = await repo.headCommit();
  const branch = await repo.currentBranch();
  const report = emptyReport(theirsId, headId);
  const oursTree = await repo.treeOf(headId);
  const theirsTree = await repo.readTree((await repo.readCommit(theirsId)).tree);
  const bases = headId ? await mergeBase(headId, theirsId, repo.meta) : [];
  report.bases = bases;
  if (headId && bases.includes(theirsId)) {
    return { ...report, status: 'up-to-date', upToDate: true, commit: null, base: theirsId };
  }
  await ensureClean(repo, theirsTree, oursTree);
  const canFf = !headId || bases[0] === headId;
  if (canFf && !opts.noFf) {
    const { written, removed } = await applyTree(repo, oursTree, theirsTree, { strict: true, operation: 'merge' });
    const ref = branch ? `refs/heads/${branch}` : 'HEAD';
    await repo.refs.updateRef(ref, theirsId, { expectedOld: headId, message: `merge ${other}: Fast-forward` });
    const autoMerged: MergeItem[] = classifyFiles(oursTree.files, oursTree.files, theirsTree.files)
      .filter((f) => f.kind !== 'unchanged')
      .map((f) => ({ file: f.name, tensor: null, kind: f.kind }));
    return { ...report, status: 'fast-forward', fastForward: true, commit: theirsId, base: headId, autoMerged, written, removed };
  }
  if (opts.ffOnly) throw new InvalidArgumentError(`not possible to fast-forward to ${other} (the histories have diverged); merge without --ff-only`);
  const base = bases[0] ?? null;
  if (!base && !opts.allowUnrelated)
    throw new InvalidArgumentError(`refusing to merge unrelated histories (${other} shares no commit with HEAD); pass allowUnrelated / --allow-unrelated-histories`);
  if (bases.length > 1) report.notes.push(`${bases.length} merge bases (criss-cross history); used the newest, ${bases[0]}`);
  const baseTree = base ? await repo.readTree((await repo.readCommit(base)).tree) : { files: fileTable<FileEntry>() };
  report.base = base;

  let prepared: Prepared | null = null;
  try {
  return await repo.withWriter('merge', async (writer) => {
    const plan = await planMerge(repo, writer, baseTree, oursTree, theirsTree, opts, { keepUnresolved: !!opts.noCommit });
    prepared = plan.prepared;
    if (plan.unresolved.length && !opts.noCommit) throw conflictError(plan.unresolved, plan.cfg.strategy);
    await writer.flush();
    const resolved = plan.conflicts.filter((c) => c.resolvedBy !== null).map((c) => ({ file: c.file, tensor: c.tensor, strategy: c.resolvedBy! }));
    const resolvedMap = fileTable<string>();
    for (const r of resolved) resolvedMap[r.tensor === null ? r.file : `${r.file}:${r.tensor}`] = r.strategy;
    const metadata: Record<string, unknown> = {
      merge: {
        strategy: plan.cfg.strategy,
        params: paramsRecord(plan.cfg),
        rules: plan.cfg.rules.map((r) => `${r.pattern}=${r.strategy}`),
        base,
        theirs: theirsId,
        resolved: resolvedMap,
        ...(plan.unresolved.length ? { unresolved: plan.unresolved.map((c) => (c.tensor === null ? c.file : `${c.file}:${c.tensor}`)) } : {}),
      },
    };
    const message = opts.message ?? `Merge ${other} into ${branch ?? 'HEAD'}`;
    const state: MergeStateFile = {
      version: 1, orig: headId!, theirs: [theirsId], base, branch, message, metadata, tree: plan.tree, applied: false,
      unresolved: plan.unresolved,
    };
    await writeState(repo, state);
    crashPoint('merge:after-state');
    const { written, removed } = await applyTree(repo, oursTree, plan.tree, { strict: true, operation: 'merge', prepared: plan.prepared });
    state.applied = true;
    await writeState(repo, state);
    crashPoint('merge:after-apply');
    const out: MergeReport = {
      ...report, autoMerged: plan.autoMerged, conflicts: plan.conflicts, resolved, unresolved: plan.unresolved,
      notes: [...report.notes, ...plan.notes], written, removed,
    };
    if (opts.noCommit || plan.unresolved.length) return { ...out, status: 'pending' };
    const id = await repo.commit({ message, extraParents: [theirsId], metadata, author: opts.author });
    await fsp.rm(repo.layout.mergeState, { force: true });
    return { ...out, commit: id };
  });
  } finally {
    await (prepared as Prepared | null)?.discard();
  }
}

/** Finishes a merge in progress: applies the merged tree if a crash interrupted it, then commits the index with both parents. */
export async function mergeContinue(
  repo: Repository, opts: { message?: string; author?: Partial<Signature>; metadata?: Record<string, unknown> } = {},
): Promise<string> {
  const s = readState(repo);
  if (!s) throw new InvalidArgumentError('no merge in progress (no .coral/MERGE_STATE)');
  const open = openConflicts(s);
  if (open.length)
    throw new MergeConflictError(
      `cannot commit: ${open.length} unresolved merge conflict(s) in ${[...new Set(open.map((c) => c.file))].join(', ')}; ` +
        'fix the files and `coral add` them (or `coral merge --abort`)',
      { conflicts: open },
    );
  const head = await repo.headCommit();
  if (head !== s.orig)
    throw new InvalidArgumentError(`HEAD moved since the merge started (was ${s.orig.slice(0, 12)}, now ${head?.slice(0, 12)}); run \`coral merge --abort\``);
  if (!s.applied) {
    const origTree = await repo.treeOf(s.orig);
    // Recovery: whatever a crash left half-applied ends as the merged tree.
    await applyTree(repo, origTree, s.tree, { force: true });
    s.applied = true;
    await writeState(repo, s);
  }
  const metadata = { ...(opts.metadata ?? {}), ...s.metadata };
  if (s.unresolved.length) {
    const m = { ...(metadata.merge as Record<string, unknown>) };
    const resolved = { ...(m.resolved as Record<string, string>) };
    for (const c of s.unresolved) resolved[c.tensor === null ? c.file : `${c.file}:${c.tensor}`] = 'manual';
    m.resolved = resolved;
    delete m.unresolved;
    metadata.merge = m;
  }
  const id = await repo.commit({ message: opts.message ?? s.message, extraParents: s.theirs, metadata, author: opts.author });
  await fsp.rm(repo.layout.mergeState, { force: true });
  return id;
}

/** Abandons a merge in progress: the worktree and index go back to ORIG_HEAD; HEAD never moved. */
export async function mergeAbort(repo: Repository): Promise<{ orig: string; written: string[]; removed: string[] }> {
  const s = readState(repo);
  if (!s) throw new InvalidArgumentError('no merge in progress (no .coral/MERGE_STATE)');
  const origTree = await repo.treeOf(s.orig);
  // Everything the merge (or the user since) touched goes back to orig; force also resets what the index holds.
  const r = await applyTree(repo, s.tree, origTree, { force: true });
  await fsp.rm(repo.layout.mergeState, { force: true });
  return { orig: s.orig, written: r.written, removed: r.removed };
}

function openConflicts(s: MergeStateFile): MergeConflict[] {
  const done = new Set(s.resolvedFiles ?? []);
  return s.unresolved.filter((c) => !done.has(c.file));
}

/** `coral add` during a merge: the staged files count as resolved (git's "mark resolution"). */
export async function markResolved(repo: Repository, files: Iterable<string>): Promise<void> {
  let s: MergeStateFile | null;
  try {
    s = readState(repo);
  } catch {
    return; // an unreadable state is reported by merge --continue/--abort and status, not by add
  }
  if (!s || !s.unresolved.length) return;
  const conflicted = new Set(s.unresolved.map((c) => c.file));
  const done = new Set(s.resolvedFiles ?? []);
  let changed = false;
  for (const f of files)
    if (conflicted.has(f) && !done.has(f)) {
      done.add(f);
      changed = true;
    }
  if (!changed) return;
  s.resolvedFiles = [...done].sort();
  await writeState(repo, s);
}

export function mergeState(repo: Repository): MergeStateFile | null {
  return readState(repo);
}

// ---- try and vet -----------------------------------------------------------------------------

export interface TryCandidate {
  strategy: MergeStrategyName;
  dir: string;
  ok: boolean;
  error?: string;
  files: string[];
  conflicts: number;
  resolved: number;
}

/** Defaults the try mode fills in for strategies whose parameter the user did not give. */
export const TRY_DEFAULTS = Object.freeze({ alpha: 0.5, density: 0.2, drop: 0.1 });

/**
 * Writes one full candidate checkpoint set per strategy into `out/<strategy>/`
 * (byte-exact re-assembly of the merged tree) without touching refs, the
 * index or the worktree. Merged objects are stored (unreferenced until a
 * later `merge --strategy X` commits the same result, which then dedups;
 * otherwise gc drops them).
 */
export async function mergeTry(
  repo: Repository,
  other: string,
  strategies: readonly MergeStrategyName[],
  out: string,
  params: MergeParams = {},
): Promise<{ base: string | null; theirs: string; ours: string | null; params: Record<string, unknown>; candidates: TryCandidate[] }> {
  if (!Array.isArray(strategies) || strategies.length === 0) throw invalidParameter('strategies', 'non-empty list of strategies', strategies);
  for (const s of strategies) if (!isMergeStrategy(s)) throw invalidParameter('strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, s);
  if (new Set(strategies).size !== strategies.length) throw invalidParameter('strategies', 'distinct strategies', strategies);
  const filled: MergeParams = {
    ...params,
    alpha: params.alpha ?? TRY_DEFAULTS.alpha,
    density: params.density ?? TRY_DEFAULTS.density,
    drop: params.drop ?? TRY_DEFAULTS.drop,
  };
  makeCfg({ ...filled, strategy: strategies[0] }, false);
  const theirsId = await repo.resolve(other);
  const headId = await repo.headCommit();
  const bases = headId ? await mergeBase(headId, theirsId, repo.meta) : [];
  const base = bases[0] ?? null;
  if (headId && !base && !params.allowUnrelated)
    throw new InvalidArgumentError(`refusing to merge unrelated histories (${other} shares no commit with HEAD)`);
  const baseTree = await repo.treeOf(base);
  const oursTree = await repo.treeOf(headId);
  const theirsTree = await repo.readTree((await repo.readCommit(theirsId)).tree);
  const outDir = path.resolve(out);
  await checkNotInCoral(repo.layout, outDir);
  const candidates: TryCandidate[] = [];
  for (const strategy of strategies) {
    const dir = path.join(outDir, strategy);
    const c: TryCandidate = { strategy, dir, ok: false, files: [], conflicts: 0, resolved: 0 };
    let plan: Plan & { cfg: Cfg };
    try {
      let prepared: Prepared | null = null;
      try {
        plan = await repo.withWriter('merge-try', async (writer) => {
          const p = await planMerge(repo, writer, baseTree, oursTree, theirsTree, { ...filled, strategy });
          prepared = p.prepared;
          if (p.unresolved.length) throw conflictError(p.unresolved, strategy);
          return p;
        });
        await fsp.rm(dir, { recursive: true, force: true });
        await fsp.mkdir(dir, { recursive: true });
        for (const [p, e] of Object.entries(plan.tree.files)) {
          const dest = path.join(dir, ...p.split('/'));
          if (!(await plan.prepared.take(p, e.sha256, dest))) await materializeFile(repo.reader, e, dest);
          c.files.push(p);
        }
      } finally {
        await (prepared as Prepared | null)?.discard();
      }
      c.conflicts = plan.conflicts.length;
      c.resolved = plan.conflicts.filter((x) => x.resolvedBy !== null).length;
      c.ok = true;
    } catch (e) {
      if (!(e instanceof CoralError)) throw e;
      c.error = `${e.message} (${e.code})`;
    }
    candidates.push(c);
  }
  const shown: Record<string, unknown> = {};
  for (const k of ['alpha', 'lambda', 'density', 'drop', 'seed'] as const)
    if (filled[k] !== undefined) shown[k] = typeof filled[k] === 'bigint' ? String(filled[k]) : filled[k];
  return { base, theirs: theirsId, ours: headId, params: shown, candidates };
}

export type MergeTryStrategies = readonly MergeStrategyName[];
