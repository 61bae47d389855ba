/**
 * Negotiation and transfer between two repositories: what the receiver lacks, moved in an order that keeps
 * it consistent at every instant. The same code pushes (local → remote), fetches and clones (remote →
 * local), and completes a partial clone; a "side" is anything with meta objects and an object store, which
 * a RemoteRepo and a local repository context both are.
 *
 * What moves:
 * 1. refs are compared by the caller (push: fast-forward check; fetch: every branch and tag);
 * 2. meta objects: walked from the tips in the sender, stopping at any the receiver already has. The
 *    receiver's meta objects are *closed*: a commit is only ever written after its tree and parents, a
 *    tree after every object it names, so one it has implies everything below it (the resume rule:
 *    whatever an interrupted transfer wrote whole is not sent again);
 * 3. tensor objects (segments, skeletons, blobs) named by the new trees and absent from the receiver's
 *    store, each delta with its base unless the receiver has the base (recursively).
 *
 * In what order (the durability contract of transport.ts): all tensor objects go up in ONE pack
 * transaction, as the stored (already encoded) bytes, never re-encoded; when it has committed, the meta
 * objects follow (trees, then commits parents-first, then tags); the caller moves refs last, each by
 * compare-and-swap. A process killed anywhere leaves the receiver with at most an unreferenced pack or
 * unreferenced meta objects, which a rerun reuses and gc eventually removes.
 *
 * Everything is verified before it is written: the sender's store checks each object's checksum on read,
 * and each object is decoded here (against its base: the receiver's copy, or the verified incoming one),
 * which checks its content id end to end; meta objects are checked against their sha256 and decoded. A
 * damaged object stops the transfer with an error naming it, and nothing of the transaction is published.
 *
 * @example
 * const r = await transfer(local, remote, [headId]);
 * r.objects, r.objectBytes   // what was sent
 */
import { decode } from '../codec';
import { CorruptObjectError, ObjectNotFoundError } from '../errors';
import { globToRegExp } from '../merge/rules';
import { decodeMeta, type MetaObject } from '../models/meta';
import type { Tree } from '../models/tree';
import { ObjectReader } from '../odb/objects';
import type { ObjectAttrs, ObjectStore, PackInfo, StoredAttrs } from '../store/object-store';
import type { Tensor } from '../tensor/tensor';
import { crashPoint } from '../util/crash';
import type { RemoteMeta } from './transport';

/** One end of a transfer: meta objects and tensor objects (a RemoteRepo, or a repository context's parts). */
export interface TransferSide {
  readonly meta: RemoteMeta;
  readonly objects: ObjectStore;
}

/**
 * Which objects of a file a partial clone wants: `wanted(path, null)` for the whole file (skeleton and
 * every segment), else `wanted(path, tensorNames)` for one segment viewed by those tensors.
 */
export type ObjectFilter = (path: string, tensors: readonly string[] | null) => boolean;

export interface TransferOptions {
  /** Only objects this filter wants (a partial clone); their delta bases always go along. */
  filter?: ObjectFilter | null;
  /**
   * Walk every meta object reachable from the tips, even those the receiver has, and fetch every object
   * they name that it lacks (completes a partial clone; `coral fetch --all-objects`).
   */
  complete?: boolean;
  /** Crash points are named `<what>:after-pack`, `<what>:after-trees`, `<what>:after-meta` (lib/util/crash.ts). */
  what?: string;
  /**
   * Which side reads delta bases cheaply when an incoming object is checked against its base: 'src' for a
   * push (the local repository sends), 'dst' (default) for a fetch.
   */
  local?: 'src' | 'dst';
  /** Called as objects are copied. */
  onProgress?: (done: number, total: number) => void;
}

export interface TransferReport {
  /** Meta objects (commits, trees, tags) written to the receiver. */
  metas: number;
  metaBytes: number;
  /** Tensor objects written to the receiver. */
  objects: number;
  /** Stored (encoded) bytes of those objects: exactly what their packs hold in the sender. */
  objectBytes: number;
  /** The pack the objects went into (null when none were needed). */
  pack: PackInfo | null;
  /** Objects left out by the filter (promised by the sender). */
  filtered: number;
  /**
   * Files (distinct contents, by sha256) of the walked trees that needed at least one object, and their
   * total size: what copying the changed files whole would have moved, the baseline for `objectBytes`.
   */
  files: number;
  fileBytes: number;
}

/** An ObjectFilter from globs (`*`, `?`, `[…]`; lib/merge/rules.ts): a file path or a tensor name matches. */
export function globFilter(globs: readonly string[]): ObjectFilter {
  const res = globs.map((g) => globToRegExp(g));
  const any = (s: string) => res.some((r) => r.test(s));
  return (p, tensors) => any(p) || (tensors !== null && tensors.some(any));
}

