/**
 * The per-pack index file `pack-<hex>.idx`: every object of one pack with its
 * attributes and data location, so opening a store reads small files instead
 * of walking HDF5 metadata. It is a cache: the pack itself is the truth and
 * `rebuildIndex()` regenerates it byte for byte. Formats (docs/store.md):
 *
 *   coral-pack-index-2 (written): the 4 bytes "cpi2", then a Brotli stream of
 *     { "format": "coral-pack-index-2", "pack": "pack-<hex>.h5", "packSize": <bytes>,
 *       "sum": <sha256 of the objects array text, 32 hex; optional, checked when present>,
 *       "objects": [ [id, dataset, size, offset, checksum, codec, dtype, shape, base,
 *                     rawSize, extra], ... ] }                      // sorted by id
 *     (`tail -c +5 pack-X.idx | brotli -d` shows the JSON.)
 *   coral-pack-index-1 (still read): plain JSON, the same fields as keyed objects.
 *
 * An index whose `pack` or `packSize` disagrees with the pack file is ignored.
 */
import * as crypto from 'node:crypto';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import type { PackEntry } from '../../binding';
import { brotliTextOptions } from '../util/brotli';

export const INDEX_FORMAT = 'coral-pack-index-2';
export const INDEX_FORMAT_V1 = 'coral-pack-index-1';
/** First bytes of a coral-pack-index-2 file (a v1 file starts with "{"). */
export const INDEX_MAGIC = Buffer.from('cpi2', 'latin1');
/** Decoded indexes larger than this are refused (a damaged or hostile file must not exhaust memory). */
const MAX_DECODED = 256 << 20;

const brotli = promisify(zlib.brotliCompress);
/**
 * Indexes of more JSON than this are compressed at brotli quality 4, not 9. Their text is mostly hex
 * ids and checksums, which no quality compresses further: on the 3 MB index of 16384 objects, quality 9
 * took 360 ms and 44 MiB of memory for 1.11 MB, quality 4 65 ms and 11 MiB for 1.05 MB.
 */
const LARGE_INDEX_BYTES = 256 << 10;
/** Indexes up to this many bytes of JSON (~100 objects, about 1 ms) are compressed on the calling thread. */
const SYNC_INDEX_BYTES = 16 * 1024;

/** True for the dataset of a small object: "/small/data" (coral-pack-2) or a part "/small/data<k>" (coral-pack-3). */
export function isSmallDataset(dataset: string): boolean {
  return /^\/small\/data(0|[1-9][0-9]{0,8})?$/.test(dataset);
}

export function indexNameFor(pack: string): string {
  return pack.replace(/\.h5$/, '.idx');
}

