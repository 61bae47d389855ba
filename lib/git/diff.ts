/**
 * `git diff` on a checkpoint, without smudging it.
 *
 * git runs `diff.coral.command` (`coral git diff-driver`) with
 * `path old-file old-hex old-mode new-file new-hex new-mode`. Each side is a
 * pointer (the filter process hands pointers back to diff commands, see
 * process.ts), a blob id whose pointer git can give, or a real file from the
 * working tree (cleaned into the payload store, as `git status` does). Both
 * sides become file entries, and lib/diff compares them group by group from
 * the stored payloads: added, removed, modified (fraction of elements
 * changed, relative L2, max |Δ|) and how the new version is stored.
 *
 * `diff.coral.textconv` (`coral git textconv`) serves `git log -p` and
 * `--stat`: one line per group, so git's own line diff lists the groups that
 * changed.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { diffSides, type FileChange, type TensorChange } from '../diff/tensor-diff';
import { invalidParameter } from '../errors';
import { fileTable, type FileEntry } from '../models/tree';
import { gitConfig, gitDirs, gitRaw } from './gitcmd';
import { cleanFile, openPayloads, type Payloads } from './payloads';
import { groupNames, looksLikePointer, MAX_POINTER_BYTES, parsePointer, type Pointer, type Storage } from './pointer';
import { previousPointer } from './process';

const NULL_OID = /^0+$/;

/** The pointer a diff side stands for, or null when the side is absent (/dev/null). */
export async function sidePointer(
  ps: Payloads,
  cwd: string,
  relPath: string,
  file: string,
  hex: string,
): Promise<Pointer | null> {
  if (file === '/dev/null') return null;
  const st = await fsp.stat(file);
  if (st.size <= MAX_POINTER_BYTES) {
    const fh = await fsp.open(file, 'r');
    const head = Buffer.alloc(16);
    await fh.read(head, 0, 16, 0);
    await fh.close();
    if (looksLikePointer(head)) return parsePointer(await fsp.readFile(file));
  }
  if (hex && !NULL_OID.test(hex)) {
    const r = await gitRaw(cwd, ['cat-file', 'blob', hex]);
    if (r.code === 0 && looksLikePointer(r.stdout)) return parsePointer(r.stdout);
  }
  // A real file (the working tree side): clean it into the store, as git status would.
  const cleaned = await cleanFile(ps, relPath, file, await previousPointer(cwd, relPath));
  return parsePointer(cleaned.text);
}

export interface CheckpointDiff {
  path: string;
  change: FileChange | null;
  /** How each object of the new (else old) side is stored, by id. */
  storage: Map<string, Storage>;
  /** The object id behind each tensor name of the new side. */
  objects: Map<string, string>;
  oldSize?: number;
  newSize?: number;
  format: string;
  groups: number;
}

/** Compares two versions of one checkpoint from their pointers (null = absent). */
export async function diffPointers(
  ps: Pick<Payloads, 'reader'>,
  relPath: string,
  a: Pointer | null,
  b: Pointer | null,
): Promise<CheckpointDiff> {
  const tree = (p: Pointer | null) => ({ files: p ? fileTable([[relPath, p.entry]]) : fileTable<FileEntry>() });
  const changes = await diffSides(ps.reader, tree(a), { kind: 'tree', tree: tree(b) });
  const side = b ?? a!;
  const objects = new Map<string, string>();
  for (const t of side.entry.tensors) objects.set(t.name, side.entry.segments[t.segment].object);
  return {
    path: relPath,
    change: changes[0] ?? null,
    storage: new Map([...(a?.storage ?? []), ...side.storage]),
    objects,
    ...(a ? { oldSize: a.entry.size } : {}),
    ...(b ? { newSize: b.entry.size } : {}),
    format: side.entry.format,
    groups: side.entry.segments.length,
  };
}

/** Colours of git's diff slots (empty strings when colour is off). */
export interface DiffColors {
  meta: string;
  frag: string;
  old: string;
  new: string;
  mod: string;
  reset: string;
}

const NO_COLORS: DiffColors = { meta: '', frag: '', old: '', new: '', mod: '', reset: '' };

/** git's own colour decision (color.diff / color.ui, the pager) and slot colours. */
export async function gitDiffColors(cwd: string, stdoutIsTty: boolean): Promise<DiffColors> {
  const tty = stdoutIsTty || process.env.GIT_PAGER_IN_USE === 'true';
  const r = await gitRaw(cwd, ['config', '--get-colorbool', 'color.diff', tty ? 'true' : 'false']);
  if (r.stdout.toString().trim() !== 'true') return NO_COLORS;
  const slot = async (name: string, dflt: string) =>
    (await gitRaw(cwd, ['config', '--get-color', `color.diff.${name}`, dflt])).stdout.toString();
  return {
    meta: await slot('meta', 'bold'),
    frag: await slot('frag', 'cyan'),
    old: await slot('old', 'red'),
    new: await slot('new', 'green'),
    mod: await slot('commit', 'yellow'),
    reset: '\x1b[m',
  };
}

function num(x: number | null): string {
  if (x === null) return 'undefined';
  if (x === 0) return '0';
  return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? x.toPrecision(3) : x.toExponential(2);
}

function pct(x: number): string {
  return x === 0 ? '0%' : x < 0.001 ? '<0.1%' : `${(100 * x).toFixed(1)}%`;
}

function human(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return i ? `${v.toFixed(1)} ${u[i]}` : `${n} B`;
}

