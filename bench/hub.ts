/**
 * Downloads of a fine-tune whose base is already local: bytes on the wire against the full file, from two
 * sources in one run.
 * - `hub get` from a local HF-compatible server on loopback that counts what it sends. A base model is
 *   committed locally; the hub holds fine-tunes of it (with a coral sidecar). Bytes = what the server sent
 *   (listing, header ranges, sidecar, tensor ranges).
 * - `fetch` from a `coral serve` registry (lib/server, in this process, on loopback, serving a temp root):
 *   the base is pushed and cloned, the fine-tune pushed by the publisher, and the clone fetches it. Bytes =
 *   the server's own count of bytes written to its sockets for those requests (`coral_http_sent_bytes_total`
 *   of /metrics, every route but /metrics itself: refs, negotiation batches, meta objects, object bodies,
 *   HTTP headers), next to the fetch's `objectBytes` (the stored delta it received).
 * The fine-tunes:
 *   partial: the last two blocks and the head retrained (the rest frozen, as in a partial fine-tune);
 *   full:    every tensor replaced (nothing to skip, nothing to delta against);
 *   tuned:   every tensor moved by one small optimizer step (nothing to skip, but every tensor a small delta);
 * baseline = the full file (what a plain download moves). Bytes are deterministic; times are medians of runs.
 *
 *   npx tsx bench/hub.ts [--quick]
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { hubSidecar } from '../lib/commands/hub';
import { serializeSafetensors } from '../lib/formats/safetensors';
import { Repository } from '../lib/repository';
import { startServer } from '../lib/server';
import { addToken } from '../lib/server/access';
import type { Tensor } from '../lib/tensor/tensor';
import { argFlag, emitJson, header, median, seededBytes, table } from './lib/harness';
import { bytesOf, fineTune, trainedLike } from './lib/weights';

async function main(): Promise<void> {
  const quick = argFlag('quick');
  const blocks = quick ? 4 : 12;
  const width = quick ? 256 : 512;
  const runs = quick ? 2 : 3;
  const base: Record<string, Tensor> = {};
  let seed = 1;
  const t = (rows: number, cols: number): Tensor => ({
    dtype: 'F32',
    shape: [rows, cols],
    data: bytesOf(trainedLike(rows, cols, seed++)),
  });
  for (let b = 0; b < blocks; b++) {
    base[`blocks.${b}.attn.weight`] = t(width, width * 3);
    base[`blocks.${b}.mlp.up.weight`] = t(width * 4, width);
    base[`blocks.${b}.mlp.down.weight`] = t(width, width * 4);
  }
  base['head.weight'] = t(1000, width);
  const partial = { ...base };
  for (const k of Object.keys(base))
    if (k.startsWith(`blocks.${blocks - 1}.`) || k.startsWith(`blocks.${blocks - 2}.`) || k === 'head.weight')
      partial[k] = { ...base[k], data: seededBytes(base[k].data.byteLength, seed++) };
  const full: Record<string, Tensor> = {};
  for (const k of Object.keys(base)) full[k] = { ...base[k], data: seededBytes(base[k].data.byteLength, seed++) };
  // tuned: every tensor moved by one small optimizer step (a full fine-tune seen up close): no tensor is
  // identical, so hub get moves the whole file, while a coral registry sends each tensor as a delta.
  const tuned: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(base)) {
    const w = new Float32Array(v.data.buffer.slice(v.data.byteOffset, v.data.byteOffset + v.data.byteLength));
    tuned[k] = { ...v, data: bytesOf(fineTune(w, 1e-3, seed++, v.shape[1])) };
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-hub-'));
  const files = new Map<string, Buffer>();
  const put = async (name: string, tensors: Record<string, Tensor>) => {
    const bytes = serializeSafetensors(tensors, { format: 'pt' });
    const p = path.join(dir, `${name.replace('/', '-')}.safetensors`);
    fs.writeFileSync(p, bytes);
    files.set(`${name}/model.safetensors`, bytes);
    files.set(`${name}/model.safetensors.coral.json`, Buffer.from(JSON.stringify(await hubSidecar(p))));
    fs.rmSync(p);
  };
  await put('org/partial', partial);
  await put('org/full', full);
  await put('org/tuned', tuned);
  let sent = 0;
  const server = http.createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    const send = (status: number, body: Buffer, h: Record<string, string> = {}) => {
      sent += body.length;
      res.writeHead(status, { 'content-length': String(body.length), ...h });
      res.end(body);
    };
    const tree = /^\/api\/models\/(.+)\/tree\/[^/]+$/.exec(u.pathname);
    if (tree) {
      const items = [...files]
        .filter(([k]) => k.startsWith(`${tree[1]}/`))
        .map(([k, b]) => ({ type: 'file', path: k.slice(tree[1].length + 1), size: b.length, oid: '0' }));
      return send(200, Buffer.from(JSON.stringify(items)));
    }
    const m = /^\/(.+?\/.+?)\/resolve\/[^/]+\/(.+)$/.exec(u.pathname);
    const f = m && files.get(`${m[1]}/${m[2]}`);
    if (!f) return send(404, Buffer.alloc(0));
    const r = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!r) return send(200, f);
    const a = Number(r[1]);
    const b = Math.min(Number(r[2]), f.length - 1);
    send(206, f.subarray(a, b + 1), { 'content-range': `bytes ${a}-${b}/${f.length}` });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const repoDir = path.join(dir, 'repo');
    const repo = await Repository.init(repoDir);
    try {
      fs.writeFileSync(path.join(repoDir, 'base.safetensors'), serializeSafetensors(base, { format: 'pt' }));
      await repo.add([path.join(repoDir, 'base.safetensors')]);
      await repo.commit({ message: 'base' });
      header(
        `hub get: ${blocks} blocks, ${(files.get('org/partial/model.safetensors')!.length / 2 ** 20).toFixed(1)} MiB file, base committed locally`,
      );
      const rows: Array<Record<string, string | number>> = [];
      const json: Record<string, unknown> = {};
      for (const name of ['partial', 'full', 'tuned']) {
        const size = files.get(`org/${name}/model.safetensors`)!.length;
        const times: number[] = [];
        let wire = 0;
        for (let i = 0; i < runs; i++) {
          const out = path.join(dir, `${name}-${i}`);
          sent = 0;
          const t0 = process.hrtime.bigint();
          await repo.hubGet(`org/${name}`, { endpoint, dir: out });
          times.push(Number(process.hrtime.bigint() - t0) / 1e9);
          wire = sent;
          fs.rmSync(out, { recursive: true, force: true });
        }
        rows.push({
          'fine-tune': name,
          'baseline bytes (full file)': size,
          'coral bytes on wire': wire,
          ratio: wire / size,
          'coral s (median)': median(times),
        });
        json[name] = { fileBytes: size, wireBytes: wire, ratio: wire / size, seconds: median(times) };
      }
      table(rows);
      const serve = await registryFetch(dir, base, { partial, full, tuned }, runs);
      header('fetch from a coral serve registry: the base cloned, the fine-tune pushed by another repository');
      table(
        Object.entries(serve).map(([name, r]) => ({
          'fine-tune': name,
          'baseline bytes (full file)': r.fileBytes,
          'coral bytes on wire': r.wireBytes,
          ratio: r.ratio,
          'stored delta received': r.objectBytes,
          'hub get bytes (same file)': (json[name] as { wireBytes: number }).wireBytes,
          'fetch s (median)': r.seconds,
        })),
      );
      emitJson('hub', { quick, blocks, width, ...json, serve });
    } finally {
      await repo.close();
    }
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface RegistryFigures {
  fileBytes: number;
  wireBytes: number;
  ratio: number;
  objectBytes: number;
  seconds: number;
}

/** Bytes the server wrote to its sockets so far, over every route but /metrics. */
async function sentBytes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^coral_http_sent_bytes_total\{route="([^"]*)"\} (\d+(?:\.\d+)?(?:e\+?\d+)?)$/gm))
    if (m[1] !== '/metrics') n += Number(m[2]);
  return n;
}

