// The `coral publish` and `coral hub` commands end to end (the real bin), against a loopback hub.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coral, coralAsync, f32, ok, sha256, tempDirs, tmpdir, weights, writeSafetensors } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });
function repoDir(): string {
  const d = tmpdir();
  dirs.push(d);
  ok(d, ['init']);
  return d;
}

function model(file: string, seed: number): void {
  writeSafetensors(file, {
    'a.weight': { dtype: 'F32', shape: [64, 32], data: f32(weights(64 * 32, 1)) },
    'b.weight': { dtype: 'F32', shape: [64, 32], data: f32(weights(64 * 32, seed)) },
    'c.bias': { dtype: 'F32', shape: [64], data: f32(weights(64, 3)) },
  });
}

const hubFiles = new Map<string, Buffer>();
let sent = 0;
const server = http.createServer((req, res) => {
  const u = new URL(req.url!, 'http://x');
  const send = (status: number, body: Buffer, h: Record<string, string> = {}) => {
    sent += body.length;
    res.writeHead(status, { 'content-length': String(body.length), ...h });
    res.end(body);
  };
  if (/^\/api\/models\/org\/m\/tree\/main$/.test(u.pathname))
    return send(
      200,
      Buffer.from(JSON.stringify([...hubFiles].map(([p, b]) => ({ type: 'file', path: p, size: b.length, oid: 'x' })))),
    );
  const m = /^\/org\/m\/resolve\/main\/(.+)$/.exec(u.pathname);
  const f = m && hubFiles.get(decodeURIComponent(m[1]));
  if (!f) return send(404, Buffer.alloc(0));
  const r = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!r) return send(200, f);
  const a = Number(r[1]);
  const b = Math.min(Number(r[2]), f.length - 1);
  send(206, f.subarray(a, b + 1), { 'content-range': `bytes ${a}-${b}/${f.length}` });
});
let endpoint = '';
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

describe('coral publish', () => {
  it('--format hf with shards, --list, and typed refusals', () => {
    const d = repoDir();
    model(path.join(d, 'model.safetensors'), 2);
    fs.writeFileSync(path.join(d, 'config.json'), '{"a": 1}\n');
    ok(d, ['add', '.']);
    ok(d, ['commit', '-m', 'first', '--meta', 'loss=0.5']);
    const out = path.join(tmpdir(), 'pub');
    dirs.push(path.dirname(out));
    const r = JSON.parse(ok(d, ['publish', 'HEAD', '--format', 'hf', out, '--shard-size', '10KB', '--json'])) as {
      shards: number;
      files: string[];
      tensors: number;
    };
    expect(r.shards).toBe(2);
    expect(r.tensors).toBe(3);
    expect(fs.readFileSync(path.join(out, 'README.md'), 'utf8')).toMatch(/^---\n[\s\S]*metrics:\n {2}loss: 0.5\n/);
    const index = JSON.parse(fs.readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map: Record<string, string>;
    };
    expect(Object.keys(index.weight_map).sort()).toEqual(['a.weight', 'b.weight', 'c.bias']);
    const list = ok(d, ['publish', '--list']);
    expect(list).toContain(out);
    expect(list).toContain(' hf ');
    const again = coral(d, ['publish', 'HEAD', '--format', 'hf', out]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('(CORAL_INVALID_ARGUMENT)');
    const noFormat = coral(d, ['publish', 'HEAD', path.join(path.dirname(out), 'x')]);
    expect(noFormat.code).not.toBe(0);
    expect(noFormat.stderr).toContain('--format');
  });
});

describe('coral hub', () => {
  it('sidecar, then get with the base local: only the changed tensor moves; --add stages the file', async () => {
    const d = repoDir();
    model(path.join(d, 'base.safetensors'), 2);
    ok(d, ['add', 'base.safetensors']);
    ok(d, ['commit', '-m', 'base']);
    const pub = tmpdir();
    dirs.push(pub);
    model(path.join(pub, 'model.safetensors'), 9); // b.weight differs
    ok(pub, ['hub', 'sidecar', 'model.safetensors']);
    hubFiles.set('model.safetensors', fs.readFileSync(path.join(pub, 'model.safetensors')));
    hubFiles.set('model.safetensors.coral.json', fs.readFileSync(path.join(pub, 'model.safetensors.coral.json')));
    sent = 0;
    const r = await coralAsync(d, ['hub', 'get', 'org/m', '--endpoint', endpoint, '--dir', 'hub', '--add', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(r.stdout) as {
      bytesOnWire: number;
      files: { path: string; fetched: number; local: number; exact: boolean }[];
    };
    expect(rep.bytesOnWire).toBe(sent);
    expect(rep.files).toEqual([
      expect.objectContaining({ path: 'model.safetensors', fetched: 1, local: 2, exact: true }),
    ]);
    expect(sha256(path.join(d, 'hub', 'model.safetensors'))).toBe(sha256(path.join(pub, 'model.safetensors')));
    const status = JSON.parse(ok(d, ['status', '--json'])) as { files: { path: string }[] };
    expect(status.files.map((f) => f.path)).toContain('hub/model.safetensors');

    // The fetched file is now staged, so a second get takes every tensor from the store.
    const text = await coralAsync(d, ['hub', 'get', 'org/m', '--endpoint', endpoint, '--dir', 'hub2']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /model\.safetensors: .* on the wire for .* \(0 tensors fetched, 3 from the local store\)/,
    );
    const missing = await coralAsync(d, ['hub', 'get', 'org/none', '--endpoint', endpoint]);
    expect(missing.stderr).toContain('(CORAL_REMOTE_NOT_FOUND)');
  });
});
