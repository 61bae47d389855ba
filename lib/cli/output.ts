/**
 * Terminal output: colour only on a TTY without NO_COLOR, progress only on a
 * TTY stderr, human sizes, and the one-line error format.
 */
import { CoralError } from '../index';

export interface Io {
  out: (s: string) => void;
  /** Raw bytes to stdout (`show rev:path` of an ordinary file); absent: `out` of the UTF-8 text. */
  outBytes?: (b: Uint8Array) => void;
  err: (s: string) => void;
  color: boolean;
  progress: boolean;
}

export function defaultIo(): Io {
  const noColor = process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== '';
  return {
    out: (s) => process.stdout.write(s),
    outBytes: (b) => process.stdout.write(b),
    err: (s) => process.stderr.write(s),
    color: !noColor && !!process.stdout.isTTY,
    progress: !!process.stderr.isTTY,
  };
}

/** `-q`/`--quiet`: the same Io with nothing on stdout and no progress (errors and warnings still on stderr). */
export function quietIo(io: Io): Io {
  return { ...io, out: () => undefined, outBytes: () => undefined, progress: false };
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, dim: 2, bold: 1 } as const;
export type Color = keyof typeof CODES;

export function paint(io: Io, c: Color, s: string): string {
  return io.color ? `\x1b[${CODES[c]}m${s}\x1b[0m` : s;
}

export function humanBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

export function fmtNum(x: number, digits = 4): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e6 ? x.toPrecision(digits).replace(/\.?0+$/, '') : x.toExponential(digits - 1);
}

/** A progress line on stderr, redrawn in place; silent when stderr is not a TTY. */
export class Progress {
  private last = 0;
  constructor(
    private readonly io: Io,
    private readonly label: string,
  ) {}
  update(done: number, total: number, what = ''): void {
    if (!this.io.progress) return;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const pct = total ? Math.floor((100 * done) / total) : 100;
    const width = 24;
    const fill = Math.round((pct / 100) * width);
    this.io.err(
      `\r${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct}% ${what}`.slice(0, 120).padEnd(80),
    );
  }
  done(): void {
    if (this.io.progress) this.io.err('\r' + ' '.repeat(100) + '\r');
  }
}

/** One line of text on stdout. */
export function print(ctx: { io: Io }, s = ''): void {
  ctx.io.out(s + '\n');
}

/**
 * A --json document on stdout: two-space indented, with non-finite numbers as
 * strings ("Infinity") and bigints as decimal strings, which JSON cannot carry.
 * `plainNumbers` keeps JSON.stringify's own rule for non-finite numbers (null),
 * which `coral similar --json` has always used.
 */
export function printJson(ctx: { io: Io }, v: unknown, opts: { plainNumbers?: boolean } = {}): void {
  const replacer = (_k: string, x: unknown) =>
    typeof x === 'bigint'
      ? x.toString()
      : typeof x === 'number' && !Number.isFinite(x) && !opts.plainNumbers
        ? String(x)
        : x;
  ctx.io.out(JSON.stringify(v, replacer, 2) + '\n');
}

/** Exit codes by error code; anything else is 1. */
const EXIT: Record<string, number> = {
  CORAL_INVALID_ARGUMENT: 2,
  CORAL_USAGE: 2,
  CORAL_NOT_A_REPOSITORY: 3,
  CORAL_REF_NOT_FOUND: 4,
  CORAL_OBJECT_NOT_FOUND: 4,
  CORAL_MERGE_CONFLICT: 5,
  CORAL_DIRTY_WORKTREE: 6,
  CORAL_NOTHING_TO_COMMIT: 7,
  CORAL_LOCKED: 8,
  CORAL_REF_CONFLICT: 8,
  CORAL_IN_PROGRESS: 8,
  CORAL_CORRUPT_OBJECT: 9,
  CORAL_CHECKSUM_MISMATCH: 9,
  CORAL_FSCK_FAILED: 9,
  CORAL_REMOTE_NOT_FOUND: 10,
  CORAL_REMOTE_AUTH: 10,
  CORAL_REMOTE_UNAVAILABLE: 10,
  CORAL_REMOTE_UNSAFE: 10,
  CORAL_REMOTE_REJECTED: 10,
  CORAL_PERMISSION_DENIED: 10,
  CORAL_NON_FAST_FORWARD: 11,
};

export function exitCodeFor(e: unknown): number {
  const code = e instanceof CoralError ? e.code : (e as { code?: string })?.code;
  return (code && EXIT[code]) || 1;
}

/** `coral: <message> (<code>)` */
export function errorLine(e: unknown): string {
  if (e instanceof CoralError) return `coral: ${e.message} (${e.code})\n`;
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err.code === 'string' && err.syscall) return `coral: ${err.message} (CORAL_IO)\n`;
  return `coral: ${err?.message ?? String(e)} (CORAL_INTERNAL)\n`;
}