/** The objects of a tree that a filter wants (all of them without a filter). */
export function treeObjects(tree: Tree, filter: ObjectFilter | null | undefined, out: Set<string>): number {
  let left = 0;
  for (const [p, e] of Object.entries(tree.files)) {
    if (!filter || filter(p, null)) {
      out.add(e.skeleton);
      for (const s of e.segments) out.add(s.object);
      continue;
    }
    left++; // the skeleton
    e.segments.forEach((s, i) => {
      const names = e.tensors.filter((t) => t.segment === i).map((t) => t.name);
      if (filter(p, names)) out.add(s.object);
      else left++;
    });
  }
  return left;
}

interface WalkedMeta {
  id: string;
  bytes: Uint8Array;
  obj: MetaObject;
  /** The receiver lacks it (it must be written). */
  write: boolean;
}

/** Reads a meta object from whichever side has it (the receiver first: usually local). */
async function readMeta(src: TransferSide, dst: TransferSide, id: string, dstHas: boolean): Promise<Uint8Array> {
  if (dstHas) return dst.meta.get(id);
  return src.meta.get(id);
}

/** Walks meta objects from `tips`; see the module comment for the stopping rule. */
async function walkMeta(
  src: TransferSide,
  dst: TransferSide,
  tips: readonly string[],
  complete: boolean,
): Promise<WalkedMeta[]> {
  const seen = new Set<string>();
  const out: WalkedMeta[] = [];
  const stack = [...tips];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const has = await dst.meta.has(id);
    if (has && !complete) continue;
    const bytes = await readMeta(src, dst, id, has);
    let obj: MetaObject;
    try {
      obj = decodeMeta(bytes);
    } catch (e) {
      throw new CorruptObjectError(`meta object ${id}: ${(e as Error).message}`, { id });
    }
    out.push({ id, bytes, obj, write: !has });
    if (obj.type === 'commit') stack.push(obj.value.tree, ...obj.value.parents);
    else if (obj.type === 'tag') stack.push(obj.value.object);
  }
  return out;
}

/** Commits ordered parents first (Kahn over the parent links inside the set); trees first, tags last. */
function writeOrder(metas: WalkedMeta[]): WalkedMeta[] {
  const trees = metas.filter((m) => m.obj.type === 'tree');
  const commits = metas.filter((m) => m.obj.type === 'commit');
  const tags = metas.filter((m) => m.obj.type === 'tag');
  const byId = new Map(commits.map((c) => [c.id, c]));
  const pending = new Map<string, number>();
  const children = new Map<string, string[]>();
  for (const c of commits) {
    const parents = c.obj.type === 'commit' ? c.obj.value.parents.filter((p) => byId.has(p)) : [];
    pending.set(c.id, new Set(parents).size);
    for (const p of new Set(parents)) children.set(p, [...(children.get(p) ?? []), c.id]);
  }
  const ready = commits.filter((c) => pending.get(c.id) === 0).map((c) => c.id);
  const ordered: WalkedMeta[] = [];
  while (ready.length) {
    const id = ready.shift()!;
    ordered.push(byId.get(id)!);
    for (const ch of children.get(id) ?? []) {
      const n = pending.get(ch)! - 1;
      pending.set(ch, n);
      if (n === 0) ready.push(ch);
    }
  }
  // Tags on tags: a tag after the tag it names.
  const tagIds = new Set(tags.map((t) => t.id));
  const tagOrdered: WalkedMeta[] = [];
  const placed = new Set<string>();
  for (let guard = 0; tagOrdered.length < tags.length && guard <= tags.length; guard++)
    for (const t of tags) {
      if (placed.has(t.id)) continue;
      const target = t.obj.type === 'tag' ? t.obj.value.object : '';
      if (!tagIds.has(target) || placed.has(target)) {
        tagOrdered.push(t);
        placed.add(t.id);
      }
    }
  return [...trees, ...ordered, ...tagOrdered];
}

/** The attributes to put (the store fills in id, storedSize, checksum and location itself). */
function putAttrs(a: StoredAttrs): ObjectAttrs {
  return { codec: a.codec, dtype: a.dtype, shape: a.shape, base: a.base, rawSize: a.rawSize, extra: a.extra };
}

/**
 * Checks incoming objects end to end before they are written: the header names the id and base the
 * store claims, and the bytes decode (against the base) to a tensor with that content id. Decoded
 * bases that other incoming objects need are kept hot in the sender's reader.
 */
class ArrivalCheck {
  private readonly srcReader: ObjectReader;
  private readonly dstReader: ObjectReader;
  constructor(
    private readonly src: ObjectStore,
    private readonly dst: ObjectStore,
    /** How many incoming objects use each id as their base. */
    private readonly baseUses: Map<string, number>,
    private readonly preferSrc: boolean,
  ) {
    this.srcReader = new ObjectReader(src);
    this.dstReader = new ObjectReader(dst);
  }

