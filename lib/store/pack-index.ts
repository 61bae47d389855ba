/**
 * The per-pack index file `pack-<hex>.idx`: a JSON document listing every
 * object of one pack with its attributes and data location, so opening a
 * store reads small files instead of walking HDF5 metadata. It is a cache:
 * the pack's own attributes are the truth and `rebuildIndex()` regenerates it.
 * Format (docs/store.md):
 *
 *   { "format": "coral-pack-index-1", "pack": "pack-<hex>.h5", "packSize": <bytes>,
 *     "objects": [ { "id", "dataset", "size", "offset", "checksum", "codec", "dtype",
 *                    "shape", "base", "rawSize", "extra" }, ... ] }   // sorted by id
 *
 * An index whose `pack` or `packSize` disagrees with the pack file is ignored.
 */
import type { PackEntry } from '../../binding';

export const INDEX_FORMAT = 'coral-pack-index-1';

export interface PackIndexFile {
  format: typeof INDEX_FORMAT;
  pack: string;
  packSize: number;
  objects: Array<PackEntry & { dataset: string }>;
}

export function indexNameFor(pack: string): string {
  return pack.replace(/\.h5$/, '.idx');
}

/** Serialises an index; one object per line so diffs and greps stay readable. */
export function encodeIndex(pack: string, packSize: number, entries: readonly PackEntry[]): string {
  const sorted = [...entries].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const lines = sorted.map((e) =>
    JSON.stringify({
      id: e.id, dataset: `/objects/${e.id}`, size: e.size, offset: e.offset, checksum: e.checksum, codec: e.codec,
      dtype: e.dtype, shape: e.shape, base: e.base, rawSize: e.rawSize, extra: e.extra,
    }),
  );
  return `{"format":"${INDEX_FORMAT}","pack":${JSON.stringify(pack)},"packSize":${packSize},"objects":[\n${lines.join(',\n')}\n]}\n`;
}

function isStr(v: unknown): v is string {
  return typeof v === 'string';
}
function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses an index and checks it belongs to `pack` of `packSize` bytes (any size
 * when `packSize` is null). Returns null for anything unusable (wrong pack,
 * stale size, malformed).
 */
export function parseIndex(text: string, pack: string, packSize: number | null): PackEntry[] | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return null;
  }
  const d = doc as Partial<PackIndexFile> | null;
  if (!d || d.format !== INDEX_FORMAT || d.pack !== pack || (packSize !== null && d.packSize !== packSize) || !Array.isArray(d.objects)) return null;
  const out: PackEntry[] = [];
  for (const o of d.objects as unknown[]) {
    const e = o as Record<string, unknown>;
    if (!e || !isStr(e.id) || !isCount(e.size) || !(e.offset === null || isCount(e.offset)) || !isStr(e.checksum) ||
        !isStr(e.codec) || !isStr(e.dtype) || !Array.isArray(e.shape) || !e.shape.every(isCount) || !isStr(e.base) ||
        !isCount(e.rawSize) || typeof e.extra !== 'object' || e.extra === null ||
        !Object.values(e.extra).every(isStr))
      return null;
    out.push({
      id: e.id, size: e.size, offset: e.offset as number | null, checksum: e.checksum, codec: e.codec, dtype: e.dtype,
      shape: e.shape as number[], base: e.base, rawSize: e.rawSize, extra: { ...(e.extra as Record<string, string>) },
    });
  }
  return out;
}

/** True when two entry lists describe the same objects (order-insensitive). */
export function sameEntries(a: readonly PackEntry[], b: readonly PackEntry[]): boolean {
  if (a.length !== b.length) return false;
  const key = (e: PackEntry) =>
    JSON.stringify([e.id, e.size, e.offset, e.checksum, e.codec, e.dtype, e.shape, e.base, e.rawSize,
      Object.entries(e.extra).sort()]);
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.every((k, i) => k === kb[i]);
}
