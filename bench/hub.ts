/**
 * `hub get` bytes on the wire, against a local HF-compatible server on loopback that counts what it sends.
 * A base model is committed locally; the hub holds fine-tunes of it (with a coral sidecar):
 *   partial: the last two blocks and the head retrained (the rest frozen, as in a partial fine-tune);
 *   full:    every tensor changed (a full fine-tune: nothing to skip);
 * baseline = the full file (what a plain download moves), coral = bytes the server sent for `hub get`
 * (listing, header ranges, sidecar, tensor ranges). Bytes are deterministic; times are medians of runs.
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
import type { Tensor } from '../lib/tensor/tensor';
import { argFlag, emitJson, header, median, seededBytes, table } from './lib/harness';

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
    data: seededBytes(rows * cols * 4, seed++),
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
      for (const name of ['partial', 'full']) {
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
      emitJson('hub', { quick, blocks, width, ...json });
    } finally {
      await repo.close();
    }
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
