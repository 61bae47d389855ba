/**
 * Trees: the snapshot of a working tree. Each path maps to a FileEntry that
 * describes the checkpoint file as a skeleton object (every byte outside the
 * segments) plus one object per bulk-data segment, and the logical tensors
 * that view those segments (see docs/architecture.md, "Checkpoint layouts").
 * Stored as canonical JSON with `"type":"tree","v":1`.
 *
 * Validation makes a decoded tree safe to check out: paths are relative posix
 * paths without '.', '..', empty components, backslashes, control characters or
 * a `.coral` component, and no path is both a file and a directory; segments
 * are sorted, in range and non-overlapping; every tensor stays inside its
 * segment.
 *
 * @example
 * const t: Tree = { files: { 'model.safetensors': entry } };
 * decodeTree(encodeTree(t)) // deep-equals t
 */
import { CorruptObjectError, InvalidArgumentError } from '../errors';
import { DTYPES, isDType } from '../tensor/dtype';
import { canonicalJson, parseCanonical } from './canonical';
import { arr, fail, header, int, objectId, onlyKeys, plainObject, str, uint, type ErrClass } from './validate';

export interface SegmentEntry {
  /** Byte offset of the segment in the file. */
  offset: number;
  /** Byte length; equals numel(shape) * dtype size. */
  length: number;
  /** Store object id holding the segment's (encoded) tensor. */
  object: string;
  dtype: string;
  shape: number[];
}

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Index into FileEntry.segments. */
  segment: number;
  /** Offset of element 0 within the segment, in elements of this tensor's dtype. */
  elementOffset: number;
  /** Element strides, or null for contiguous row-major. */
  strides: number[] | null;
}

export interface FileEntry {
  /** Layout format: 'safetensors' | 'pytorch' | 'npy' | 'npz' | 'raw' | 'symlink' (skeleton = link target) | … */
  format: string;
  /** File size in bytes. */
  size: number;
  /** sha256 of the whole file (64 hex); checkout verifies it. */
  sha256: string;
  /** Store object id of the skeleton. */
  skeleton: string;
  segments: SegmentEntry[];
  tensors: TensorEntry[];
  metadata?: Record<string, string>;
  /**
   * Set when some segments were stored with a lossy codec (`coral add --lossy`,
   * the checkpoint manager's lossy tier). Checkout writes the decoded tensors
   * into the original layout, so the file is not the one that was added:
   * `sha256` is that of the decoded file (what checkout writes and verifies),
   * and `lossy.sourceSha256` that of the bytes that were added.
   */
  lossy?: LossyMark;
}

/** What a lossy file entry records: the codec and the worst measured error over its segments. */
export interface LossyMark {
  codec: string;
  /** Max |decoded - original| over every element of the lossy segments. */
  maxAbsError: number;
  /** The largest per-segment ||decoded - original||_2 / ||original||_2. */
  relL2Error: number;
  /** Number of segments stored lossy (the others are exact). */
  segments: number;
  /** sha256 of the original file the lossy entry was made from. */
  sourceSha256: string;
}

export interface Tree {
  /** Path (posix, relative) -> file. A null-prototype table (see `fileTable`). */
  files: Record<string, FileEntry>;
}

/**
 * A name-keyed table without a prototype: `t['constructor']` is undefined
 * unless a file has that name, and `t['__proto__'] = v` stores an ordinary
 * entry. Use it for every table keyed by a path or tensor name.
 */
export function fileTable<V>(entries?: Iterable<readonly [string, V]>): Record<string, V> {
  const t = Object.create(null) as Record<string, V>;
  if (entries) for (const [k, v] of entries) t[k] = v;
  return t;
}

/** Longest path accepted. */
export const MAX_PATH_LENGTH = 4096;

/** Why `p` is not an acceptable tree path, or null. */
export function treePathProblem(p: unknown): string | null {
  if (typeof p !== 'string') return 'not a string';
  if (p.length === 0) return 'is empty';
  if (p.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  if (p.startsWith('/')) return 'is absolute';
  if (p.includes('\\')) return 'contains a backslash (paths are posix-style)';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(p)) return 'contains a control character';
  for (const c of p.split('/')) {
    if (c === '') return 'has an empty component';
    if (c === '.' || c === '..') return `has a '${c}' component`;
    if (c.toLowerCase() === '.coral') return "has a '.coral' component";
  }
  return null;
}

