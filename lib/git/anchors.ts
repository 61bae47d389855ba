/**
 * Which delta base a group's next version is stored against: its *anchor*
 * (the whole value its update chain starts from) or its previous version.
 *
 * Encoding an update needs its base decoded. The previous version decodes
 * through its whole chain, one entropy-decode pass per link (~0.2 s of CPU per
 * link for 256 MiB), so with every version stored on the one before it the
 * time of a `git add` grows with the chain it extends. The anchor is one
 * decode. An update on the anchor spans several steps, which for dense
 * fine-tune steps costs little: bits per element grow with the log of the
 * update's size (+9% after 8 steps of bench/git.ts's history). It costs a lot
 * when the step itself is small in another way: a sparse step (a few rows
 * rewritten) or a low-rank one (a LoRA merge) after dense ones is only sparse
 * or low-rank against the previous version.
 *
 * So the choice is measured (chooseBase): on one or two probe chunks, the
 * previous version is rebuilt chunk by chunk through the links above the
 * anchor (kernels DecodeChunkAt: a chunk per link, not the whole chain), and
 * the new version's piece is encoded against both. The previous version is
 * taken, and decoded through its chain, when its update is clearly smaller
 * (PREVIOUS_WINS) or the change from it is low-rank (lowrank.ts takes it from
 * there); otherwise the anchor. Both are exact: the choice only moves size
 * and time.
 *
 * After `maxUpdates` updates (coral.maxChainLength) since the last whole
 * value, the group is stored whole again (anchorFor returns null): it bounds
 * both how far an update on the anchor spans and how deep a chain of updates
 * on previous versions grows.
 */
import { CHUNK_DECODABLE, decode, decodeChunk, encodeSync, inspectObject } from '../codec';
import { recycleLarge } from '../native';
import type { ObjectReader } from '../odb/objects';
import type { ObjectStore, StoredAttrs } from '../store/object-store';
import { DTYPES } from '../tensor/dtype';
import { tensor, type Tensor } from '../tensor/tensor';
import { lowRankChange } from './lowrank';

/**
 * Object attribute of a group's update: which update since the last whole value it is (1 = the
 * first). An object without it (stored before anchors, or fetched through git-lfs, which carries no
 * attributes) counts as its chain depth: one update per link, as consecutive updates were stored.
 */
export const UPDATES_ATTR = 'updates';

/** The previous version's update must be at most this fraction of the anchor's to be chosen. */
const PREVIOUS_WINS = 0.75;
/** Elements of each probe chunk encoded against both bases. */
const PROBE_ELEMS = 1 << 14;

/** Which update since the last whole value a stored object is: 0 for a whole value. */
function updatesOf(a: StoredAttrs): number {
  if (!a.base) return 0;
  const n = Number(a.extra?.[UPDATES_ATTR] ?? a.extra?.depth ?? 1);
  return Number.isInteger(n) && n > 0 ? n : 1;
}

export interface Anchor {
  /** The anchor's id (the last of `chain`). */
  id: string;
  /** `id`'s chain from the previous version down to the anchor, both included. */
  chain: string[];
  /** Which update since the last whole value the new version is. */
  updates: number;
}

/**
 * The anchor of a group's previous version `prev`: the lowest link of its chain that still has its
 * dtype and shape (the whole value the chain starts from; a CAST or ROWS link's base of another dtype
 * or shape ends the walk). Null when the new version would be more than `maxUpdates` updates since
 * the last whole value: it is then stored whole. Reads attributes only.
 */
export async function anchorFor(
  store: Pick<ObjectStore, 'stat'>,
  prev: string,
  maxUpdates: number,
): Promise<Anchor | null> {
  const p = await store.stat(prev);
  const updates = updatesOf(p) + 1;
  if (updates > maxUpdates) return null;
  const shape = p.shape.join(',');
  const chain = [prev];
  let cur = p;
  while (cur.base && chain.length < 10_000) {
    const b = await store.stat(cur.base).catch(() => null);
    if (!b || b.dtype !== p.dtype || b.shape.join(',') !== shape) break;
    chain.push(b.id);
    cur = b;
  }
  return { id: chain[chain.length - 1], chain, updates };
}

/**
 * The previous version's elements of chunk `k`, rebuilt from the anchor's (`a`, decoded) through the
 * links above it (`links`, bottom-up, all chunked alike).
 */
