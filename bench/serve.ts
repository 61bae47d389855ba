/**
 * Direct ingestion through the server (`coral serve` from the built dist/ in a child process,
 * bench/lib/serve-child.cjs) against the baselines of the same run:
 *   local:  `Repository.add` + `commit` of the same files, one after another, in-process;
 *   plain:  the same bytes POSTed to a route of the same server that reads and discards the body.
 * Workload: a checkpoint family in safetensors, a base and 15 checkpoints of a run from it (each one
 * AdamW-like step of relative size 1e-3 after the previous, bench/lib/weights.ts), 16 files of 4 F32 tensors (default 64 MiB files of 16 MiB
 * tensors = 1 GiB; --quick 16 MiB files of 4 MiB tensors = 256 MiB). Through the server the base is
 * uploaded first, then the 15 fine-tunes by 1, 4 or 16 concurrent clients (CoralClient) into one
 * branch and one path, so each is delta-encoded against the branch head of its moment, as the local
 * add + commit series is against its parent.
 * Printed: GB/s of each and ratios (server / local add; server / plain upload); the server's peak RSS
 * (VmHWM of a fresh server process per case) against the target 2 x largest tensor + 256 MiB per
 * concurrent upload. Medians of `runs` runs; a fresh repository each run.
 *
 *   npm run build:ts && node --import tsx bench/serve.ts [--quick] [--clients=1,4,16] [--runs=<n>]
 *
 * `--clients` picks the concurrency levels (default all three), `--runs` the number of runs (default 3,
 * 2 with --quick): an A/B of one client is `--quick --clients=1 --runs=1`, repeated in alternation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { CoralClient } from '../lib/client/client';
import { initBare } from '../lib/remote/file';
import { Repository } from '../lib/repository';
import { argFlag, emitJson, gbps, header, median, table } from './lib/harness';
import { fineTune, trainedLike } from './lib/weights';

const MiB = 1 << 20;
const CHILD = path.join(__dirname, 'lib', 'serve-child.cjs');

function writeModel(file: string, ws: Float32Array[], cols: number): void {
  const hdr: Record<string, unknown> = {};
  let off = 0;
  ws.forEach((w, i) => {
    hdr[`layers.${i}.weight`] = {
      dtype: 'F32',
      shape: [w.length / cols, cols],
      data_offsets: [off, off + w.byteLength],
    };
    off += w.byteLength;
  });
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, len);
  fs.writeSync(fd, h);
  for (const w of ws) fs.writeSync(fd, new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  fs.closeSync(fd);
}

interface Server {
  url: string;
  token: string;
  proc: ChildProcess;
  /** RSS once listening, before any request (node, fastify, the addon). */
  idleRss: number;
  peakRss(): number;
  stop(): Promise<void>;
}