/** Throws InvalidArgumentError unless `p` is a valid tree path. */
export function checkTreePath(p: unknown): string {
  const problem = treePathProblem(p);
  if (problem) throw new InvalidArgumentError(`Invalid path ${JSON.stringify(p)}: ${problem}`, { path: p });
  return p as string;
}

function shape(Err: ErrClass, x: unknown, where: string): number[] {
  const a = arr(Err, x, where);
  if (a.length > 64) throw fail(Err, where, 'more than 64 dimensions');
  return a.map((d, i) => uint(Err, d, `${where}[${i}]`));
}

function dtype(Err: ErrClass, x: unknown, where: string): string {
  if (!isDType(x)) throw fail(Err, where, `unknown dtype ${JSON.stringify(x)}`);
  return x;
}

function numelBig(s: number[]): bigint {
  let n = 1n;
  for (const d of s) n *= BigInt(d);
  return n;
}

function checkSegment(Err: ErrClass, x: unknown, where: string): SegmentEntry {
  const o = plainObject(Err, x, where);
  onlyKeys(Err, o, ['offset', 'length', 'object', 'dtype', 'shape'], where);
  const seg: SegmentEntry = {
    offset: uint(Err, o.offset, `${where}.offset`),
    length: uint(Err, o.length, `${where}.length`),
    object: objectId(Err, o.object, `${where}.object`),
    dtype: dtype(Err, o.dtype, `${where}.dtype`),
    shape: shape(Err, o.shape, `${where}.shape`),
  };
  const want = numelBig(seg.shape) * BigInt(DTYPES[seg.dtype as keyof typeof DTYPES].size);
  if (want !== BigInt(seg.length))
    throw fail(Err, where, `length ${seg.length} does not match ${seg.dtype}[${seg.shape.join(',')}] (${want} bytes)`);
  return seg;
}

function checkTensor(Err: ErrClass, x: unknown, where: string, segs: SegmentEntry[]): TensorEntry {
  const o = plainObject(Err, x, where);
  onlyKeys(Err, o, ['name', 'dtype', 'shape', 'segment', 'elementOffset', 'strides'], where);
  const t: TensorEntry = {
    name: str(Err, o.name, `${where}.name`),
    dtype: dtype(Err, o.dtype, `${where}.dtype`),
    shape: shape(Err, o.shape, `${where}.shape`),
    segment: uint(Err, o.segment, `${where}.segment`),
    elementOffset: uint(Err, o.elementOffset, `${where}.elementOffset`),
    strides:
      o.strides === null
        ? null
        : arr(Err, o.strides, `${where}.strides`).map((s, i) => int(Err, s, `${where}.strides[${i}]`)),
  };
  if (t.segment >= segs.length)
    throw fail(Err, `${where}.segment`, `index ${t.segment} out of range (file has ${segs.length} segments)`);
  if (t.strides && t.strides.length !== t.shape.length)
    throw fail(Err, `${where}.strides`, `has ${t.strides.length} entries for a ${t.shape.length}-d shape`);
  // Every addressed element must lie inside the segment.
  const esize = BigInt(DTYPES[t.dtype as keyof typeof DTYPES].size);
  const segBytes = BigInt(segs[t.segment].length);
  const n = numelBig(t.shape);
  let lo = BigInt(t.elementOffset);
  let hi = lo; // index of the last element touched
  if (n > 0n) {
    if (t.strides === null) hi = lo + n - 1n;
    else
      for (let i = 0; i < t.shape.length; i++) {
        const span = BigInt(t.shape[i] - 1) * BigInt(t.strides[i]);
        if (span < 0n) lo += span;
        else hi += span;
      }
    if (lo < 0n || (hi + 1n) * esize > segBytes)
      throw fail(
        Err,
        where,
        `elements [${lo}, ${hi}] fall outside segment ${t.segment} (${segBytes} bytes of ${t.dtype})`,
      );
  } else if (lo * esize > segBytes) {
    throw fail(Err, `${where}.elementOffset`, `beyond the end of segment ${t.segment}`);
  }
  return t;
}

function checkLossy(Err: ErrClass, x: unknown, where: string): LossyMark {
  const o = plainObject(Err, x, where);
  onlyKeys(Err, o, ['codec', 'maxAbsError', 'relL2Error', 'segments', 'sourceSha256'], where);
  const num = (v: unknown, k: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw fail(Err, `${where}.${k}`, 'expected a finite number >= 0');
    return v;
  };
  return {
    codec: str(Err, o.codec, `${where}.codec`),
    maxAbsError: num(o.maxAbsError, 'maxAbsError'),
    relL2Error: num(o.relL2Error, 'relL2Error'),
    segments: uint(Err, o.segments, `${where}.segments`),
    sourceSha256: str(Err, o.sourceSha256, `${where}.sourceSha256`),
  };
}