function sortById(entries: readonly PackEntry[]): PackEntry[] {
  return [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Sorted extra attributes as a plain object with keys in name order (deterministic JSON). */
function sortedExtra(extra: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(extra).sort()) out[k] = extra[k];
  return out;
}

/** One entry as a line of the v2 index (extra keys sorted, so equal entries give equal text). */
function entryRow(e: PackEntry): string {
  return JSON.stringify([
    e.id,
    e.dataset,
    e.size,
    e.offset,
    e.checksum,
    e.codec,
    e.dtype,
    e.shape,
    e.base,
    e.rawSize,
    sortedExtra(e.extra),
  ]);
}

/** The JSON text of a v2 index (before compression); one object per line. */
export function indexJson(pack: string, packSize: number, entries: readonly PackEntry[]): string {
  const lines = sortById(entries).map(entryRow);
  const objects = `[\n${lines.join(',\n')}\n]`;
  return `{"format":"${INDEX_FORMAT}","pack":${JSON.stringify(pack)},"packSize":${packSize},"sum":"${objectsSum(objects)}","objects":${objects}}\n`;
}

/**
 * Checksum of the `objects` array text of a v2 index (sha256, 32 hex digits).
 * Brotli has no checksum of its own, and one flipped bit in a back-reference
 * can change every "raw" of the decoded text into "rau" and still parse: with
 * the sum such an index is rejected (and the pack listed instead).
 */
function objectsSum(objectsText: string): string {
  return crypto.createHash('sha256').update(objectsText, 'utf8').digest('hex').slice(0, 32);
}

const OBJECTS_KEY = ',"objects":';

/** False when the text carries a `sum` that does not match its objects array. Indexes without one pass. */
function sumMatches(text: string, sum: unknown): boolean {
  if (sum === undefined) return true; // written before the sum existed
  if (typeof sum !== 'string') return false;
  const at = text.indexOf(OBJECTS_KEY);
  const end = text.lastIndexOf('}');
  return at >= 0 && end > at && objectsSum(text.slice(at + OBJECTS_KEY.length, end)) === sum;
}

/**
 * Serialises an index (coral-pack-index-2). Deterministic: the same entries
 * give the same bytes. Compression runs on the libuv pool, except for a small
 * index (a commit's pack: ~0.1 ms with the window fitted to it), which is
 * compressed here without a trip through the pool.
 */
export async function encodeIndex(pack: string, packSize: number, entries: readonly PackEntry[]): Promise<Buffer> {
  const json = Buffer.from(indexJson(pack, packSize, entries), 'utf8');
  const opts = brotliTextOptions(json.length, json.length > LARGE_INDEX_BYTES ? 4 : 9);
  const z = json.length <= SYNC_INDEX_BYTES ? zlib.brotliCompressSync(json, opts) : await brotli(json, opts);
  return Buffer.concat([INDEX_MAGIC, z]);
}

/** The legacy coral-pack-index-1 text (plain JSON); kept for tests and tools that read old stores. */
export function encodeIndexV1(pack: string, packSize: number, entries: readonly PackEntry[]): string {
  const lines = sortById(entries).map((e) =>
    JSON.stringify({
      id: e.id,
      dataset: e.dataset,
      size: e.size,
      offset: e.offset,
      checksum: e.checksum,
      codec: e.codec,
      dtype: e.dtype,
      shape: e.shape,
      base: e.base,
      rawSize: e.rawSize,
      extra: e.extra,
    }),
  );
  return `{"format":"${INDEX_FORMAT_V1}","pack":${JSON.stringify(pack)},"packSize":${packSize},"objects":[\n${lines.join(',\n')}\n]}\n`;
}

function isStr(v: unknown): v is string {
  return typeof v === 'string';
}
function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks one entry's fields; null when malformed. */
function entryOf(
  id: unknown,
  dataset: unknown,
  size: unknown,
  offset: unknown,
  checksum: unknown,
  codec: unknown,
  dtype: unknown,
  shape: unknown,
  base: unknown,
  rawSize: unknown,
  extra: unknown,
): PackEntry | null {
  if (
    !isStr(id) ||
    !isCount(size) ||
    !(offset === null || isCount(offset)) ||
    !isStr(checksum) ||
    !isStr(codec) ||
    !isStr(dtype) ||
    !Array.isArray(shape) ||
    !shape.every(isCount) ||
    !isStr(base) ||
    !isCount(rawSize) ||
    typeof extra !== 'object' ||
    extra === null ||
    Array.isArray(extra) ||
    !Object.values(extra).every(isStr)
  )
    return null;
  // v1 indexes of coral-pack-1 packs name "/objects/<id>"; anything else must be a known dataset.
  const ds = dataset === undefined ? `/objects/${id}` : dataset;
  if (typeof ds !== 'string' || (ds !== `/objects/${id}` && !isSmallDataset(ds))) return null;
  return {
    id,
    dataset: ds,
    size,
    offset,
    checksum,
    codec,
    dtype,
    shape: shape.slice(),
    base,
    rawSize,
    extra: { ...(extra as Record<string, string>) },
  };
}

/** The JSON text inside an index file (either version), or null when it cannot be decoded. */
export function indexText(data: Uint8Array): string | null {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length >= INDEX_MAGIC.length && b.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) {
    try {
      return zlib
        .brotliDecompressSync(b.subarray(INDEX_MAGIC.length), { maxOutputLength: MAX_DECODED })
        .toString('utf8');
    } catch {
      return null;
    }
  }
  return b.toString('utf8');
}

/**
 * Parses an index (coral-pack-index-2, or the legacy JSON coral-pack-index-1)
 * and checks it belongs to `pack` of `packSize` bytes (any size when
 * `packSize` is null). Returns null for anything unusable (wrong pack, stale
 * size, malformed, undecodable).
 */
export function parseIndex(data: Uint8Array | string, pack: string, packSize: number | null): PackEntry[] | null {
  const text = typeof data === 'string' ? data : indexText(data);
  if (text === null) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  const d = doc as { format?: unknown; pack?: unknown; packSize?: unknown; sum?: unknown; objects?: unknown } | null;
  if (
    !d ||
    typeof d !== 'object' ||
    (d.format !== INDEX_FORMAT && d.format !== INDEX_FORMAT_V1) ||
    d.pack !== pack ||
    (packSize !== null && d.packSize !== packSize) ||
    !Array.isArray(d.objects) ||
    !sumMatches(text, d.sum)
  )
    return null;
  const out: PackEntry[] = [];
  const seen = new Set<string>();
  for (const o of d.objects as unknown[]) {
    let e: PackEntry | null;
    if (d.format === INDEX_FORMAT) {
      if (!Array.isArray(o) || o.length !== 11) return null;
      e = entryOf(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10]);
    } else {
      const r = o as Record<string, unknown> | null;
      if (!r || typeof r !== 'object') return null;
      e = entryOf(r.id, r.dataset, r.size, r.offset, r.checksum, r.codec, r.dtype, r.shape, r.base, r.rawSize, r.extra);
    }
    if (!e || seen.has(e.id)) return null;
    seen.add(e.id);
    out.push(e);
  }
  return out;
}

/** True when two entry lists describe the same objects (order-insensitive). */
export function sameEntries(a: readonly PackEntry[], b: readonly PackEntry[]): boolean {
  if (a.length !== b.length) return false;
  const ka = a.map(entryRow).sort();
  const kb = b.map(entryRow).sort();
  return ka.every((k, i) => k === kb[i]);
}