async function registryFetch(
  dir: string,
  base: Record<string, Tensor>,
  fineTunes: Record<string, Record<string, Tensor>>,
  runs: number,
): Promise<Record<string, RegistryFigures>> {
  const root = path.join(dir, 'registry');
  fs.mkdirSync(root);
  const { token } = await addToken({ root }, 'bench', { scope: 'write' });
  const saved = process.env.CORAL_TOKEN;
  process.env.CORAL_TOKEN = token;
  const server = await startServer({ root });
  const out: Record<string, RegistryFigures> = {};
  try {
    const url = server.url!;
    for (const [name, tensors] of Object.entries(fineTunes)) {
      const remote = `${url}/${name}`;
      const pubDir = path.join(dir, `publisher-${name}`);
      const pub = await Repository.init(pubDir);
      let fileBytes = 0;
      try {
        const file = path.join(pubDir, 'model.safetensors');
        fs.writeFileSync(file, serializeSafetensors(base, { format: 'pt' }));
        await pub.add([file]);
        await pub.commit({ message: 'base' });
        await pub.push(remote, { refspecs: ['main'] });
        const clones: Repository[] = [];
        for (let i = 0; i < runs; i++)
          clones.push((await Repository.clone(remote, path.join(dir, `clone-${name}-${i}`))).repository);
        const ft = serializeSafetensors(tensors, { format: 'pt' });
        fileBytes = ft.length;
        fs.writeFileSync(file, ft);
        await pub.add([file]);
        await pub.commit({ message: `fine-tune (${name})` });
        await pub.push(remote, { refspecs: ['main'] });
        const times: number[] = [];
        let wire = 0;
        let objectBytes = 0;
        for (const c of clones) {
          try {
            const before = await sentBytes(url);
            const t0 = process.hrtime.bigint();
            const r = await c.fetch('origin');
            times.push(Number(process.hrtime.bigint() - t0) / 1e9);
            wire = (await sentBytes(url)) - before;
            objectBytes = r.objectBytes;
          } finally {
            await c.close();
          }
        }
        out[name] = { fileBytes, wireBytes: wire, ratio: wire / fileBytes, objectBytes, seconds: median(times) };
      } finally {
        await pub.close();
      }
    }
  } finally {
    await server.close();
    if (saved === undefined) delete process.env.CORAL_TOKEN;
    else process.env.CORAL_TOKEN = saved;
  }
  return out;
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