function previousChunk(a: Tensor, links: Uint8Array[], k: number, chunkElems: number, esize: number): Uint8Array {
  const from = k * chunkElems * esize;
  let cur: Uint8Array = a.data.subarray(from, Math.min(a.data.byteLength, from + chunkElems * esize));
  for (const l of links) cur = decodeChunk(l, k, cur);
  return cur;
}

/** Encoded size of `piece` against `base` (same dtype and length), on this thread. */
function deltaBytes(dtype: Tensor['dtype'], piece: Uint8Array, base: Uint8Array, esize: number): number {
  const shape = [piece.byteLength / esize];
  return encodeSync(tensor(dtype, shape, piece), { base: { tensor: tensor(dtype, shape, base) }, threads: 1 }).bytes
    .byteLength;
}

/**
 * The base for `t`, whose previous version's chain down to its anchor is `anchor.chain`: the anchor or
 * the previous version (see the file comment), decoded. Falls back to the previous version (decoding
 * its chain, as every version was once stored) when a link cannot be probed chunk by chunk.
 */
export async function chooseBase(
  reader: ObjectReader,
  store: Pick<ObjectStore, 'get'>,
  t: Tensor,
  anchor: Anchor,
): Promise<{ id: string; tensor: Tensor }> {
  const prev = anchor.chain[0];
  // The links above the anchor, bottom-up: the previous version is the last. Their stored bytes are
  // read (one after another) while the anchor is read and decoded.
  const ids = anchor.chain.slice(0, -1).reverse();
  const reading = (async () => {
    const out: Uint8Array[] = [];
    for (const id of ids) out.push((await store.get(id)).bytes);
    return out;
  })();
  reading.catch(() => undefined);
  const a = await reader.tensor(anchor.id, { cacheBases: false });
  const links = await reading;
  if (anchor.chain.length === 1) return { id: prev, tensor: a };
  const rebuild = async (): Promise<{ id: string; tensor: Tensor }> => {
    let cur = a;
    let curId = anchor.id;
    for (let i = 0; i < links.length; i++) {
      const next = await decode(links[i], { tensor: cur, id: curId });
      reader.release(cur);
      recycleLarge(links[i]);
      cur = next;
      curId = ids[i];
    }
    return { id: prev, tensor: cur };
  };
  const heads = links.map((l) => inspectObject(l));
  const chunkElems = heads[0].chunkElems;
  const esize = DTYPES[t.dtype].size;
  const numel = t.data.byteLength / esize;
  if (
    a.dtype !== t.dtype ||
    a.data.byteLength !== t.data.byteLength ||
    !chunkElems ||
    heads.some((h) => !CHUNK_DECODABLE.has(h.codec) || h.chunkElems !== chunkElems || h.nbytes !== t.data.byteLength)
  )
    return rebuild();
  const nchunks = Math.ceil(numel / chunkElems);
  const probes = nchunks >= 3 ? [Math.floor(nchunks / 3), Math.floor((2 * nchunks) / 3)] : [0];
  let onAnchor = 0;
  let onPrevious = 0;
  let lowRank = false;
  for (const k of probes) {
    const from = k * chunkElems * esize;
    const p = previousChunk(a, links, k, chunkElems, esize);
    const piece = t.data.subarray(from, from + Math.min(p.byteLength, PROBE_ELEMS * esize));
    onAnchor += deltaBytes(t.dtype, piece, a.data.subarray(from, from + piece.byteLength), esize);
    onPrevious += deltaBytes(t.dtype, piece, p.subarray(0, piece.byteLength), esize);
    // A low-rank change shows on whole rows: the chunk's full rows as a matrix.
    if (t.shape.length === 2 && !lowRank) {
      const cols = t.shape[1];
      const s = k * chunkElems;
      const r0 = Math.ceil(s / cols);
      const rows = Math.floor((s + p.byteLength / esize) / cols) - r0;
      if (rows > 0) {
        const off = (r0 * cols - s) * esize;
        const len = rows * cols * esize;
        lowRank = lowRankChange(
          tensor(t.dtype, [rows, cols], p.subarray(off, off + len)),
          tensor(t.dtype, [rows, cols], t.data.subarray(from + off, from + off + len)),
        );
      }
    }
  }
  if (lowRank || onPrevious <= PREVIOUS_WINS * onAnchor) return rebuild();
  for (const l of links) recycleLarge(l);
  return { id: anchor.id, tensor: a };
}
