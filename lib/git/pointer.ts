/**
 * The pointer: the small, deterministic text git stores in place of a tracked
 * checkpoint. It names everything needed to rebuild the file byte for byte
 * from the payload store: the layout format, file size, sha256 and skeleton,
 * then one line per parameter group (one stored segment: a tensor, a .pt
 * storage, a chunk of an opaque file) with its name, dtype, shape, content id,
 * how it is stored, and where it sits in the file. Tensors that are views
 * into a group other than the whole of it get `view` lines.
 *
 * ```
 * coral-pointer 1
 * format safetensors
 * size 1049008
 * sha256 9f86d081…
 * skeleton 3a1c… whole:ZSTD
 * group encoder.weight F32 [512,512] 7d0e… delta:DELTA_ORDERED@51b2… 184 1048576
 * group encoder.bias F32 [512] c4ca… sparse:SPARSE_UPDATE@a87f… 1048760 2048
 * ```
 *
 * (`views <n>` precedes them.) With the lfs backend, `lfs <id> <sha256> <size>` lines name the
 * git-lfs copy of every object the file needs, delta bases included. Names and metadata are percent-escaped where they hold `%`, whitespace or
 * control characters, so every line splits on single spaces. The same file
 * bytes give the same text (content ids are exact; the storage column is read
 * back from the stored object), so git sees an unchanged file as unchanged.
 *
 * @example
 * const text = formatPointer(entry, storage);
 * const { entry: back } = parsePointer(text);     // deep-equals entry
 */
import { CorruptObjectError } from '../errors';
import type { FileEntry, SegmentEntry, TensorEntry } from '../models/tree';
import { fileTable, treeFromJson } from '../models/tree';

export const POINTER_MAGIC = 'coral-pointer 1\n';
/** Pointers are small; anything longer than this is not one. */
export const MAX_POINTER_BYTES = 64 << 20;

/** How one object is stored: whole, or as an update on a base. */
export interface Storage {
  kind: 'whole' | 'sparse' | 'low-rank' | 'delta';
  codec: string;
  /** The base object (the group's previous version), for updates. */
  base: string | null;
}

/** The storage kind of a codec (lib/codec names). */
export function storageOf(codec: string, base: string | null): Storage {
  if (!base) return { kind: 'whole', codec, base: null };
  if (codec === 'SPARSE_UPDATE') return { kind: 'sparse', codec, base };
  if (codec === 'LOW_RANK') return { kind: 'low-rank', codec, base };
  return { kind: 'delta', codec, base };
}

export function formatStorage(s: Storage): string {
  return s.base ? `${s.kind}:${s.codec}@${s.base}` : `${s.kind}:${s.codec}`;
}

export function parseStorage(s: string): Storage {
  const m = /^(whole|sparse|low-rank|delta):([A-Z0-9_]+)(?:@([0-9a-f]{32}))?$/.exec(s);
  if (!m || (m[1] === 'whole') !== (m[3] === undefined)) throw bad(`bad storage ${JSON.stringify(s)}`);
  return { kind: m[1] as Storage['kind'], codec: m[2], base: m[3] ?? null };
}

function bad(why: string): CorruptObjectError {
  return new CorruptObjectError(`not a valid coral pointer: ${why}`);
}

/** Percent-escapes `%`, whitespace and control characters (UTF-8 bytes). */
export function escapeField(s: string): string {
  if (s === '') return '%';
  // eslint-disable-next-line no-control-regex
  return s.replace(/[%\s\x00-\x1f\x7f]/gu, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
  );
}

export function unescapeField(s: string): string {
  if (s === '%') return '';
  if (!/^(?:[^%]|%[0-9A-F]{2})*$/.test(s)) throw bad(`bad escape in ${JSON.stringify(s)}`);
  // Escapes are UTF-8 bytes; everything else is text: join both as bytes, then decode once.
  const parts = s
    .split(/(%[0-9A-F]{2})/)
    .map((p) => (/^%[0-9A-F]{2}$/.test(p) ? Buffer.from([parseInt(p.slice(1), 16)]) : Buffer.from(p, 'utf8')));
  return Buffer.concat(parts).toString('utf8');
}

function formatShape(s: readonly number[]): string {
  return `[${s.join(',')}]`;
}

