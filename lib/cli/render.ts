/**
 * Text forms shared by several commands: short ids, subject lines, and the
 * file/tensor change list of diff, show and compare (docs/cli.md).
 */
import { summarizeChanges, type Commit, type FileChange, type TensorMetrics } from '../index';
import { fmtNum, humanBytes, paint, print, type Io } from './output';

/** The first 12 hex digits of an id, or `(none)`. */
export function short(id: string | null | undefined): string {
  return id ? id.slice(0, 12) : '(none)';
}

/** A commit's subject line. */
export function firstLine(c: Commit): string {
  return c.message.split('\n')[0];
}

/** How a lossy file is announced (show, diff, log, checkout): codec and the recorded error. */
export function lossyLine(
  path: string,
  m: { codec: string; maxAbsError: number; relL2Error: number; segments: number },
): string {
  return `lossy ${path}: ${m.codec}, not byte-exact (${m.segments} tensors; max abs error ${fmtNum(m.maxAbsError)}, rel L2 error ${fmtNum(m.relL2Error)})`;
}

/** One tensor's metrics; "-" stands for an undefined ratio (see TensorMetrics). */
export function metricsText(m: TensorMetrics): string {
  const num = (x: number | null, digits?: number) => (x === null ? '-' : fmtNum(x, digits));
  return (
    `changed ${(100 * m.changedFraction).toFixed(2)}%  relL2 ${num(m.relL2)}  maxAbs ${fmtNum(m.maxAbs)}  cos ${num(m.cosine, 6)}` +
    (m.nonFinite ? `  nonFinite ${m.nonFinite}` : '')
  );
}

/** The change list: one line per file, then one per tensor of a modified file (or counts with `stat`). */
export function renderChanges(ctx: { io: Io }, changes: FileChange[], opts: { stat?: boolean } = {}): void {
  const { io } = ctx;
  for (const f of changes) {
    const mark =
      f.change === 'added'
        ? paint(io, 'green', 'A')
        : f.change === 'removed'
          ? paint(io, 'red', 'D')
          : paint(io, 'yellow', 'M');
    const sizes =
      f.change === 'modified'
        ? `${humanBytes(f.oldSize!)} -> ${humanBytes(f.newSize!)}`
        : humanBytes((f.newSize ?? f.oldSize)!);
    const target = f.newTarget ?? (f.change === 'removed' ? f.oldTarget : undefined);
    const was = f.change === 'modified' && f.oldTarget !== undefined ? `, was symlink -> ${f.oldTarget}` : '';
    const kind = (target === undefined ? `${f.format}, ${sizes}` : `symlink -> ${target}`) + was;
    print(ctx, `${mark} ${paint(io, 'bold', f.path)}  (${kind})`);
    if (f.oldLossy) print(ctx, `    was ${lossyLine(f.path, f.oldLossy)}`);
    if (f.newLossy) print(ctx, `    ${lossyLine(f.path, f.newLossy)}`);
    if (opts.stat) {
      const n = summarizeChanges([f]);
      print(ctx, `    tensors: ${n.tensorsAdded} added, ${n.tensorsRemoved} removed, ${n.tensorsModified} modified`);
      continue;
    }
    if (f.change !== 'modified') continue;
    for (const t of f.tensors) {
      const shape = `${t.dtype}[${t.shape.join(',')}]`;
      if (t.change === 'added') print(ctx, `    ${paint(io, 'green', '+')} ${t.name}  ${shape}`);
      else if (t.change === 'removed') print(ctx, `    ${paint(io, 'red', '-')} ${t.name}  ${shape}`);
      else if (t.oldDtype || t.oldShape)
        print(ctx, `    ${paint(io, 'yellow', '~')} ${t.name}  ${t.oldDtype}[${t.oldShape!.join(',')}] -> ${shape}`);
      else if (t.metrics) print(ctx, `    ${paint(io, 'yellow', '~')} ${t.name}  ${shape}  ${metricsText(t.metrics)}`);
      else print(ctx, `    ${paint(io, 'yellow', '~')} ${t.name}  ${shape}`);
    }
  }
}
