// Direct ingestion through a real fastify instance on loopback (the route module of
// lib/server/routes/ingest.ts with a real ServerDeps over bare repositories): uploads become commits
// that clone byte-exact, fine-tunes become deltas, concurrent uploads into one branch all land,
// idempotency keys never commit twice, and refused uploads store nothing and leave no temp file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitMetric } from '../../lib/commands/log';
import { ZipWriter } from '../../lib/formats/zip';
import { MemorySink } from '../../lib/formats/io';
import { initBare } from '../../lib/remote/file';
import { Repository } from '../../lib/repository';
import { RefStore } from '../../lib/refs/refs';
import { seriesHeads } from '../../lib/server/ingest/ingest';
import { f32, perturb, sha256, TORCH_PYTHON, weights } from '../helpers/cli';
import { family, packCount, storedObjects, writeModel } from '../remote/helpers';
import { filesUnder, ingestUrl, post, startServer, type TestServer } from './ingest-helpers';

let root = '';
let work = '';
let server: TestServer;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-serve-root-'));
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-serve-work-'));
  server = await startServer(root);
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(work, { recursive: true, force: true });
});

let counter = 0;
async function bare(): Promise<{ name: string; dir: string }> {
  const name = `r${++counter}`;
  const dir = path.join(root, name);
  await initBare(dir);
  return { name, dir };
}

/** A checkpoint of the test family as bytes (and its file). */
function model(step: number, seed = 1): { file: string; bytes: Buffer } {
  const file = path.join(work, `m-${seed}-${step}-${++counter}.safetensors`);
  writeModel(file, family(step, seed));
  return { file, bytes: fs.readFileSync(file) };
}

async function refsOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const r of await new RefStore(dir).listRefs('refs/')) out[r.name] = r.id;
  return out;
}

async function cloneOf(dir: string): Promise<Repository> {
  const dest = fs.mkdtempSync(path.join(work, 'clone-'));
  const { repository } = await Repository.clone(dir, path.join(dest, 'c'));
  return repository;
}

