/**
 * Three-way classification (no I/O): given the common ancestor's, our and
 * their version of one item (a file, or a tensor inside a file), decide what a
 * merge does with it. Items are compared with an equality function; a missing
 * version (undefined) means the item does not exist on that side.
 *
 * | base | ours | theirs | kind                    | take    |
 * |------|------|--------|-------------------------|---------|
 * | B    | B    | B      | unchanged               | base    |
 * | B    | O    | B      | modified-ours           | ours    |
 * | B    | B    | T      | modified-theirs         | theirs  |
 * | -    | O    | -      | added-ours              | ours    |
 * | -    | -    | T      | added-theirs            | theirs  |
 * | B    | -    | B      | deleted-ours            | none    |
 * | B    | B    | -      | deleted-theirs          | none    |
 * | B    | X    | X      | modified-both-same      | ours    |
 * | -    | X    | X      | added-both-same         | ours    |
 * | B    | -    | -      | deleted-both            | none    |
 * | B    | O    | T      | conflict-modify-modify  | (strategy) |
 * | -    | O    | T      | conflict-add-add        | (strategy) |
 * | B    | -    | T      | conflict-delete-modify  | (strategy: ours deletes, theirs keeps T) |
 * | B    | O    | -      | conflict-modify-delete  | (strategy: ours keeps O, theirs deletes) |
 *
 * @example
 * classify3(b, o, t, (x, y) => x.id === y.id).kind  // 'modified-theirs'
 * classifyTensors(baseMap, oursMap, theirsMap)       // one row per tensor name, sorted
 */

export type MergeKind =
  | 'unchanged'
  | 'modified-ours'
  | 'modified-theirs'
  | 'added-ours'
  | 'added-theirs'
  | 'deleted-ours'
  | 'deleted-theirs'
  | 'modified-both-same'
  | 'added-both-same'
  | 'deleted-both'
  | 'conflict-modify-modify'
  | 'conflict-add-add'
  | 'conflict-delete-modify'
  | 'conflict-modify-delete';

export interface Classification {
  kind: MergeKind;
  /** Which version the merge takes without a strategy; 'none' = absent from the result; null = a conflict. */
  take: 'base' | 'ours' | 'theirs' | 'none' | null;
}

export function isConflict(kind: MergeKind): boolean {
  return kind.startsWith('conflict-');
}

/** Classifies one item. At least one version must be present. */
export function classify3<T>(
  base: T | undefined,
  ours: T | undefined,
  theirs: T | undefined,
  eq: (a: T, b: T) => boolean,
): Classification {
  const same = (a: T | undefined, b: T | undefined) => (a === undefined || b === undefined ? a === b : eq(a, b));
  const hasB = base !== undefined;
  const hasO = ours !== undefined;
  const hasT = theirs !== undefined;
  if (!hasB && !hasO && !hasT) throw new TypeError('classify3: the item exists in no version');
  const oB = same(ours, base);
  const tB = same(theirs, base);
  if (oB && tB) return { kind: 'unchanged', take: 'base' };
  if (tB)
    return { kind: !hasB ? 'added-ours' : !hasO ? 'deleted-ours' : 'modified-ours', take: hasO ? 'ours' : 'none' };
  if (oB)
    return {
      kind: !hasB ? 'added-theirs' : !hasT ? 'deleted-theirs' : 'modified-theirs',
      take: hasT ? 'theirs' : 'none',
    };
  if (same(ours, theirs)) {
    if (!hasO) return { kind: 'deleted-both', take: 'none' };
    return { kind: hasB ? 'modified-both-same' : 'added-both-same', take: 'ours' };
  }
  if (!hasB) return { kind: 'conflict-add-add', take: null };
  if (!hasO) return { kind: 'conflict-delete-modify', take: null };
  if (!hasT) return { kind: 'conflict-modify-delete', take: null };
  return { kind: 'conflict-modify-modify', take: null };
}

/** One tensor's identity: equal ids (content ids of the tensor) with equal dtype and shape mean equal tensors. */
export interface TensorVersion {
  dtype: string;
  shape: readonly number[];
  id: string;
}

export function sameTensor(a: TensorVersion, b: TensorVersion): boolean {
  return (
    a.id === b.id &&
    a.dtype === b.dtype &&
    a.shape.length === b.shape.length &&
    a.shape.every((d, i) => d === b.shape[i])
  );
}

/** One file's identity: its bytes (sha256 and size). */
export interface FileVersion {
  sha256: string;
  size: number;
}

export function sameFile(a: FileVersion, b: FileVersion): boolean {
  return a.sha256 === b.sha256 && a.size === b.size;
}

export interface ItemClassification extends Classification {
  name: string;
}

function classifyMaps<T>(
  base: ReadonlyMap<string, T>,
  ours: ReadonlyMap<string, T>,
  theirs: ReadonlyMap<string, T>,
  eq: (a: T, b: T) => boolean,
): ItemClassification[] {
  const names = [...new Set([...base.keys(), ...ours.keys(), ...theirs.keys()])].sort();
  return names.map((name) => ({ name, ...classify3(base.get(name), ours.get(name), theirs.get(name), eq) }));
}

/** Per-tensor classification of one file's three versions (maps by tensor name), sorted by name. */
export function classifyTensors(
  base: ReadonlyMap<string, TensorVersion>,
  ours: ReadonlyMap<string, TensorVersion>,
  theirs: ReadonlyMap<string, TensorVersion>,
): ItemClassification[] {
  return classifyMaps(base, ours, theirs, sameTensor);
}

/** Per-file classification of three trees (`files` records by path), sorted by path. */
export function classifyFiles<F extends FileVersion>(
  base: Readonly<Record<string, F>>,
  ours: Readonly<Record<string, F>>,
  theirs: Readonly<Record<string, F>>,
): ItemClassification[] {
  const m = (r: Readonly<Record<string, F>>) => new Map(Object.entries(r));
  return classifyMaps(m(base), m(ours), m(theirs), sameFile);
}

/** Counts by kind, for summaries. */
export function summarize(items: readonly { kind: MergeKind }[]): Partial<Record<MergeKind, number>> {
  const out: Partial<Record<MergeKind, number>> = {};
  for (const i of items) out[i.kind] = (out[i.kind] ?? 0) + 1;
  return out;
}
