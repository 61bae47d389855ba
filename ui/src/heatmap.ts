// The diff heatmap's layout: tensors placed on a grid, rows = layers, columns = parameter kinds. The row key is
// the name up to and including its first purely numeric component ("model.layers.12"), so an encoder's and a
// decoder's layer 3 are two rows; tensors with no numeric component go to a separate one-row grid. When two files
// hold the same tensor names (two checkpoints side by side), each file gets its own grids.
import type { DiffResult, TensorChange } from './api';

export interface Cell {
  path: string;
  t: TensorChange;
}

export interface Grid {
  id: string;
  title: string;
  rows: string[];
  cols: string[];
  /** cells[r][c], null where no tensor has that layer and kind. */
  cells: Array<Array<Cell | null>>;
}

function split(name: string): { row: string; kind: string; layer: number } | null {
  const parts = name.split('.');
  const i = parts.findIndex((p) => /^\d+$/.test(p));
  if (i < 0) return null;
  return {
    row: parts.slice(0, i + 1).join('.'),
    kind: parts.slice(i + 1).join('.') || '(tensor)',
    layer: Number(parts[i]),
  };
}

function gridsOf(id: string, title: string, cells: Cell[]): Grid[] {
  const out: Grid[] = [];
  const layered = cells.map((c) => ({ c, s: split(c.t.name) })).filter((x) => x.s !== null);
  if (layered.length > 0) {
    // Rows: by prefix in order of first appearance, then by layer number.
    const prefixOrder = new Map<string, number>();
    const rowInfo = new Map<string, { prefix: number; layer: number }>();
    const cols: string[] = [];
    for (const { s } of layered) {
      const prefix = s!.row.slice(0, s!.row.lastIndexOf('.'));
      if (!prefixOrder.has(prefix)) prefixOrder.set(prefix, prefixOrder.size);
      rowInfo.set(s!.row, { prefix: prefixOrder.get(prefix)!, layer: s!.layer });
      if (!cols.includes(s!.kind)) cols.push(s!.kind);
    }
    const rows = [...rowInfo.keys()].sort((a, b) => {
      const x = rowInfo.get(a)!;
      const y = rowInfo.get(b)!;
      return x.prefix - y.prefix || x.layer - y.layer;
    });
    const cellsRC = rows.map(() => cols.map((): Cell | null => null));
    for (const { c, s } of layered) cellsRC[rows.indexOf(s!.row)][cols.indexOf(s!.kind)] = c;
    out.push({ id: `${id}-layers`, title: `${title}: layers`, rows, cols, cells: cellsRC });
  }
  const other = cells.filter((c) => split(c.t.name) === null);
  if (other.length > 0)
    out.push({
      id: `${id}-other`,
      title: `${title}: tensors outside layers`,
      rows: ['(no layer)'],
      cols: other.map((c) => c.t.name),
      cells: [other],
    });
  return out;
}

export function layoutGrids(diff: DiffResult): Grid[] {
  const all: Cell[] = diff.files.flatMap((f) => f.tensors.map((t) => ({ path: f.path, t })));
  const names = new Set<string>();
  let clash = false;
  for (const c of all) {
    if (names.has(c.t.name)) clash = true;
    names.add(c.t.name);
  }
  if (!clash) return gridsOf('all', diff.files.length === 1 ? diff.files[0].path : 'All files', all);
  return diff.files.flatMap((f, i) =>
    gridsOf(
      `f${i}`,
      f.path,
      f.tensors.map((t) => ({ path: f.path, t })),
    ),
  );
}

export type Metric = 'relL2' | 'fracChanged';

export const METRIC_LABEL: Record<Metric, string> = {
  relL2: 'relative L2 change',
  fracChanged: 'fraction of elements changed',
};

/** The colour domain's upper end: the largest finite value (relative L2), or 1 (a fraction). */
export function domainMax(grids: Grid[], metric: Metric): number {
  if (metric === 'fracChanged') return 1;
  let m = 0;
  for (const g of grids)
    for (const row of g.cells)
      for (const c of row) {
        const v = c?.t.relL2;
        if (typeof v === 'number' && Number.isFinite(v) && v > m) m = v;
      }
  return m > 0 ? m : 1;
}
