/**
 * Shared bench helpers: timing with medians, seeded data, the header every
 * bench prints, and the JSON line for tracking. Ratios are only ever computed
 * between figures measured in the same process run.
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs fn `runs` times after `warmup` runs; returns per-run seconds. */
export async function timeRuns(fn: () => unknown, runs = 5, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return out;
}

export function gbps(bytes: number, seconds: number): number {
  return bytes / seconds / 1e9;
}

export function header(title: string): void {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  console.log(`# ${title}`);
  console.log(
    `# node ${process.version}  cpu ${cpu} x${os.cpus().length}  UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
  );
}

/** xorshift32 filler: deterministic "random" bytes, fast enough for GiB buffers. */
export function seededBytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  const words = new Uint32Array(b.buffer, b.byteOffset, n >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < n; i++) b[i] = i & 0xff;
  return b;
}

export function table(rows: Array<Record<string, string | number>>): void {
  if (!rows.length) return;
  const cols = Object.keys(rows[0]);
  const fmt = (v: string | number) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3)) : v);
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(fmt(r[c])).length)));
  console.log(cols.map((c, i) => c.padEnd(w[i])).join('  '));
  for (const r of rows) console.log(cols.map((c, i) => String(fmt(r[c])).padEnd(w[i])).join('  '));
}

export function emitJson(bench: string, data: Record<string, unknown>): void {
  console.log(`JSON ${JSON.stringify({ bench, node: process.version, time: new Date().toISOString(), ...data })}`);
}

export function argFlag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

/** Bytes of `zstd -3` (the CLI, same run) on b: the codec baselines. */
export function zstd3(b: Uint8Array): number {
  return execFileSync('zstd', ['-3', '-c', '-q'], { input: b, maxBuffer: 1 << 30 }).length;
}

/** a XOR b, byte by byte (the "XOR with base" delta baseline). */
export function xorBytes(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}
