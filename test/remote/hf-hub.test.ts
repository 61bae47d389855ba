// `hub get` against a local HF-compatible server (node:http on loopback: the tree listing API and
// /<repo>/resolve/<rev>/<file> with Range), counting the bytes the server sends: a fine-tune whose
// base is in the local store moves only the changed tensors (with a coral sidecar), byte-exact.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChecksumMismatchError, RemoteNotFoundError, RemoteUnavailableError, UnsafePathError } from '../../lib/errors';
import { hubGet, hubSidecar } from '../../lib/commands/hub';
import { readSafetensors, serializeSafetensors } from '../../lib/formats/safetensors';
import { pathGlobToRegExp as globToRegExp } from '../../lib/remote/hf-hub';
import { Repository } from '../../lib/repository';
import type { Tensor } from '../../lib/tensor/tensor';
import { expectCode, randomTensor, tmpDir } from '../formats/helpers';

interface HubRepo {
  files: Map<string, Buffer>;
}
const repos = new Map<string, HubRepo>();
let server: http.Server;
let endpoint = '';
let sent = 0;
let honourRange = true;

function serve(req: http.IncomingMessage, res: http.ServerResponse): void {
  const u = new URL(req.url!, 'http://x');
  const send = (status: number, body: Buffer, headers: Record<string, string> = {}) => {
    sent += body.length;
    res.writeHead(status, { 'content-length': String(body.length), ...headers });
    res.end(body);
  };
  const tree = /^\/api\/models\/(.+)\/tree\/([^/]+)$/.exec(u.pathname);
  if (tree) {
    const r = repos.get(decodeURIComponent(tree[1]));
    if (!r) return send(404, Buffer.from('{"error":"Repository not found"}'), { 'content-type': 'application/json' });
    const items = [...r.files].map(([p, b]) => {
      const sha = crypto.createHash('sha256').update(b).digest('hex');
      return {
        type: 'file',
        path: p,
        size: b.length,
        oid: sha.slice(0, 40),
        lfs: { oid: sha, size: b.length, pointerSize: 130 },
      };
    });
    return send(200, Buffer.from(JSON.stringify(items)), { 'content-type': 'application/json' });
  }
  const m = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
  const r = m && repos.get(m[1]);
  const file = m && r?.files.get(decodeURIComponent(m[3]));
  if (!file) return send(404, Buffer.from('not found'));
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (range && honourRange) {
    const a = Number(range[1]);
    const b = Math.min(Number(range[2]), file.length - 1);
    if (a >= file.length) return send(416, Buffer.alloc(0), { 'content-range': `bytes */${file.length}` });
    return send(206, file.subarray(a, b + 1), {
      'content-range': `bytes ${a}-${b}/${file.length}`,
      'accept-ranges': 'bytes',
    });
  }
  return send(200, file);
}