async function startServer(root: string): Promise<Server> {
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'index.js')))
    throw new Error('bench/serve.ts runs the built server: npm run build:ts first');
  const proc = spawn(process.execPath, [CHILD, root], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [port, token] = await new Promise<[number, string]>((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+) TOKEN (\S+)\n/.exec(out);
      if (m) resolve([Number(m[1]), m[2]]);
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  const idle = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    proc,
    idleRss: idle ? Number(idle[1]) * 1024 : NaN,
    peakRss: () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : NaN;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** POSTs a file to the discard route (the plain-upload baseline). */
function plainUpload(url: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const size = fs.statSync(file).size;
    const req = http.request(
      `${url}/discard`,
      { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`discard: ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    fs.createReadStream(file, { highWaterMark: MiB }).pipe(req);
  });
}

/** Runs `tasks` with at most `c` at a time. */
async function pool<T>(items: T[], c: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(c, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** `--name=<value>` from the command line. */
function argValue(name: string): string | undefined {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a?.slice(name.length + 3);
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const fileBytes = quick ? 16 * MiB : 64 * MiB;
  const tensors = 4;
  const cols = 1024;
  const tensorBytes = fileBytes / tensors;
  const rows = tensorBytes / 4 / cols;
  const files = 16;
  const runs = Number(argValue('runs') ?? (quick ? 2 : 3));
  const levels = (argValue('clients') ?? '1,4,16').split(',').map(Number);
  if (!(runs >= 1) || !levels.every((c) => Number.isInteger(c) && c >= 1))
    throw new Error('--runs=<n >= 1> --clients=<comma-separated counts >= 1>');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-serve-'));
  try {
    header(
      `serve: ingest of a ${(files * fileBytes) / MiB} MiB checkpoint family (${files} x ${fileBytes / MiB} MiB, tensors of ${tensorBytes / MiB} MiB) through the server`,
    );
    const base = Array.from({ length: tensors }, (_, i) => trainedLike(rows, cols, 500 + i));
    const paths: string[] = [];
    let cur = base;
    for (let k = 0; k < files; k++) {
      // A training run: each checkpoint one AdamW-like step after the previous one.
      if (k > 0) cur = cur.map((w, i) => fineTune(w, 1e-3, 1000 * k + i, cols));
      const f = path.join(work, `ckpt-${String(k).padStart(2, '0')}.safetensors`);
      writeModel(f, cur, cols);
      paths.push(f);
    }
    const total = files * fileBytes;
    const localS: number[] = [];
    const plainS = new Map<number, number[]>(levels.map((c) => [c, []]));
    const serveS = new Map<number, number[]>(levels.map((c) => [c, []]));
    const rss = new Map<number, number[]>(levels.map((c) => [c, []]));
    const idle: number[] = [];
    const stored = new Map<number, number[]>(levels.map((c) => [c, []]));
    let localStored = 0;
    for (let run = 0; run < runs; run++) {
      // Local add + commit, one file after another under one path.
      const wt = path.join(work, `local-${run}`);
      const repo = await Repository.init(wt);
      const model = path.join(wt, 'model.safetensors');
      localS.push(
        await timed(async () => {
          for (let k = 0; k < files; k++) {
            fs.copyFileSync(paths[k], model);
            await repo.add([model]);
            await repo.commit({ message: `ckpt ${k}` });
          }
        }),
      );
      localStored = 0;
      for await (const a of repo.store.list()) localStored += a.storedSize;
      await repo.close();
      fs.rmSync(wt, { recursive: true, force: true });
      // Copies were made outside the timing for the server too: the files are read straight from disk.
      for (const c of levels) {
        const root = path.join(work, `srv-${run}-${c}`);
        await initBare(path.join(root, 'llama'));
        const server = await startServer(root);
        try {
          plainS.get(c)!.push(
            await timed(async () => {
              await plainUpload(server.url, paths[0]);
              await pool(paths.slice(1), c, (f) => plainUpload(server.url, f));
            }),
          );
          const client = new CoralClient({ url: server.url, token: server.token });
          let bytesStored = 0;
          serveS.get(c)!.push(
            await timed(async () => {
              const first = await client.ingest('llama', paths[0], { path: 'model.safetensors' });
              bytesStored += first.bytes.stored;
              await pool(paths.slice(1), c, async (f) => {
                // (read the reply first: `x += await …` would add to a stale x)
                const r = await client.ingest('llama', f, { path: 'model.safetensors' });
                bytesStored += r.bytes.stored;
              });
            }),
          );
          stored.get(c)!.push(bytesStored);
          rss.get(c)!.push(server.peakRss());
          idle.push(server.idleRss);
        } finally {
          await server.stop();
          fs.rmSync(root, { recursive: true, force: true });
        }
      }
    }
    const local = median(localS);
    const rows1: Array<Record<string, string | number>> = [
      {
        case: 'local add+commit',
        clients: 1,
        'GB/s': gbps(total, local),
        'vs local': 1,
        'vs plain': NaN,
        'peak RSS MiB': NaN,
        'RSS / target': NaN,
        'above idle MiB': NaN,
        'stored MiB': localStored / MiB,
      },
    ];
    const json: Record<string, unknown> = {
      familyBytes: total,
      fileBytes,
      tensorBytes,
      runs,
      localGBps: gbps(total, local),
      localStoredBytes: localStored,
    };
    for (const c of levels) {
      const s = median(serveS.get(c)!);
      const p = median(plainS.get(c)!);
      const peak = Math.max(...rss.get(c)!);
      const target = c * (2 * tensorBytes + 256 * MiB);
      rows1.push({
        case: 'server ingest',
        clients: c,
        'GB/s': gbps(total, s),
        'vs local': local / s,
        'vs plain': p / s,
        'peak RSS MiB': peak / MiB,
        'RSS / target': peak / target,
        'above idle MiB': (peak - median(idle)) / MiB,
        'stored MiB': median(stored.get(c)!) / MiB,
      });
      rows1.push({
        case: 'plain upload',
        clients: c,
        'GB/s': gbps(total, p),
        'vs local': NaN,
        'vs plain': 1,
        'peak RSS MiB': NaN,
        'RSS / target': NaN,
        'above idle MiB': NaN,
        'stored MiB': NaN,
      });
      json[`c${c}`] = {
        serveGBps: gbps(total, s),
        plainGBps: gbps(total, p),
        vsLocal: local / s,
        vsPlain: p / s,
        peakRssBytes: peak,
        idleRssBytes: median(idle),
        rssTargetBytes: target,
        rssOverTarget: peak / target,
        storedBytes: median(stored.get(c)!),
      };
    }
    table(rows1);
    console.log(
      `targets: one client >= 0.9x local add${serveS.has(1) ? ` (got ${(local / median(serveS.get(1)!)).toFixed(2)}x)` : ''}; ` +
        `server peak RSS <= 2 x ${tensorBytes / MiB} MiB + 256 MiB per concurrent upload`,
    );
    emitJson('serve', json);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