describe('POST /:name/ingest', () => {
  it('ingest → clone → byte-exact checkout, with metadata in log', async () => {
    const { name, dir } = await bare();
    const m0 = model(0);
    const r = await post(
      ingestUrl(server.url, name, {
        path: 'ckpt/model.safetensors',
        message: 'step 100',
        step: 100,
        'metric.loss': 0.25,
      }),
      m0.bytes,
      { 'x-coral-metadata': JSON.stringify({ run: 'a7', metrics: { acc: 0.5 } }) },
    );
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      branch: 'main',
      path: 'ckpt/model.safetensors',
      parent: null,
      duplicate: false,
      mode: 'stream',
      file: { format: 'safetensors', size: m0.bytes.byteLength, sha256: sha256(m0.file), tensors: 2 },
      bytes: { received: m0.bytes.byteLength },
    });
    expect((r.body.objects as { new: number }).new).toBe(3); // two tensors and the skeleton
    const repo = await cloneOf(dir);
    try {
      const back = fs.readFileSync(path.join(repo.worktree, 'ckpt', 'model.safetensors'));
      expect(back.equals(m0.bytes)).toBe(true);
      const [e] = await repo.log();
      expect(e.id).toBe(r.body.commit);
      expect(e.commit.message).toBe('step 100\n');
      expect(e.commit.metadata.step).toBe(100);
      expect(e.commit.metadata.run).toBe('a7');
      expect(commitMetric(e.commit, 'loss')).toBe(0.25);
      expect(commitMetric(e.commit, 'acc')).toBe(0.5);
      expect((await repo.fsck()).ok).toBe(true);
    } finally {
      await repo.close();
    }
    expect(filesUnder(server.tmpDir)).toEqual([]);
    // Metrics were recorded on the registry.
    const text = await server.deps.metrics.metrics();
    expect(text).toMatch(/coral_ingest_received_bytes_total \d+/);
    expect(text).toMatch(/coral_ingest_duration_seconds_count\{outcome="ok"\} \d+/);
  });

  it('a fine-tune is stored as deltas against the previous version at the same path', async () => {
    const { name, dir } = await bare();
    const base = model(0, 3);
    const tuned = model(1, 3);
    const r0 = await post(ingestUrl(server.url, name, { path: 'model.safetensors' }), base.bytes);
    expect(r0.status).toBe(201);
    const before = await storedObjects(dir);
    const r1 = await post(ingestUrl(server.url, name, { path: 'model.safetensors', branch: 'main' }), tuned.bytes);
    expect(r1.status).toBe(201);
    expect(r1.body.parent).toBe(r0.body.commit);
    const objs = r1.body.objects as { new: number; delta: number; deduplicated: number };
    expect(objs.delta).toBe(2);
    // Stored bytes: what the store grew by, far below the file's size.
    const after = await storedObjects(dir);
    let grown = 0;
    for (const [id, size] of after) if (!before.has(id)) grown += size;
    expect((r1.body.bytes as { stored: number }).stored).toBe(grown);
    expect(grown).toBeLessThan(tuned.bytes.byteLength / 2);
    const repo = await cloneOf(dir);
    try {
      expect(fs.readFileSync(path.join(repo.worktree, 'model.safetensors')).equals(tuned.bytes)).toBe(true);
      await repo.checkout(r0.body.commit as string);
      expect(fs.readFileSync(path.join(repo.worktree, 'model.safetensors')).equals(base.bytes)).toBe(true);
    } finally {
      await repo.close();
    }
  });

  it('16 concurrent ingests into one branch: 16 commits, every file byte-exact, fsck clean', async () => {
    const { name, dir } = await bare();
    const files = Array.from({ length: 16 }, (_, i) => model(i % 4, 10 + i));
    const replies = await Promise.all(
      files.map((f, i) =>
        post(ingestUrl(server.url, name, { path: `ckpt/m${i}.safetensors`, step: i }), f.bytes, {
          'idempotency-key': `conc-${i}`,
        }),
      ),
    );
    for (const r of replies) expect(r.status).toBe(201);
    const ids = new Set(replies.map((r) => r.body.commit));
    expect(ids.size).toBe(16);
    const repo = await cloneOf(dir);
    try {
      const log = await repo.log({ firstParent: true });
      expect(log.length).toBe(16);
      expect(new Set(log.map((e) => e.id))).toEqual(ids);
      files.forEach((f, i) =>
        expect(fs.readFileSync(path.join(repo.worktree, 'ckpt', `m${i}.safetensors`)).equals(f.bytes)).toBe(true),
      );
      expect((await repo.fsck()).ok).toBe(true);
    } finally {
      await repo.close();
    }
  });

  it('a series under one path finds its delta bases in the series heads, past the chain-depth bound and with concurrent uploads', async () => {
    const { name, dir } = await bare();
    // Tensors of 4 MiB: pooled buffers, so a head given back too early would read as empty.
    let w = weights(1 << 20, 71);
    let b = weights(1024, 72);
    const versions: Buffer[] = [];
    const next = () => {
      w = perturb(w, 100 + versions.length, 1e-3);
      b = perturb(b, 200 + versions.length, 1e-3);
      const file = path.join(work, `series-${versions.length}-${++counter}.safetensors`);
      writeModel(file, { 'layer.weight': w, 'layer.bias': b });
      versions.push(fs.readFileSync(file));
      return versions[versions.length - 1];
    };
    const url = ingestUrl(server.url, name, { path: 'model.safetensors' });
    const hits0 = seriesHeads.stats.hits;
    // Eleven versions one after another: past core.maxChainDepth (8), where each new version is encoded
    // against its predecessor's base.
    const commits: string[] = [];
    for (let i = 0; i < 11; i++) {
      const r = await post(url, next());
      expect(r.status).toBe(201);
      if (i > 0) expect((r.body.objects as { delta: number }).delta).toBe(2);
      commits.push(r.body.commit as string);
    }
    // Every version after the first found both bases in memory.
    expect(seriesHeads.stats.hits - hits0).toBe(20);
    // Four concurrent uploads of the next versions: each one's base is whatever head it finds, heads
    // are replaced while others read them, and every commit still checks out byte-exact.
    const conc = [next(), next(), next(), next()];
    const rs = await Promise.all(conc.map((m) => post(url, m)));
    for (const r of rs) expect(r.status).toBe(201);
    const repo = await cloneOf(dir);
    try {
      expect((await repo.fsck()).ok).toBe(true);
      const all = [
        ...commits.map((c, i) => [c, versions[i]] as const),
        ...rs.map((r, i) => [r.body.commit as string, conc[i]] as const),
      ];
      for (const [c, bytes] of all) {
        await repo.checkout(c);
        expect(fs.readFileSync(path.join(repo.worktree, 'model.safetensors')).equals(bytes)).toBe(true);
      }
    } finally {
      await repo.close();
    }
  });

  it('a retry with the same idempotency key makes one commit', async () => {
    const { name, dir } = await bare();
    const m = model(2, 4);
    const url = ingestUrl(server.url, name, { path: 'a.safetensors' });
    const first = await post(url, m.bytes, { 'idempotency-key': 'job-1' });
    expect(first.status).toBe(201);
    const again = await post(url, m.bytes, { 'idempotency-key': 'job-1' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ commit: first.body.commit, duplicate: true });
    // Concurrent retries with one key: still one commit.
    const m2 = model(3, 4);
    const url2 = ingestUrl(server.url, name, { path: 'b.safetensors' });
    const rs = await Promise.all([1, 2, 3].map(() => post(url2, m2.bytes, { 'idempotency-key': 'job-2' })));
    expect(new Set(rs.map((r) => r.body.commit)).size).toBe(1);
    expect(rs.filter((r) => r.status === 201).length).toBe(1);
    const refs = await refsOf(dir);
    const repo = await cloneOf(dir);
    try {
      expect((await repo.log()).length).toBe(2);
      expect(refs['refs/heads/main']).toBe(rs[0].body.commit);
    } finally {
      await repo.close();
    }
  });

  it('refuses bad uploads with the right status and JSON body, storing nothing', async () => {
    const { name, dir } = await bare();
    const ok = await post(ingestUrl(server.url, name, { path: 'base.safetensors' }), model(0, 5).bytes);
    expect(ok.status).toBe(201);
    const good = model(1, 5).bytes;
    const hdr = (json: object): Buffer => {
      const j = Buffer.from(JSON.stringify(json));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(j.length));
      return Buffer.concat([len, j]);
    };
    const evilPt = await (async () => {
      const sink = new MemorySink();
      const zw = new ZipWriter(sink);
      await zw.add('archive/data.pkl', Buffer.from('\x80\x02cos\nsystem\nX\x02\x00\x00\x00idx\x85R.', 'latin1'));
      await zw.add('archive/version', Buffer.from('3\n'));
      await zw.finish();
      return sink.toBuffer();
    })();
    const cases: Array<{
      what: string;
      body: Buffer | Buffer[];
      path?: string;
      status: number;
      code: string;
      chunked?: boolean;
    }> = [
      {
        what: 'truncated (chunked)',
        body: [good.subarray(0, good.length >> 1)],
        chunked: true,
        status: 400,
        code: 'CORAL_FORMAT',
      },
      { what: 'trailing bytes', body: Buffer.concat([good, Buffer.from('xx')]), status: 400, code: 'CORAL_FORMAT' },
      {
        what: 'not safetensors',
        body: Buffer.from('hello, I am not a checkpoint at all'),
        status: 400,
        code: 'CORAL_FORMAT',
      },
      {
        what: 'offsets past the end',
        body: Buffer.concat([hdr({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 1 << 30] } }), Buffer.alloc(16)]),
        status: 400,
        code: 'CORAL_FORMAT',
      },
      {
        what: 'huge shape',
        body: Buffer.concat([
          hdr({ w: { dtype: 'F32', shape: [1 << 30, 1 << 30, 1 << 30], data_offsets: [0, 16] } }),
          Buffer.alloc(16),
        ]),
        status: 413,
        code: 'CORAL_LIMIT_EXCEEDED',
      },
      {
        what: 'overlapping tensors',
        body: Buffer.concat([
          hdr({
            a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
            b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
          }),
          Buffer.alloc(24),
        ]),
        status: 400,
        code: 'CORAL_FORMAT',
      },
      {
        what: 'tensor over the size limit',
        // Chunked: the header alone decides, before any payload arrives.
        body: [hdr({ w: { dtype: 'F32', shape: [16 << 20], data_offsets: [0, 64 << 20] } })],
        chunked: true,
        status: 413,
        code: 'CORAL_LIMIT_EXCEEDED',
      },
      { what: 'evil pickle', body: evilPt, path: 'evil.pt', status: 400, code: 'CORAL_UNSAFE_PICKLE' },
      {
        what: 'garbage .pt',
        body: Buffer.from('PK\x03\x04 not really a zip file'),
        path: 'x.pt',
        status: 400,
        code: 'CORAL_FORMAT',
      },
      {
        what: 'body over the limit (chunked)',
        body: Array.from({ length: 70 }, () => Buffer.alloc(1 << 20, 7)),
        path: 'big.bin',
        chunked: true,
        status: 413,
        code: 'CORAL_LIMIT_EXCEEDED',
      },
    ];
    const packs0 = packCount(dir);
    const objects0 = [...(await storedObjects(dir)).keys()].sort();
    const refs0 = await refsOf(dir);
    for (const c of cases) {
      const r = await post(
        ingestUrl(server.url, name, { path: c.path ?? 'bad.safetensors' }),
        c.body,
        {},
        { chunked: c.chunked },
      );
      expect({ what: c.what, status: r.status, code: r.body.error?.code }).toEqual({
        what: c.what,
        status: c.status,
        code: c.code,
      });
      expect(typeof r.body.error?.message).toBe('string');
    }
    expect(packCount(dir)).toBe(packs0);
    expect([...(await storedObjects(dir)).keys()].sort()).toEqual(objects0);
    expect(await refsOf(dir)).toEqual(refs0);
    expect(filesUnder(server.tmpDir)).toEqual([]);
    expect(filesUnder(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('answers 413 from Content-Length alone, and survives a client that hangs up mid-upload', async () => {
    const { name, dir } = await bare();
    const refs0 = await refsOf(dir);
    const u = new URL(ingestUrl(server.url, name, { path: 'm.safetensors' }));
    const raw = (headers: string, body: Buffer, end: boolean) =>
      new Promise<string>((resolve) => {
        const s = net.connect(Number(u.port), u.hostname, () => {
          s.write(
            `POST ${u.pathname}${u.search} HTTP/1.1\r\nhost: x\r\ncontent-type: application/octet-stream\r\n${headers}\r\n`,
          );
          s.write(body);
          if (end) s.end();
        });
        let got = '';
        s.on('data', (d) => (got += d.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(got));
      });
    const big = await raw(`content-length: ${100 << 20}\r\n`, Buffer.alloc(1000), false);
    expect(big).toMatch(/^HTTP\/1.1 413/);
    expect(big).toContain('CORAL_LIMIT_EXCEEDED');
    // Declares the whole file, sends half, hangs up: nothing is committed, no temp file left.
    const m = model(0, 6).bytes;
    await raw(`content-length: ${m.length}\r\n`, m.subarray(0, m.length >> 1), true);
    const after = await post(ingestUrl(server.url, name, { path: 'ok.safetensors' }), m);
    expect(after.status).toBe(201);
    expect(after.body.parent).toBe(null);
    expect(Object.keys(refs0)).toEqual([]);
    expect(filesUnder(server.tmpDir)).toEqual([]);
  });

  it('.pt made by torch and .npy uploads round-trip byte-exact', async () => {
    const { name, dir } = await bare();
    const pt = path.join(work, 'torch.pt');
    const npy = path.join(work, 'arr.npy');
    const evil = path.join(work, 'evil.pt');
    const out = spawnSync(
      TORCH_PYTHON,
      [
        '-c',
        `import torch, numpy as np, sys
torch.manual_seed(0)
sd = {"fc.weight": torch.randn(64, 32), "fc.bias": torch.randn(64), "emb": torch.randn(100, 16).half()}
torch.save(sd, sys.argv[1])
np.save(sys.argv[2], np.arange(4096, dtype=np.float32).reshape(64, 64))
import os
class Evil:
    def __reduce__(self):
        return (os.system, ("true",))
torch.save({"w": torch.zeros(4), "payload": Evil()}, sys.argv[3])`,
        pt,
        npy,
        evil,
      ],
      { encoding: 'utf8' },
    );
    expect(out.status, out.stderr).toBe(0);
    const rp = await post(ingestUrl(server.url, name, { path: 'w/model.pt' }), fs.readFileSync(pt));
    expect(rp.status).toBe(201);
    expect(rp.body).toMatchObject({ mode: 'spool', file: { format: 'pytorch', tensors: 3 } });
    const rn = await post(ingestUrl(server.url, name, { path: 'w/arr.npy' }), fs.readFileSync(npy));
    expect(rn.status).toBe(201);
    expect(rn.body).toMatchObject({ file: { format: 'npy', tensors: 1 } });
    // A pickle made by torch.save that would run os.system on load: refused, nothing stored.
    const packs = packCount(dir);
    const re = await post(ingestUrl(server.url, name, { path: 'w/evil.pt' }), fs.readFileSync(evil));
    expect(re).toMatchObject({ status: 400, body: { error: { code: 'CORAL_UNSAFE_PICKLE' } } });
    expect(packCount(dir)).toBe(packs);
    const repo = await cloneOf(dir);
    try {
      expect(fs.existsSync(path.join(repo.worktree, 'w', 'evil.pt'))).toBe(false);
      expect(sha256(path.join(repo.worktree, 'w', 'model.pt'))).toBe(sha256(pt));
      expect(sha256(path.join(repo.worktree, 'w', 'arr.npy'))).toBe(sha256(npy));
      expect((await repo.fsck()).ok).toBe(true);
    } finally {
      await repo.close();
    }
    expect(filesUnder(server.tmpDir)).toEqual([]);
  });

  it('refuses unauthorized writes, bad paths and a shut-down server', async () => {
    const { name } = await bare();
    const m = model(0, 7).bytes;
    const denied = await post(ingestUrl(server.url, name, { path: 'm.safetensors' }), m, { 'x-test-deny': '1' });
    expect(denied.status).toBe(401);
    const badPath = await post(ingestUrl(server.url, name, { path: '../escape.safetensors' }), m);
    expect(badPath).toMatchObject({ status: 400, body: { error: { code: 'CORAL_INVALID_ARGUMENT' } } });
    const noPath = await post(`${server.url}/${name}/ingest`, m);
    expect(noPath).toMatchObject({ status: 400, body: { error: { code: 'CORAL_INVALID_ARGUMENT' } } });
    // A new name is created, as a push to it would be.
    const fresh = await post(ingestUrl(server.url, `${name}-new`, { path: 'm.safetensors' }), m);
    expect(fresh.status).toBe(201);
    const badMeta = await post(ingestUrl(server.url, name, { path: 'm.safetensors' }), m, {
      'x-coral-metadata': '{nope',
    });
    expect(badMeta).toMatchObject({ status: 400, body: { error: { code: 'CORAL_INVALID_ARGUMENT' } } });
    const badKey = await post(ingestUrl(server.url, name, { path: 'm.safetensors' }), m, { 'idempotency-key': 'a b' });
    expect(badKey).toMatchObject({ status: 400, body: { error: { code: 'CORAL_INVALID_ARGUMENT' } } });
    const other = await startServer(root);
    other.abort.abort();
    const down = await post(ingestUrl(other.url, name, { path: 'm.safetensors' }), m);
    expect(down).toMatchObject({ status: 503, body: { error: { code: 'CORAL_REMOTE_UNAVAILABLE' } } });
    await other.close();
    void f32;
  });

  it('a shutdown aborts an upload in flight: 503, nothing stored, no temp file', async () => {
    const { name, dir } = await bare();
    const other = await startServer(root);
    try {
      const m = model(0, 8).bytes;
      const packs0 = packCount(dir);
      const u = new URL(ingestUrl(other.url, name, { path: 'm.safetensors' }));
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname + u.search,
            method: 'POST',
            headers: { 'content-length': String(m.length) },
          },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        // Half the body, then the server shuts down while it waits for the rest.
        req.write(m.subarray(0, m.length >> 1), () => setTimeout(() => other.abort.abort(), 100));
      });
      expect(reply.status).toBe(503);
      expect((JSON.parse(reply.body) as { error: { code: string } }).error.code).toBe('CORAL_REMOTE_UNAVAILABLE');
      expect(packCount(dir)).toBe(packs0);
      expect(await refsOf(dir)).toEqual({});
      expect(filesUnder(other.tmpDir)).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