beforeAll(async () => {
  server = http.createServer(serve);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
const dirs: string[] = [];
afterAll(async () => {
  await new Promise((r) => server.close(r));
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function dir(): string {
  const d = tmpDir();
  dirs.push(d);
  return d;
}
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** A base model of 8 F32 tensors of 64 KiB and a fine-tune that changes two of them. */
function models(): { base: Buffer; tuned: Buffer; tunedTensors: Record<string, Tensor> } {
  const base: Record<string, Tensor> = {};
  for (let i = 0; i < 8; i++) base[`layers.${i}.weight`] = randomTensor('F32', [128, 128], 40 + i);
  const tuned = { ...base };
  for (const k of ['layers.2.weight', 'layers.6.weight']) {
    const t = randomTensor('F32', [128, 128], 90 + k.length);
    tuned[k] = t;
  }
  return {
    base: serializeSafetensors(base, { format: 'pt' }),
    tuned: serializeSafetensors(tuned, { format: 'pt' }),
    tunedTensors: tuned,
  };
}

async function publishToHub(name: string, file: Buffer, withSidecar: boolean): Promise<void> {
  const files = new Map<string, Buffer>([
    ['model.safetensors', file],
    ['config.json', Buffer.from('{"hidden_size": 128}\n')],
  ]);
  if (withSidecar) {
    const tmp = path.join(dir(), 'model.safetensors');
    fs.writeFileSync(tmp, file);
    files.set('model.safetensors.coral.json', Buffer.from(JSON.stringify(await hubSidecar(tmp))));
  }
  repos.set(name, { files });
}

describe('coral hub get', () => {
  it('a fine-tune whose base is local moves only the changed tensors; the file is byte-exact', async () => {
    const { base, tuned } = models();
    await publishToHub('org/tuned', tuned, true);
    await publishToHub('org/tuned-plain', tuned, false);
    const d = dir();
    const repo = await Repository.init(d);
    try {
      fs.writeFileSync(path.join(d, 'base.safetensors'), base);
      await repo.add([path.join(d, 'base.safetensors')]);
      await repo.commit({ message: 'base' });

      sent = 0;
      const r = await repo.hubGet('org/tuned', { endpoint, dir: path.join(d, 'tuned') });
      const onWire = sent;
      expect(r.bytesOnWire).toBe(onWire); // what we report is what the server sent
      const st = r.files.find((f) => f.path === 'model.safetensors')!;
      expect(st).toMatchObject({ exact: true, tensors: 8, fetched: 2, local: 6, size: tuned.length });
      expect(sha(fs.readFileSync(path.join(d, 'tuned', 'model.safetensors')))).toBe(sha(tuned));
      expect(fs.readFileSync(path.join(d, 'tuned', 'config.json'), 'utf8')).toBe('{"hidden_size": 128}\n');
      expect(fs.existsSync(path.join(d, 'tuned', 'model.safetensors.coral.json'))).toBe(false);
      // Two 64 KiB tensors + header + sidecar + listing, against a 512 KiB file.
      expect(st.bytesOnWire).toBeLessThan(2 * 65536 + 8192);
      expect(st.bytesOnWire).toBeGreaterThan(2 * 65536);

      // Without a sidecar every tensor is fetched (still by ranges; the file is still exact).
      sent = 0;
      const full = await repo.hubGet('org/tuned-plain', { endpoint, dir: path.join(d, 'plain') });
      const fst = full.files.find((f) => f.path === 'model.safetensors')!;
      expect(fst).toMatchObject({ exact: true, fetched: 8, local: 0 });
      expect(fst.bytesOnWire).toBeGreaterThanOrEqual(tuned.length);
      expect(sha(fs.readFileSync(path.join(d, 'plain', 'model.safetensors')))).toBe(sha(tuned));
      console.log(
        `hub get: fine-tune with local base ${st.bytesOnWire} bytes on the wire vs ${fst.bytesOnWire} without the sidecar (file ${tuned.length} bytes): ${(st.bytesOnWire / fst.bytesOnWire).toFixed(3)}`,
      );
    } finally {
      await repo.close();
    }
  });

  it('--tensors writes the selected tensors as a valid safetensors file, fetching only them', async () => {
    const { tuned, tunedTensors } = models();
    await publishToHub('org/sub', tuned, false);
    const d = dir();
    sent = 0;
    const r = await hubGet({ reader: null }, 'org/sub', {
      endpoint,
      dir: d,
      include: ['*.safetensors'],
      tensors: ['nothing.*', 'layers.[7].*'],
    });
    expect(r.files.map((f) => f.path)).toEqual(['model.safetensors']);
    expect(r.files[0]).toMatchObject({ exact: false, tensors: 1, fetched: 1 });
    const back = await readSafetensors(path.join(d, 'model.safetensors'));
    expect([...back.tensors.keys()]).toEqual(['layers.7.weight']);
    expect(
      Buffer.from(back.tensors.get('layers.7.weight')!.data).equals(Buffer.from(tunedTensors['layers.7.weight'].data)),
    ).toBe(true);
    expect(back.metadata).toEqual({ format: 'pt' });
    expect(r.bytesOnWire).toBeLessThan(65536 + 4096);
  });

  it('typed errors: unknown repo, a server that ignores Range, a tensor that does not match the sidecar, unsafe paths', async () => {
    const d = dir();
    await expectCode(hubGet({ reader: null }, 'org/missing', { endpoint, dir: d }), RemoteNotFoundError.code);

    const { tuned } = models();
    await publishToHub('org/norange', tuned, false);
    honourRange = false;
    try {
      await expectCode(
        hubGet({ reader: null }, 'org/norange', { endpoint, dir: d, include: ['*.safetensors'] }),
        RemoteUnavailableError.code,
      );
    } finally {
      honourRange = true;
    }

    await publishToHub('org/tampered', tuned, true);
    const t = repos.get('org/tampered')!;
    const bad = Buffer.from(tuned);
    bad[bad.length - 5] ^= 1;
    t.files.set('model.safetensors', bad);
    await expectCode(
      hubGet({ reader: null }, 'org/tampered', { endpoint, dir: path.join(d, 'tam') }),
      ChecksumMismatchError.code,
    );
    expect(fs.existsSync(path.join(d, 'tam', 'model.safetensors'))).toBe(false);

    repos.set('org/evil', { files: new Map([['../escape.json', Buffer.from('{}')]]) });
    await expectCode(hubGet({ reader: null }, 'org/evil', { endpoint, dir: d }), UnsafePathError.code);
  });

  it('globs', () => {
    expect(globToRegExp('*.safetensors').test('model.safetensors')).toBe(true);
    expect(globToRegExp('*.safetensors').test('a/model.safetensors')).toBe(false);
    expect(globToRegExp('**/*.json').test('a/b/c.json')).toBe(true);
    expect(globToRegExp('**/*.json').test('c.json')).toBe(true);
    expect(globToRegExp('layers.?.weight').test('layers.3.weight')).toBe(true);
  });
});