  private async baseTensor(base: string): Promise<Tensor> {
    // A base verified in this transfer is hot in srcReader; otherwise read the cheap side when it has it.
    if (this.baseUses.has(base) && !(await this.dst.has(base))) return this.srcReader.tensor(base);
    if (this.preferSrc && (await this.src.has(base))) return this.srcReader.tensor(base);
    if (await this.dst.has(base)) return this.dstReader.tensor(base);
    return this.srcReader.tensor(base);
  }

  async check(id: string, bytes: Uint8Array, attrs: StoredAttrs): Promise<void> {
    let t: Tensor;
    try {
      const base = attrs.base ? { tensor: await this.baseTensor(attrs.base), id: attrs.base } : null;
      t = await decode(bytes, base);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      throw new CorruptObjectError(`object ${id} from the sender is damaged: ${msg}`, {
        id,
        pack: attrs.location,
        cause: (e as { code?: string }).code,
      });
    }
    if (this.baseUses.get(id)) this.srcReader.remember(id, t);
  }
}

/** Files of the walked trees that needed at least one of `need`'s objects (one per content), and their size. */
function changedFiles(metas: WalkedMeta[], need: Map<string, unknown>): { files: number; fileBytes: number } {
  const seen = new Set<string>();
  let fileBytes = 0;
  for (const m of metas) {
    if (m.obj.type !== 'tree') continue;
    for (const e of Object.values(m.obj.value.files)) {
      if (seen.has(e.sha256)) continue;
      if (!need.has(e.skeleton) && !e.segments.some((s) => need.has(s.object))) continue;
      seen.add(e.sha256);
      fileBytes += e.size;
    }
  }
  return { files: seen.size, fileBytes };
}

/**
 * Moves what `dst` lacks of everything reachable from `tips` (commit or tag ids in `src`): tensor objects
 * in one pack, then meta objects. The caller moves refs afterwards.
 */
export async function transfer(
  src: TransferSide,
  dst: TransferSide,
  tips: readonly string[],
  opts: TransferOptions = {},
): Promise<TransferReport> {
  const what = opts.what ?? 'transfer';
  const metas = await walkMeta(src, dst, tips, !!opts.complete);
  const filter = opts.complete ? null : opts.filter;

  // Tensor objects named by the trees walked, minus what the receiver has.
  const named = new Set<string>();
  let filtered = 0;
  for (const m of metas) if (m.obj.type === 'tree') filtered += treeObjects(m.obj.value, filter, named);
  const need = new Map<string, StoredAttrs>();
  const order: string[] = [];
  const baseUses = new Map<string, number>();
  // Depth-first so every base is placed before the deltas made from it.
  const visit = async (id: string): Promise<void> => {
    if (need.has(id) || (await dst.objects.has(id))) return;
    let a: StoredAttrs;
    try {
      a = await src.objects.stat(id);
    } catch (e) {
      if (e instanceof ObjectNotFoundError)
        throw new ObjectNotFoundError(
          `object ${id} is needed by the receiver but the sender does not have it${
            src.objects.kind === 'local-pack' ? ' (a partial clone? run `coral fetch --all-objects` first)' : ''
          }`,
          { id },
        );
      throw e;
    }
    need.set(id, a);
    if (a.base) {
      baseUses.set(a.base, (baseUses.get(a.base) ?? 0) + 1);
      await visit(a.base);
    }
    order.push(id);
  };
  for (const id of named) await visit(id);

  const report: TransferReport = {
    metas: 0,
    metaBytes: 0,
    objects: 0,
    objectBytes: 0,
    pack: null,
    filtered,
    ...changedFiles(metas, need),
  };
  if (order.length) {
    const check = new ArrivalCheck(src.objects, dst.objects, baseUses, opts.local === 'src');
    const tx = dst.objects.beginWrite();
    try {
      let done = 0;
      for (const id of order) {
        const { bytes, attrs } = await src.objects.get(id); // checksum verified by the store
        await check.check(id, bytes, attrs);
        if (await tx.put(id, bytes, putAttrs(attrs))) {
          report.objects++;
          report.objectBytes += bytes.byteLength;
        }
        opts.onProgress?.(++done, order.length);
      }
      crashPoint(`${what}:before-pack`);
      report.pack = await tx.commit();
    } catch (e) {
      await tx.abort();
      throw e;
    }
    crashPoint(`${what}:after-pack`);
  }

  let wroteTrees = false;
  for (const m of writeOrder(metas.filter((x) => x.write))) {
    if (!wroteTrees && m.obj.type !== 'tree') {
      wroteTrees = true;
      crashPoint(`${what}:after-trees`);
    }
    await dst.meta.put(m.bytes);
    report.metas++;
    report.metaBytes += m.bytes.byteLength;
  }
  crashPoint(`${what}:after-meta`);
  return report;
}
