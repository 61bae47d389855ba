/**
 * Push and clone over http:// (`coral serve` in a child process on loopback, serving a directory) against
 * the same operations over a path remote on the same disk, in the same run:
 *   push:  `Repository.push` of a checkpoint family (a base and a full fine-tune, safetensors F32) to a new
 *          repository on the server  vs  to a new bare repository by path;
 *   clone: `Repository.clone --no-checkout` of it over http  vs  by path;
 *   fine-tune push: a further fine-tune committed locally, then pushed over http: the bytes the push sent vs
 *          the stored bytes of the objects the commit added locally;
 *   the server's peak RSS (VmHWM) over the whole run, against 2 x the largest object + 256 MiB.
 * Medians of several runs. The server verifies every pushed object (decode against its base) before it
 * publishes the pack, which the path remote leaves to the pushing process: that is the price measured.
 *
 *   npx tsx bench/http-remote.ts [--quick]      (--quick: a 128 MiB family instead of 512 MiB)
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSafetensors } from '../lib/formats';
import { Repository } from '../lib/repository';
import { addToken } from '../lib/server/access';
import { initBare } from '../lib/remote/file';
import { tensor } from '../lib/tensor/tensor';
import { argFlag, emitJson, gbps, header, median, table } from './lib/harness';
import { fineTune, trainedLike } from './lib/weights';

const ROOT = path.resolve(__dirname, '..');

async function timed<T>(fn: () => Promise<T>): Promise<{ s: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { s: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

async function writeModel(file: string, ws: Float32Array[], cols: number): Promise<void> {
  const tensors: Record<string, ReturnType<typeof tensor>> = {};
  ws.forEach(
    (w, i) => (tensors[`layers.${i}.weight`] = tensor('F32', [w.length / cols, cols], new Uint8Array(w.buffer))),
  );
  await writeSafetensors(file, tensors);
}

function startServer(root: string): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [path.join(ROOT, 'bin', 'coral.js'), 'serve', root, '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.on('exit', (code) => reject(new Error(`coral serve exited ${code}`)));
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m)
        resolve({
          url: m[1],
          pid: p.pid!,
          stop: () =>
            new Promise<void>((res) => {
              p.removeAllListeners('exit');
              p.on('exit', () => res());
              p.kill('SIGTERM');
            }),
        });
    });
  });
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const familyBytes = quick ? 128 << 20 : 512 << 20;
  const runs = Number(process.env.RUNS ?? 3);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-http-'));
  const root = path.join(dir, 'srv');
  fs.mkdirSync(root);
  const { token } = await addToken({ root }, 'bench', { scope: 'write' });
  process.env.CORAL_TOKEN = token;
  const server = await startServer(root);
  try {
    header(`http remote: push / clone of a ${familyBytes >> 20} MiB checkpoint family (coral serve on loopback)`);
    const cols = 2048;
    const layers = 8;
    const rows = Math.floor(familyBytes / 2 / layers / cols / 4);
    const base = Array.from({ length: layers }, (_, i) => trainedLike(rows, cols, 100 + i));
    const ft1 = base.map((w, i) => fineTune(w, 1e-3, 200 + i, cols));
    const src = path.join(dir, 'src');
    const repo = await Repository.init(src);
    const model = path.join(src, 'model.safetensors');
    await writeModel(model, base, cols);
    await repo.add([model]);
    await repo.commit({ message: 'base' });
    await writeModel(model, ft1, cols);
    await repo.add([model]);
    await repo.commit({ message: 'fine-tune 1' });
    let largest = 0;
    for await (const a of repo.store.list()) largest = Math.max(largest, a.storedSize, a.rawSize);

    const t: Record<string, number[]> = { pathPush: [], httpPush: [], pathClone: [], httpClone: [] };
    let moved = 0;
    for (let run = 0; run < runs; run++) {
      const bare = await initBare(path.join(dir, `bare-${run}`));
      const pp = await timed(() => repo.push(bare, { refspecs: ['main'] }));
      t.pathPush.push(pp.s);
      const url = `${server.url}/r${run}`;
      const hp = await timed(() => repo.push(url, { refspecs: ['main'] }));
      t.httpPush.push(hp.s);
      moved = hp.value.bytes;
      for (const [k, from] of [
        ['pathClone', bare],
        ['httpClone', url],
      ] as const) {
        const cdir = path.join(dir, `clone-${k}-${run}`);
        const c = await timed(() => Repository.clone(from, cdir, { noCheckout: true }));
        await c.value.repository.close();
        t[k].push(c.s);
        await fsp.rm(cdir, { recursive: true, force: true });
      }
      if (run < runs - 1) {
        await fsp.rm(bare, { recursive: true, force: true });
        await fsp.rm(path.join(root, `r${run}`), { recursive: true, force: true });
      }
    }
    const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
    // Fine-tune push over http: bytes sent vs the stored bytes the commit added.
    const before = new Set<string>();
    for await (const a of repo.store.list()) before.add(a.id);
    const ft2 = ft1.map((w, i) => fineTune(w, 1e-3, 300 + i, cols));
    await writeModel(model, ft2, cols);
    await repo.add([model]);
    await repo.commit({ message: 'fine-tune 2' });
    let delta = 0;
    for await (const a of repo.store.list()) if (!before.has(a.id)) delta += a.storedSize;
    const ft = await repo.push(`${server.url}/r${runs - 1}`, { refspecs: ['main'] });
    const rss = peakRss(server.pid);
    const bound = 2 * largest + (256 << 20);
    table([
      {
        op: 'push',
        MiB: moved / 2 ** 20,
        'path GB/s': gbps(moved, m.pathPush),
        'http GB/s': gbps(moved, m.httpPush),
        ratio: m.pathPush / m.httpPush,
      },
      {
        op: 'clone',
        MiB: moved / 2 ** 20,
        'path GB/s': gbps(moved, m.pathClone),
        'http GB/s': gbps(moved, m.httpClone),
        ratio: m.pathClone / m.httpClone,
      },
      {
        op: 'fine-tune push',
        MiB: ft.objectBytes / 2 ** 20,
        'path GB/s': '-',
        'http GB/s': '-',
        ratio: ft.objectBytes / delta,
      },
    ]);
    console.log(
      `# fine-tune: ${(delta / 2 ** 20).toFixed(2)} MiB stored locally, ${(ft.objectBytes / 2 ** 20).toFixed(2)} MiB of objects sent`,
    );
    console.log(
      `# server peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB; bound 2 x largest object (${(largest / 2 ** 20).toFixed(1)} MiB) + 256 MiB = ${(bound / 2 ** 20).toFixed(0)} MiB`,
    );
    emitJson('http-remote', {
      familyBytes,
      movedBytes: moved,
      runs,
      ...m,
      pushRatio: m.pathPush / m.httpPush,
      cloneRatio: m.pathClone / m.httpClone,
      fineTuneDeltaBytes: delta,
      fineTuneSentBytes: ft.objectBytes,
      serverPeakRss: rss,
      rssBound: bound,
    });
    await repo.close();
  } finally {
    await server.stop();
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