function parseInts(s: string, what: string, signed = false): number[] {
  if (!/^\[(?:-?\d+(?:,-?\d+)*)?\]$/.test(s)) throw bad(`bad ${what} ${JSON.stringify(s)}`);
  const out = s === '[]' ? [] : s.slice(1, -1).split(',').map(Number);
  if (out.some((n) => !Number.isSafeInteger(n) || (!signed && n < 0))) throw bad(`bad ${what} ${JSON.stringify(s)}`);
  return out;
}

function uintField(s: string, what: string): number {
  if (!/^\d+$/.test(s)) throw bad(`bad ${what} ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw bad(`${what} out of range`);
  return n;
}

/** The group name of segment i: its first tensor's name, or `#<i>` when no tensor views it. */
export function groupNames(entry: Pick<FileEntry, 'segments' | 'tensors'>): string[] {
  const first = new Map<number, string>();
  for (const t of entry.tensors) if (!first.has(t.segment)) first.set(t.segment, t.name);
  return entry.segments.map((_s, i) => first.get(i) ?? `#${i}`);
}

/** True when the tensors are exactly one whole-segment view per group, in order (no `view` lines needed). */
function trivialViews(entry: FileEntry, names: string[]): boolean {
  return (
    entry.tensors.length === entry.segments.length &&
    entry.tensors.every((t, i) => {
      const s = entry.segments[i];
      return (
        t.segment === i &&
        t.name === names[i] &&
        t.dtype === s.dtype &&
        t.elementOffset === 0 &&
        t.strides === null &&
        formatShape(t.shape) === formatShape(s.shape)
      );
    })
  );
}

/**
 * The pointer text of a file entry. `storage` gives how each object id (the
 * skeleton and every group) is stored.
 */
export function formatPointer(
  entry: FileEntry,
  storage: ReadonlyMap<string, Storage>,
  lfs?: ReadonlyMap<string, LfsObject>,
): string {
  const st = (id: string) => {
    const s = storage.get(id);
    if (!s) throw new CorruptObjectError(`no storage information for object ${id}`);
    return formatStorage(s);
  };
  const names = groupNames(entry);
  const lines = [
    POINTER_MAGIC.trimEnd(),
    `format ${escapeField(entry.format)}`,
    `size ${entry.size}`,
    `sha256 ${entry.sha256}`,
    `skeleton ${entry.skeleton} ${st(entry.skeleton)}`,
  ];
  entry.segments.forEach((s, i) =>
    lines.push(
      `group ${escapeField(names[i])} ${s.dtype} ${formatShape(s.shape)} ${s.object} ${st(s.object)} ${s.offset} ${s.length}`,
    ),
  );
  if (!trivialViews(entry, names)) {
    lines.push(`views ${entry.tensors.length}`);
    for (const t of entry.tensors)
      lines.push(
        `view ${escapeField(t.name)} ${t.dtype} ${formatShape(t.shape)} ${t.segment} ${t.elementOffset} ${
          t.strides ? formatShape(t.strides) : '-'
        }`,
      );
  }
  for (const k of Object.keys(entry.metadata ?? {}).sort())
    lines.push(`metadata ${escapeField(k)} ${escapeField(entry.metadata![k])}`);
  for (const id of [...(lfs?.keys() ?? [])].sort()) {
    const o = lfs!.get(id)!;
    lines.push(`lfs ${id} ${o.oid} ${o.size}`);
  }
  return lines.join('\n') + '\n';
}

/** An object's copy in git-lfs (the lfs backend): sha256 and size of its encoded bytes. */
export interface LfsObject {
  oid: string;
  size: number;
}

/** A parsed pointer: the file entry, and how each object is stored (by id), and the group names. */
export interface Pointer {
  entry: FileEntry;
  storage: Map<string, Storage>;
  groups: string[];
  /** With the lfs backend: every object the file needs (delta bases included) as a git-lfs object, by id. */
  lfs?: Map<string, LfsObject>;
}

/** Does `b` start like a pointer? (Cheap: the magic line only.) */
export function looksLikePointer(b: Uint8Array): boolean {
  return (
    b.byteLength >= POINTER_MAGIC.length &&
    Buffer.from(b.subarray(0, POINTER_MAGIC.length)).toString('latin1') === POINTER_MAGIC
  );
}

/** Parses and validates pointer text (CorruptObjectError naming the problem). */
export function parsePointer(text: string | Uint8Array): Pointer {
  const s = typeof text === 'string' ? text : Buffer.from(text).toString('utf8');
  if (!s.startsWith(POINTER_MAGIC)) throw bad('missing the "coral-pointer 1" line');
  if (!s.endsWith('\n')) throw bad('does not end with a newline');
  const lines = s.slice(POINTER_MAGIC.length, -1).split('\n');
  const storage = new Map<string, Storage>();
  const head = new Map<string, string>();
  const segments: SegmentEntry[] = [];
  const groups: string[] = [];
  const views: TensorEntry[] = [];
  const metadata = fileTable<string>();
  let hasMeta = false;
  let viewCount = -1;
  let lfs: Map<string, LfsObject> | undefined;
  for (const line of lines) {
    const f = line.split(' ');
    switch (f[0]) {
      case 'format':
      case 'size':
      case 'sha256':
        if (f.length !== 2 || head.has(f[0])) throw bad(`bad ${f[0]} line`);
        head.set(f[0], f[1]);
        break;
      case 'skeleton':
        if (f.length !== 3 || head.has('skeleton')) throw bad('bad skeleton line');
        head.set('skeleton', f[1]);
        storage.set(f[1], parseStorage(f[2]));
        break;
      case 'group': {
        if (f.length !== 8) throw bad(`bad group line ${JSON.stringify(line)}`);
        groups.push(unescapeField(f[1]));
        segments.push({
          offset: uintField(f[6], 'offset'),
          length: uintField(f[7], 'length'),
          object: f[4],
          dtype: f[2],
          shape: parseInts(f[3], 'shape'),
        });
        storage.set(f[4], parseStorage(f[5]));
        break;
      }
      case 'views':
        if (f.length !== 2 || viewCount >= 0) throw bad('bad views line');
        viewCount = uintField(f[1], 'view count');
        break;
      case 'view':
        if (f.length !== 7 || viewCount < 0) throw bad(`bad view line ${JSON.stringify(line)}`);
        views.push({
          name: unescapeField(f[1]),
          dtype: f[2],
          shape: parseInts(f[3], 'shape'),
          segment: uintField(f[4], 'segment'),
          elementOffset: uintField(f[5], 'element offset'),
          strides: f[6] === '-' ? null : parseInts(f[6], 'strides', true),
        });
        break;
      case 'lfs':
        if (f.length !== 4 || !/^[0-9a-f]{32}$/.test(f[1]) || !/^[0-9a-f]{64}$/.test(f[2])) throw bad('bad lfs line');
        (lfs ??= new Map()).set(f[1], { oid: f[2], size: uintField(f[3], 'lfs size') });
        break;
      case 'metadata':
        if (f.length !== 3) throw bad('bad metadata line');
        metadata[unescapeField(f[1])] = unescapeField(f[2]);
        hasMeta = true;
        break;
      default:
        throw bad(`unknown line ${JSON.stringify(line.slice(0, 80))}`);
    }
  }
  for (const k of ['format', 'size', 'sha256', 'skeleton']) if (!head.has(k)) throw bad(`no ${k} line`);
  if (viewCount >= 0 && viewCount !== views.length) throw bad(`expected ${viewCount} view lines`);
  const tensors: TensorEntry[] =
    viewCount >= 0
      ? views
      : segments.map((g, i) => ({
          name: groups[i],
          dtype: g.dtype,
          shape: g.shape.slice(),
          segment: i,
          elementOffset: 0,
          strides: null,
        }));
  const raw = {
    format: unescapeField(head.get('format')!),
    size: uintField(head.get('size')!, 'size'),
    sha256: head.get('sha256')!,
    skeleton: head.get('skeleton')!,
    segments,
    tensors,
    ...(hasMeta ? { metadata } : {}),
  };
  // The tree model's checks: ids, dtypes, segment order and bounds, views inside their segments.
  let entry: FileEntry;
  try {
    entry = treeFromJson({ type: 'tree', v: 1, files: { f: raw } }).files.f;
  } catch (e) {
    throw bad((e as Error).message);
  }
  return { entry, storage, groups, ...(lfs ? { lfs } : {}) };
}