function storedText(s: Storage | undefined): string {
  if (!s) return '';
  return s.kind === 'whole' ? `stored whole (${s.codec})` : `stored as ${s.kind} update (${s.codec})`;
}

function tensorLine(d: CheckpointDiff, t: TensorChange, c: DiffColors): string {
  const shape = `${t.dtype}[${t.shape.join(', ')}]`;
  const st = storedText(d.storage.get(d.objects.get(t.name) ?? ''));
  if (t.change === 'added') return `${c.new}+ ${t.name}  ${shape}  added, ${st}${c.reset}`;
  if (t.change === 'removed') return `${c.old}- ${t.name}  ${shape}  removed${c.reset}`;
  if (t.oldDtype !== undefined)
    return `${c.mod}~ ${t.name}  ${t.oldDtype}[${t.oldShape!.join(', ')}] -> ${shape}  replaced, ${st}${c.reset}`;
  const m = t.metrics!;
  return (
    `${c.mod}~ ${t.name}  ${shape}  ${pct(m.changedFraction)} of elements changed, rel L2 ${num(m.relL2)}, ` +
    `max abs ${num(m.maxAbs)}${m.nonFinite ? `, ${m.nonFinite} non-finite` : ''}, ${st}${c.reset}`
  );
}

/** The text of a checkpoint diff, git-style. */
export function formatCheckpointDiff(d: CheckpointDiff, hexes: [string, string], c: DiffColors = NO_COLORS): string {
  const ch = d.change;
  const lines: string[] = [];
  const a = d.oldSize === undefined ? '/dev/null' : `a/${d.path}`;
  const b = d.newSize === undefined ? '/dev/null' : `b/${d.path}`;
  lines.push(`${c.meta}diff --coral a/${d.path} b/${d.path}${c.reset}`);
  if (d.oldSize === undefined) lines.push(`${c.meta}new file${c.reset}`);
  if (d.newSize === undefined) lines.push(`${c.meta}deleted file${c.reset}`);
  lines.push(`${c.meta}index ${hexes[0].slice(0, 7)}..${hexes[1].slice(0, 7)}${c.reset}`);
  lines.push(`${c.meta}--- ${a}${c.reset}`, `${c.meta}+++ ${b}${c.reset}`);
  const tensors = ch?.tensors ?? [];
  const count = (k: string) => tensors.filter((t) => t.change === k).length;
  const sizes =
    d.oldSize !== undefined && d.newSize !== undefined && d.oldSize !== d.newSize
      ? `${human(d.oldSize)} -> ${human(d.newSize)}`
      : human(d.newSize ?? d.oldSize ?? 0);
  lines.push(
    `${c.frag}@@ ${d.format}, ${sizes}, ${d.groups} groups: ${count('added')} added, ${count('removed')} removed, ` +
      `${count('modified')} modified @@${c.reset}`,
  );
  if (!tensors.length && ch) lines.push(' (tensors unchanged; the file differs outside them)');
  for (const t of tensors) lines.push(tensorLine(d, t, c));
  return lines.join('\n') + '\n';
}

/** `coral git diff-driver path old-file old-hex old-mode new-file new-hex new-mode [new-path xfrm]`. */
export async function runDiffDriver(cwd: string, args: string[], stdoutIsTty: boolean): Promise<string> {
  if (args.length !== 7 && args.length !== 9)
    throw invalidParameter('diff-driver arguments', "git's 7 (or 9) external-diff arguments", args.join(' '));
  const [relPath, oldFile, oldHex, , newFile, newHex] = args;
  const dirs = await gitDirs(cwd);
  const top = dirs.worktree || cwd;
  const chain = await gitConfig(cwd, 'coral.maxChainLength', 'int');
  const ps = await openPayloads(dirs, chain !== undefined ? { maxChainLength: Number(chain) } : {});
  try {
    const a = await sidePointer(ps, top, relPath, path.resolve(cwd, oldFile), oldHex);
    const b = await sidePointer(ps, top, relPath, path.resolve(cwd, newFile), newHex);
    const d = await diffPointers(ps, args.length === 9 ? args[7] : relPath, a, b);
    return formatCheckpointDiff(d, [oldHex, newHex], await gitDiffColors(cwd, stdoutIsTty));
  } finally {
    await ps.close();
  }
}

/** One line per group (and per view), for git's line diff: `coral git textconv <file>`. */
export function pointerSummary(p: Pointer): string {
  const names = groupNames(p.entry);
  const lines = [`${p.entry.format} checkpoint, ${p.entry.size} bytes, sha256 ${p.entry.sha256.slice(0, 16)}`];
  p.entry.segments.forEach((s, i) => {
    const st = p.storage.get(s.object)!;
    const how = st.kind === 'whole' ? `whole ${st.codec}` : `${st.kind} ${st.codec} on ${st.base!.slice(0, 12)}`;
    lines.push(`${names[i]}  ${s.dtype}[${s.shape.join(', ')}]  ${s.object.slice(0, 12)}  ${how}`);
  });
  return lines.join('\n') + '\n';
}

export async function runTextconv(cwd: string, file: string): Promise<string> {
  const dirs = await gitDirs(cwd);
  const ps = await openPayloads(dirs);
  try {
    const abs = path.resolve(cwd, file);
    const inTree = dirs.worktree && !path.relative(dirs.worktree, abs).startsWith('..');
    const rel = inTree ? path.relative(dirs.worktree, abs).split(path.sep).join('/') : path.basename(abs);
    return pointerSummary((await sidePointer(ps, dirs.worktree || cwd, rel, abs, ''))!);
  } finally {
    await ps.close();
  }
}
