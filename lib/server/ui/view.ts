/**
 * The web UI's data layer (docs/ui.md): read-only queries over one repository held as a `RemoteRepo`
 * (lib/remote/transport.ts). `coral ui` opens the repository it stands in through the path transport
 * (a working repository's `.coral/` is a valid bare layout) and `coral serve --ui` the repositories it
 * serves (a directory or an S3 prefix), so one implementation serves both.
 *
 * Everything the graph, commit and storage pages need comes from meta objects (commits, trees, tags) and
 * the object store's attributes (`ObjectStore.stat` / `list`: codec, base, chain depth, sizes): no tensor is
 * decoded for them. Only the diff and the histogram of one tensor's change decode, on demand, and the
 * element work runs off the event loop (lib/diff's native stats above ASYNC_THRESHOLD_BYTES; the histogram
 * converts in slices and yields between them).
 *
 * What is immutable is cached per repository in a `UiCache` (commits by id, trees, object attributes, the
 * results of diffs); what moves (refs) is read on every request, and the derived orders and the storage
 * breakdown are keyed by the refs they were computed from.
 *
 * @example
 * const cache = new UiCache();
 * const view = new RepoView(await openRemote('/srv/llama'), cache);
 * const page = await view.commits({ limit: 100 });
 * const more = page.next ? await view.commits({ limit: 100, cursor: page.next }) : null;
 */
import { tensorMetrics, diffSides } from '../../diff/tensor-diff';
import { InvalidArgumentError, ObjectNotFoundError, RefNotFoundError, invalidParameter } from '../../errors';
import { decodeMeta, type Commit, type FileEntry, type MetaObject, type Tree } from '../../models';
import { callSync, native } from '../../native';
import { ObjectReader } from '../../odb/objects';
import { resolveRevision, type RevMeta, type RevRefs } from '../../refs/revparse';
import type { RemoteRepo } from '../../remote/transport';
import type { StoredAttrs } from '../../store/object-store';
import { DTYPES, type DType } from '../../tensor/dtype';
import { numel, type Tensor } from '../../tensor/tensor';
import { EXPERIMENT_PREFIX, readRun } from '../../train/experiment';
import { readFileTensor } from '../../worktree/materialize';
import { Heap } from '../../util/heap';
import type {
  UiCommit,
  UiCommitPage,
  UiCommitDetail,
  UiDiff,
  UiDiffTensor,
  UiFile,
  UiHistogram,
  UiRefs,
  UiRun,
  UiStatus,
  UiStorage,
  UiTensor,
} from './contract';

/** Most commits one page of `commits` returns. */
export const MAX_PAGE = 500;
/** Commits one page returns when the caller does not say. */
export const DEFAULT_PAGE = 100;
/** Most bins of a histogram. */
export const MAX_BINS = 1024;
/** Commits the storage breakdown lists (newest first). */
export const STORAGE_COMMITS = 200;

/**
 * The layer / kind split of a tensor name: the first purely numeric dotted component is the layer, what
 * follows it the kind (`model.layers.12.mlp.up_proj.weight` → "12", "mlp.up_proj.weight"); a name without
 * one has layer null and kind the whole name. A numeric last component is a layer with kind "".
 */
export function layerOf(name: string): { layer: string | null; kind: string } {
  const parts = name.split('.');
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  if (i < 0) return { layer: null, kind: name };
  return { layer: parts[i], kind: parts.slice(i + 1).join('.') };
}

interface CommitNode {
  id: string;
  parents: string[];
  tree: string;
  message: string;
  author: string;
  time: string;
  /** Committer time (seconds): the order among commits that are ready at once. */
  ts: number;
  metrics: Record<string, number> | null;
}