function checkFile(Err: ErrClass, x: unknown, where: string): FileEntry {
  const o = plainObject(Err, x, where);
  onlyKeys(Err, o, ['format', 'size', 'sha256', 'skeleton', 'segments', 'tensors', 'metadata', 'lossy'], where);
  const format = str(Err, o.format, `${where}.format`);
  if (format.length === 0) throw fail(Err, `${where}.format`, 'is empty');
  const size = uint(Err, o.size, `${where}.size`);
  const sha256 = str(Err, o.sha256, `${where}.sha256`);
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw fail(Err, `${where}.sha256`, 'expected 64 lowercase hex characters');
  const skeleton = objectId(Err, o.skeleton, `${where}.skeleton`);
  const segments = arr(Err, o.segments, `${where}.segments`).map((s, i) =>
    checkSegment(Err, s, `${where}.segments[${i}]`),
  );
  let end = 0;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s.offset < end)
      throw fail(
        Err,
        `${where}.segments[${i}]`,
        `offset ${s.offset} overlaps or precedes the previous segment (ends at ${end})`,
      );
    end = s.offset + s.length;
    if (end > size) throw fail(Err, `${where}.segments[${i}]`, `ends at ${end}, past the file size ${size}`);
  }
  const names = new Set<string>();
  const tensors = arr(Err, o.tensors, `${where}.tensors`).map((t, i) => {
    const te = checkTensor(Err, t, `${where}.tensors[${i}]`, segments);
    if (names.has(te.name))
      throw fail(Err, `${where}.tensors[${i}].name`, `duplicate tensor name ${JSON.stringify(te.name)}`);
    names.add(te.name);
    return te;
  });
  const entry: FileEntry = { format, size, sha256, skeleton, segments, tensors };
  // A symlink (lib/worktree/symlink.ts): the skeleton holds the target bytes, nothing else.
  if (format === 'symlink' && (segments.length || tensors.length || size === 0 || size > 4096))
    throw fail(Err, where, 'symlink entry must have no segments or tensors and a 1..4096-byte target');
  if (o.metadata !== undefined) {
    const m = plainObject(Err, o.metadata, `${where}.metadata`);
    const md: Record<string, string> = fileTable();
    for (const k of Object.keys(m))
      Object.defineProperty(md, k, {
        value: str(Err, m[k], `${where}.metadata.${k}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    entry.metadata = md;
  }
  if (o.lossy !== undefined) entry.lossy = checkLossy(Err, o.lossy, `${where}.lossy`);
  return entry;
}

function check(Err: ErrClass, x: unknown, where: string, stored: boolean): Tree {
  const o = plainObject(Err, x, where);
  if (stored) {
    onlyKeys(Err, o, ['type', 'v', 'files'], where);
    header(Err, o, 'tree', where);
  } else {
    onlyKeys(Err, o, ['files'], where);
  }
  const f = plainObject(Err, o.files, `${where}.files`);
  const files = fileTable<FileEntry>();
  const paths = Object.keys(f);
  const all = new Set(paths);
  for (const p of paths) {
    const problem = treePathProblem(p);
    if (problem) throw fail(Err, `${where}.files`, `path ${JSON.stringify(p)} ${problem}`);
    for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1))
      if (all.has(p.slice(0, i)))
        throw fail(Err, `${where}.files`, `${JSON.stringify(p.slice(0, i))} is both a file and a directory`);
    // defineProperty: a path named "__proto__" stays an ordinary own key.
    Object.defineProperty(files, p, {
      value: checkFile(Err, f[p], `${where}.files[${JSON.stringify(p)}]`),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return { files };
}

/** Canonical bytes of a tree (InvalidArgumentError naming the field when invalid). */
export function encodeTree(t: Tree): Buffer {
  const v = check(InvalidArgumentError, t, 'tree', false);
  return Buffer.from(canonicalJson({ type: 'tree', v: 1, files: v.files }), 'utf8');
}

/** Parses and validates tree bytes (CorruptObjectError when malformed). */
export function decodeTree(bytes: Uint8Array): Tree {
  return treeFromJson(parseCanonical(bytes, 'tree'));
}

/** @internal */
export function treeFromJson(v: unknown): Tree {
  return check(CorruptObjectError, v, 'tree', true);
}