/** A bounded map that forgets its oldest entries (insertion order, refreshed on get). */
class Lru<V> {
  private map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  delete(k: string): void {
    this.map.delete(k);
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

/** A snapshot of the refs, read once per request. */
interface Snapshot {
  /** Identifies the refs (names and ids); derived data is keyed by it. */
  key: string;
  refs: UiRefs;
  /** Branch and tag tips (commit ids), deduplicated. */
  tips: string[];
  /** Commit id → labels. */
  labels: Map<string, string[]>;
  /** Every ref's full name → id (as stored: a tag object for an annotated tag). */
  all: Map<string, string>;
}

/** What stays valid across requests for one repository. */
export class UiCache {
  readonly commits = new Map<string, CommitNode>();
  readonly peeled = new Map<string, string>();
  readonly trees = new Lru<Tree>(64);
  /** Tree id → the objects it references (skeletons and segments); a read in flight is shared. */
  readonly treeObjects = new Lru<Promise<string[]>>(1024);
  readonly attrs = new Lru<StoredAttrs | null>(200_000);
  readonly orders = new Lru<string[]>(16);
  readonly diffs = new Lru<UiDiff>(16);
  storage: { key: string; value: UiStorage } | null = null;
  readers = new WeakMap<RemoteRepo, ObjectReader>();
  /** The refs key the store was last refreshed at (new refs: new packs to see). */
  refreshedAt: string | null = null;
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();

function metricsOf(c: Commit): Record<string, number> | null {
  const m = c.metadata.metrics;
  if (!m || typeof m !== 'object' || Array.isArray(m)) return null;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
  return Object.keys(out).length ? out : null;
}

/** Runs `fn` over `items` with at most `width` in flight; results in order. */
async function mapLimit<T, R>(items: readonly T[], width: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

/** A max-heap of commits by committer time (ties: smaller id first), for the topological order. */
const readyHeap = () => new Heap<CommitNode>((a, b) => (a.ts !== b.ts ? a.ts > b.ts : a.id < b.id));

/** An object id a tree's canonical JSON names as a segment's `object` or a file's `skeleton`. */
const TREE_OBJECT_RE = /"(?:object|skeleton)":"([0-9A-Za-z._-]{1,128})"/g;

const CURSOR_RE = /^(\d{1,9})\.([0-9a-f]{64})$/;

function encodeCursor(offset: number, lastId: string): string {
  return Buffer.from(`${offset}.${lastId}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { offset: number; lastId: string } {
  const m = /^[A-Za-z0-9_-]{1,200}$/.test(cursor)
    ? CURSOR_RE.exec(Buffer.from(cursor, 'base64url').toString('utf8'))
    : null;
  if (!m) throw invalidParameter('cursor', 'a cursor returned as `next` by an earlier page', cursor);
  return { offset: Number(m[1]), lastId: m[2] };
}

/** Read-only queries over one repository; cheap to make per request (the state lives in the UiCache). */
export class RepoView {
  private snap: Promise<Snapshot> | null = null;

  constructor(
    readonly repo: RemoteRepo,
    private readonly cache: UiCache,
  ) {}

  // ---- meta objects ----

  private async readMeta(id: string): Promise<MetaObject> {
    return decodeMeta(await this.repo.meta.get(id));
  }

  private async node(id: string): Promise<CommitNode> {
    const hit = this.cache.commits.get(id);
    if (hit) return hit;
    const m = await this.readMeta(id);
    if (m.type !== 'commit') throw new RefNotFoundError(`${id} is a ${m.type}, not a commit`, { id, revision: id });
    const c = m.value;
    const n: CommitNode = {
      id,
      parents: c.parents,
      tree: c.tree,
      message: c.message,
      author: `${c.author.name} <${c.author.email}>`,
      time: iso(c.author.timestamp),
      ts: c.committer.timestamp,
      metrics: metricsOf(c),
    };
    this.cache.commits.set(id, n);
    return n;
  }

  private async tree(id: string): Promise<Tree> {
    const hit = this.cache.trees.get(id);
    if (hit) return hit;
    const m = await this.readMeta(id);
    if (m.type !== 'tree') throw new ObjectNotFoundError(`${id} is a ${m.type}, not a tree`, { id });
    this.cache.trees.set(id, m.value);
    return m.value;
  }

  private async peel(id: string, what: string): Promise<string> {
    const hit = this.cache.peeled.get(id);
    if (hit) return hit;
    let cur = id;
    for (let i = 0; i < 16; i++) {
      const m = await this.readMeta(cur);
      if (m.type === 'commit') {
        this.cache.peeled.set(id, cur);
        return cur;
      }
      if (m.type !== 'tag') throw new RefNotFoundError(`${what} names a ${m.type}, not a commit`, { revision: what });
      cur = m.value.object;
    }
    throw new RefNotFoundError(`${what}: tag chain too long`, { revision: what });
  }

  private attrs(id: string): Promise<StoredAttrs | null> {
    const hit = this.cache.attrs.get(id);
    if (hit !== undefined) return Promise.resolve(hit);
    return this.repo.objects.stat(id).then(
      (a) => {
        this.cache.attrs.set(id, a);
        return a;
      },
      (e: unknown) => {
        if (e instanceof ObjectNotFoundError) return null; // a partial clone's promised object: not cached
        throw e;
      },
    );
  }

  private reader(): ObjectReader {
    let r = this.cache.readers.get(this.repo);
    if (!r) {
      r = new ObjectReader(this.repo.objects);
      this.cache.readers.set(this.repo, r);
    }
    return r;
  }

  // ---- refs and revisions ----

  /** The refs (read once per view). */
  snapshot(): Promise<Snapshot> {
    this.snap ??= (async () => {
      const all = new Map<string, string>();
      for (const [name, v] of await this.repo.listRefs()) all.set(name, v.id);
      const head = await this.repo.headBranch();
      const branches: UiRefs['branches'] = [];
      const tags: UiRefs['tags'] = [];
      const labels = new Map<string, string[]>();
      const label = (id: string, l: string) => {
        const a = labels.get(id);
        if (a) a.push(l);
        else labels.set(id, [l]);
      };
      const names = [...all.keys()].sort();
      for (const name of names) {
        if (name.startsWith('refs/heads/')) {
          const short = name.slice('refs/heads/'.length);
          const id = await this.peel(all.get(name)!, short);
          branches.push({ name: short, id });
          label(id, short);
        } else if (name.startsWith('refs/tags/')) {
          const short = name.slice('refs/tags/'.length);
          const id = await this.peel(all.get(name)!, short);
          tags.push({ name: short, id });
          label(id, `tag: ${short}`);
        }
      }
      const headId = head === null ? null : (branches.find((b) => b.name === head)?.id ?? null);
      const tips = [...new Set([...branches.map((b) => b.id), ...tags.map((t) => t.id)])];
      const key = names.map((n) => `${n}=${all.get(n)}`).join('\n');
      if (this.cache.refreshedAt !== null && this.cache.refreshedAt !== key) await this.repo.objects.refresh();
      this.cache.refreshedAt = key;
      return { key, refs: { head, headId, branches, tags }, tips, labels, all };
    })();
    return this.snap;
  }

  /** Branches, tags and HEAD. */
  async refs(): Promise<UiRefs> {
    return (await this.snapshot()).refs;
  }

  /** A revision expression (lib/refs/revparse.ts grammar) to a commit id; RefNotFoundError (404) when unknown. */
  async resolve(rev: string): Promise<string> {
    if (typeof rev !== 'string' || rev.length === 0 || rev.length > 1024)
      throw invalidParameter('rev', 'a revision (branch, tag, commit id, rev~n)', rev);
    const snap = await this.snapshot();
    const refs: RevRefs = {
      resolveHead: async () => snap.refs.headId,
      currentBranch: async () => (snap.refs.head === null ? null : `refs/heads/${snap.refs.head}`),
      readRef: async (name: string) => (name === 'HEAD' ? snap.refs.headId : (snap.all.get(name) ?? null)),
    };
    const meta: RevMeta = {
      read: (id: string) => this.readMeta(id),
      readCommit: async (id: string) => {
        const m = await this.readMeta(id);
        if (m.type !== 'commit') throw new RefNotFoundError(`${id} is not a commit`, { id });
        return m.value;
      },
      // Abbreviated ids: among the commits the refs reach (a served repository cannot list its meta objects).
      resolvePrefix: async (prefix: string) => {
        const p = prefix.toLowerCase();
        const hits = (await this.order(snap.tips, snap.key)).filter((id) => id.startsWith(p));
        if (hits.length === 1) return hits[0];
        throw new RefNotFoundError(
          hits.length ? `ambiguous commit id prefix ${prefix}` : `no commit with id prefix ${prefix}`,
          { revision: prefix },
        );
      },
    };
    return resolveRevision(rev, refs, meta);
  }

  // ---- history ----

  /** Every commit `starts` reach, read into the cache (64 reads in flight). */
  private async reach(starts: readonly string[]): Promise<Set<string>> {
    const seen = new Set<string>();
    let todo = [...starts];
    while (todo.length) {
      const next: string[] = [];
      const missing: string[] = [];
      for (const id of todo) {
        if (seen.has(id)) continue;
        seen.add(id);
        const n = this.cache.commits.get(id);
        if (n) next.push(...n.parents);
        else missing.push(id);
      }
      for (const n of await mapLimit(missing, 64, (id) => this.node(id))) next.push(...n.parents);
      todo = next;
    }
    return seen;
  }

  /** The commits `starts` reach, newest first, each before its parents. */
  private async order(starts: readonly string[], key: string): Promise<string[]> {
    const k = `${key}\n${starts.join(',')}`;
    const hit = this.cache.orders.get(k);
    if (hit) return hit;
    const ids = await this.reach(starts);
    const children = new Map<string, number>();
    for (const id of ids)
      for (const p of this.cache.commits.get(id)!.parents) children.set(p, (children.get(p) ?? 0) + 1);
    const ready = readyHeap();
    for (const id of ids) if (!children.has(id)) ready.push(this.cache.commits.get(id)!);
    const out: string[] = [];
    while (ready.size) {
      const n = ready.pop()!;
      out.push(n.id);
      for (const p of n.parents) {
        const left = children.get(p)! - 1;
        children.set(p, left);
        if (left === 0) ready.push(this.cache.commits.get(p)!);
      }
    }
    this.cache.orders.set(k, out);
    return out;
  }

  private shape(id: string, snap: Snapshot): UiCommit {
    const n = this.cache.commits.get(id)!;
    return {
      id,
      parents: n.parents,
      message: n.message,
      author: n.author,
      time: n.time,
      refs: snap.labels.get(id) ?? [],
      metrics: n.metrics,
    };
  }

  /**
   * One page of history, newest first in topological order, over every branch and tag (or what `rev`
   * reaches). `next` continues after the last commit of this page; a cursor stays valid while refs move
   * as long as its last commit is still in the history.
   */
  async commits(opts: { limit?: number; cursor?: string; rev?: string } = {}): Promise<UiCommitPage> {
    const limit = opts.limit ?? DEFAULT_PAGE;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE)
      throw invalidParameter('limit', `integer from 1 to ${MAX_PAGE}`, opts.limit);
    const cur = opts.cursor === undefined ? null : decodeCursor(opts.cursor);
    const snap = await this.snapshot();
    const starts = opts.rev === undefined ? snap.tips : [await this.resolve(opts.rev)];
    const order = await this.order(starts, snap.key);
    let start = 0;
    if (cur) {
      if (order[cur.offset - 1] === cur.lastId) start = cur.offset;
      else {
        const i = order.indexOf(cur.lastId);
        if (i < 0)
          throw new InvalidArgumentError('the cursor names a commit that is no longer in this history: start again', {
            parameter: 'cursor',
          });
        start = i + 1;
      }
    }
    const page = order.slice(start, start + limit);
    const end = start + page.length;
    return {
      commits: page.map((id) => this.shape(id, snap)),
      next: end < order.length && page.length ? encodeCursor(end, page[page.length - 1]) : null,
    };
  }

  /** One commit with its files and each tensor's stored attributes (no decoding). */
  async commit(rev: string): Promise<UiCommitDetail> {
    const snap = await this.snapshot();
    const id = await this.resolve(rev);
    const n = await this.node(id);
    const tree = await this.tree(n.tree);
    const paths = Object.keys(tree.files).sort();
    const objects = [...new Set(paths.flatMap((p) => tree.files[p].segments.map((s) => s.object)))];
    const attrs = new Map<string, StoredAttrs | null>();
    await mapLimit(objects, 64, async (o) => attrs.set(o, await this.attrs(o)));
    const files = paths.map((path): UiFile => {
      const e = tree.files[path];
      return {
        path,
        format: e.format,
        size: e.size,
        sha256: e.sha256,
        lossy: !!e.lossy,
        tensors: e.tensors.map((t): UiTensor => {
          const seg = e.segments[t.segment];
          const a = attrs.get(seg.object) ?? null;
          return {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
            id: seg.object,
            codec: a?.codec ?? null,
            base: a?.base ? a.base : null,
            chainDepth: a?.base ? Math.max(1, Number(a.extra.depth ?? 1) || 1) : 0,
            cast: a?.codec === 'CAST',
            logicalSize: numel(t.shape) * DTYPES[t.dtype as DType].size,
            storedSize: a?.storedSize ?? null,
          };
        }),
      };
    });
    return { commit: this.shape(id, snap), files };
  }

  // ---- diff ----

  /** The tensor-aware diff of two revisions, every tensor of both sides included (unchanged ones too). */
  async diff(aRev: string, bRev: string): Promise<UiDiff> {
    const a = await this.resolve(aRev);
    const b = await this.resolve(bRev);
    const key = `${a}:${b}`;
    const hit = this.cache.diffs.get(key);
    if (hit) return hit;
    const ta = await this.tree((await this.node(a)).tree);
    const tb = await this.tree((await this.node(b)).tree);
    const changes = await diffSides(this.reader(), ta, { kind: 'tree', tree: tb }, { metrics: true });
    const byPath = new Map(changes.map((c) => [c.path, c]));
    const paths = [...new Set([...Object.keys(ta.files), ...Object.keys(tb.files)])].sort();
    const files = paths.map((path) => {
      const c = byPath.get(path);
      const ea: FileEntry | undefined = ta.files[path];
      const eb: FileEntry | undefined = tb.files[path];
      const changed = new Map((c?.tensors ?? []).map((t) => [t.name, t]));
      const names = [...new Set([...(ea?.tensors ?? []), ...(eb?.tensors ?? [])].map((t) => t.name))].sort();
      const tensors = names.map((name): UiDiffTensor => {
        const t = changed.get(name);
        const side = (eb?.tensors.find((x) => x.name === name) ?? ea?.tensors.find((x) => x.name === name))!;
        const base = { name, dtype: side.dtype, shape: side.shape, ...layerOf(name) };
        if (!t) return { ...base, status: 'unchanged', relL2: 0, fracChanged: 0, maxAbs: 0, nonFinite: 0 };
        const m = t.metrics;
        return {
          ...base,
          status: t.change,
          dtype: t.dtype,
          shape: t.shape,
          relL2: m ? m.relL2 : null,
          fracChanged: m ? m.changedFraction : null,
          maxAbs: m ? m.maxAbs : null,
          nonFinite: m ? m.nonFinite : 0,
          ...(t.oldDtype !== undefined ? { oldDtype: t.oldDtype, oldShape: t.oldShape } : {}),
        };
      });
      const status: UiStatus = c ? c.change : 'unchanged';
      return { path, status, tensors };
    });
    const out: UiDiff = { a, b, files };
    this.cache.diffs.set(key, out);
    return out;
  }

  /** Histogram of b − a for one tensor (same dtype and shape on both sides), `bins` equal bins over its range. */
  async histogram(aRev: string, bRev: string, path: string, name: string, bins = 64): Promise<UiHistogram> {
    if (!Number.isSafeInteger(bins) || bins < 1 || bins > MAX_BINS)
      throw invalidParameter('bins', `integer from 1 to ${MAX_BINS}`, bins);
    if (typeof path !== 'string' || !path) throw invalidParameter('path', 'a file path', path);
    if (typeof name !== 'string' || !name) throw invalidParameter('name', 'a tensor name', name);
    const a = await this.resolve(aRev);
    const b = await this.resolve(bRev);
    const side = async (id: string) => {
      const tree = await this.tree((await this.node(id)).tree);
      const e = Object.prototype.hasOwnProperty.call(tree.files, path) ? tree.files[path] : undefined;
      if (!e) throw new ObjectNotFoundError(`no file ${path} in commit ${id.slice(0, 12)}`, { path, id });
      const t = e.tensors.find((x) => x.name === name);
      if (!t) throw new ObjectNotFoundError(`no tensor ${name} in ${path} at ${id.slice(0, 12)}`, { path, name, id });
      return { e, t };
    };
    const sa = await side(a);
    const sb = await side(b);
    if (sa.t.dtype !== sb.t.dtype || sa.t.shape.join(',') !== sb.t.shape.join(','))
      throw new InvalidArgumentError(
        `${name} changed from ${sa.t.dtype}[${sa.t.shape.join(',')}] to ${sb.t.dtype}[${sb.t.shape.join(',')}]: ` +
          'no element-wise difference',
        { path, name },
      );
    const reader = this.reader();
    const ta = await readFileTensor(reader, sa.e, sa.t);
    const tb = await readFileTensor(reader, sb.e, sb.t);
    const m = await tensorMetrics(ta, tb);
    const total = numel(ta.shape);
    const hist = await diffHistogram(ta, tb, bins);
    return {
      name,
      dtype: ta.dtype,
      shape: [...ta.shape],
      bins: hist,
      changed: Math.round(m.changedFraction * total),
      total,
      nonFinite: m.nonFinite,
      relL2: m.relL2,
      maxAbs: m.maxAbs,
    };
  }

  // ---- storage ----

  /**
   * The objects a tree references (skeletons and segments), read straight from its canonical bytes
   * (verified against the id by the meta store) rather than through the full tree validation: the
   * storage page reads hundreds of trees. A file metadata entry keyed "object" could add a stray string;
   * only ids the store holds are ever counted. The bytes are scanned as latin1 (ids are ASCII and every
   * byte of a multi-byte UTF-8 character is ≥ 0x80, so the matches are those of the UTF-8 text, without
   * the cost of decoding it). Concurrent callers share one read.
   */
  private objectsOf(treeId: string): Promise<string[]> {
    const hit = this.cache.treeObjects.get(treeId);
    if (hit) return hit;
    const p = this.repo.meta.get(treeId).then((bytes) => {
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const ids = new Set<string>();
      for (const m of buf.toString('latin1').matchAll(TREE_OBJECT_RE)) {
        // A copy of the id: m[1] is a slice of the text and would keep the whole tree's text alive in the cache.
        const end = m.index + m[0].length - 1;
        ids.add(buf.toString('latin1', end - m[1].length, end));
      }
      return [...ids];
    });
    this.cache.treeObjects.set(treeId, p);
    p.catch(() => this.cache.treeObjects.delete(treeId)); // a failed read is not remembered
    return p;
  }

  /**
   * Where the bytes go: totals, by codec and chain depth (every object's stored attributes), by file (the
   * HEAD commit's files, or every branch tip's when HEAD names none) and by commit (stored bytes of the
   * objects a commit references and none of its parents does, for the newest STORAGE_COMMITS commits).
   */
  async storage(): Promise<UiStorage> {
    const snap = await this.snapshot();
    if (this.cache.storage?.key === snap.key) return this.cache.storage.value;
    // Every object once, from the store's index (attributes only): its position in `sizes` by id.
    const index = new Map<string, number>();
    const sizes: number[] = [];
    const codecs = new Map<string, { objects: number; logical: number; stored: number }>();
    const depths = new Map<number, number>();
    let logical = 0;
    let storedTotal = 0;
    let n = 0;
    for await (const a of this.repo.objects.list()) {
      n++;
      index.set(a.id, sizes.length);
      sizes.push(a.storedSize);
      logical += a.rawSize;
      storedTotal += a.storedSize;
      const c = codecs.get(a.codec) ?? { objects: 0, logical: 0, stored: 0 };
      c.objects++;
      c.logical += a.rawSize;
      c.stored += a.storedSize;
      codecs.set(a.codec, c);
      const d = a.base ? Math.max(1, Number(a.extra.depth ?? 1) || 1) : 0;
      depths.set(d, (depths.get(d) ?? 0) + 1);
      if (n % 4096 === 0) await new Promise<void>((r) => setImmediate(r));
    }
    const sizeOf = (ids: Iterable<string>) => {
      let s = 0;
      for (const id of ids) {
        const i = index.get(id);
        if (i !== undefined) s += sizes[i];
      }
      return s;
    };

    const tips = snap.refs.headId ? [snap.refs.headId] : snap.refs.branches.map((b) => b.id);
    const byFile: UiStorage['byFile'] = [];
    const seenPaths = new Set<string>();
    for (const tip of tips) {
      const tree = await this.tree((await this.node(tip)).tree);
      for (const [path, e] of Object.entries(tree.files)) {
        if (seenPaths.has(path)) continue;
        seenPaths.add(path);
        byFile.push({
          path,
          logical: e.size,
          stored: sizeOf(new Set([e.skeleton, ...e.segments.map((s) => s.object)])),
        });
      }
    }
    byFile.sort((x, y) => y.stored - x.stored || (x.path < y.path ? -1 : 1));

    // By commit: each of the newest commits needs its own tree and its parents' only. Consecutive commits
    // share trees (a commit's tree is its child's parent tree), so each distinct tree is read once, then
    // every commit's new objects come from marking its parents' objects (by position, no set per commit).
    const recent = (await this.order(snap.tips, snap.key)).slice(0, STORAGE_COMMITS);
    const nodes = recent.map((id) => this.cache.commits.get(id)!);
    const parentTrees = await mapLimit(nodes, 8, (c) => mapLimit(c.parents, 2, async (p) => (await this.node(p)).tree));
    const treeIds = [...new Set([...nodes.map((c) => c.tree), ...parentTrees.flat()])];
    const objectsByTree = new Map<string, string[]>();
    await mapLimit(treeIds, 8, async (t) => objectsByTree.set(t, await this.objectsOf(t)));
    const mark = new Int32Array(sizes.length);
    const byCommit = nodes.map((c, k) => {
      const stamp = k + 1;
      for (const t of parentTrees[k])
        for (const o of objectsByTree.get(t)!) {
          const i = index.get(o);
          if (i !== undefined) mark[i] = stamp;
        }
      let newStored = 0;
      for (const o of objectsByTree.get(c.tree)!) {
        const i = index.get(o);
        if (i !== undefined && mark[i] !== stamp) {
          newStored += sizes[i];
          mark[i] = stamp;
        }
      }
      return { id: c.id, message: c.message, newStored };
    });

    const value: UiStorage = {
      logical,
      stored: storedTotal,
      objects: n,
      byCodec: [...codecs]
        .map(([codec, c]) => ({ codec, ...c }))
        .sort((x, y) => y.stored - x.stored || (x.codec < y.codec ? -1 : 1)),
      byFile,
      byCommit,
      chainDepths: [...depths].sort((x, y) => x[0] - y[0]).map(([depth, objects]) => ({ depth, objects })),
    };
    this.cache.storage = { key: snap.key, value };
    return value;
  }

  // ---- experiments ----

  /** The ExperimentTracker's runs (branches exp/<run>), each metric as (step, value) pairs. */
  async experiments(): Promise<{ runs: UiRun[] }> {
    const snap = await this.snapshot();
    const prefix = `refs/heads/${EXPERIMENT_PREFIX}`;
    const runs: UiRun[] = [];
    for (const [ref, tip] of [...snap.all].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
      if (!ref.startsWith(prefix)) continue;
      const d = await readRun(ref.slice(prefix.length), tip, async (id) => {
        const m = await this.readMeta(id);
        if (m.type !== 'commit') throw new RefNotFoundError(`${id} is not a commit`, { id });
        return m.value;
      });
      const metrics: UiRun['metrics'] = {};
      for (const p of d.series) for (const [k, v] of Object.entries(p.metrics)) (metrics[k] ??= []).push([p.step, v]);
      runs.push({ name: d.name, status: d.status, id: d.id, params: d.params, metrics });
    }
    return { runs };
  }
}

/** Elements converted to f64 per slice of the histogram (the event loop gets a turn between slices). */
const SLICE = 1 << 16;

/**
 * Histogram of b − a over the finite differences, `bins` equal bins from the smallest to the largest
 * (a range of width 0 is widened to ±0.5 around its value). Two passes over f64 slices of both tensors.
 */
export async function diffHistogram(
  a: Tensor,
  b: Tensor,
  bins: number,
): Promise<{ edges: number[]; counts: number[] }> {
  const dt = DTYPES[a.dtype];
  const f64 = DTYPES.F64.code;
  const n = numel(a.shape);
  const big = a.data.byteLength >= 1 << 20;
  const bufX = new Float64Array(Math.min(n, SLICE));
  const bufY = new Float64Array(Math.min(n, SLICE));
  const slices = async (fn: (x: Float64Array, y: Float64Array) => void) => {
    for (let i = 0; i < n; i += SLICE) {
      const len = Math.min(n, i + SLICE) - i;
      const from = i * dt.size;
      const to = from + len * dt.size;
      const x = bufX.subarray(0, len);
      const y = bufY.subarray(0, len);
      callSync(() =>
        native.convertDType(a.data.subarray(from, to), dt.code, f64, new Uint8Array(x.buffer, 0, len * 8)),
      );
      callSync(() =>
        native.convertDType(b.data.subarray(from, to), dt.code, f64, new Uint8Array(y.buffer, 0, len * 8)),
      );
      fn(x, y);
      if (big) await new Promise<void>((r) => setImmediate(r));
    }
  };
  let lo = Infinity;
  let hi = -Infinity;
  await slices((x, y) => {
    for (let k = 0; k < x.length; k++) {
      const d = y[k] - x[k];
      if (!Number.isFinite(d)) continue;
      if (d < lo) lo = d;
      if (d > hi) hi = d;
    }
  });
  if (lo === Infinity) {
    lo = 0;
    hi = 0;
  }
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const counts = new Array<number>(bins).fill(0);
  await slices((x, y) => {
    for (let k = 0; k < x.length; k++) {
      const d = y[k] - x[k];
      if (!Number.isFinite(d)) continue;
      counts[Math.min(bins - 1, Math.floor((d - lo) / width))]++;
    }
  });
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + i * width));
  return { edges, counts };
}
