import { promises as fsp } from 'node:fs';
import * as zlib from 'node:zlib';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError, ObjectNotFoundError, RefNotFoundError } from '../../../lib/errors';
import { encodeCommit, encodeTag, encodeTree, sha256Hex } from '../../../lib/models';
import { MetaStore } from '../../../lib/odb/meta-store';
import { commit, tag, tree } from '../models/fixtures';

let root: string;
let meta: MetaStore;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-meta-'));
  meta = new MetaStore(path.join(root, 'objects', 'meta'), path.join(root, 'tmp'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('MetaStore', () => {
  it('puts under meta/xx/yyyy with the sha256 id and reads back verified', async () => {
    const bytes = encodeCommit(commit());
    const id = await meta.put(bytes);
    expect(id).toBe(sha256Hex(bytes));
    const file = path.join(root, 'objects', 'meta', id.slice(0, 2), id.slice(2));
    // On disk: the canonical bytes, or \0CB1 + brotli(canonical bytes) when that is smaller.
    const disk = await fsp.readFile(file);
    const stored = disk.subarray(0, 4).equals(Buffer.from([0, 0x43, 0x42, 0x31]))
      ? zlib.brotliDecompressSync(disk.subarray(4))
      : disk;
    expect(stored.equals(bytes)).toBe(true);
    expect((await meta.get(id)).equals(bytes)).toBe(true);
    expect(await meta.has(id)).toBe(true);
    expect(await meta.readCommit(id)).toEqual(commit());
    expect(await fsp.readdir(path.join(root, 'tmp'))).toEqual([]); // no temp litter
    // idempotent
    expect(await meta.put(bytes)).toBe(id);
  });

  it('rejects non-meta bytes on put', async () => {
    await expect(meta.put(Buffer.from('{"hello":1}'))).rejects.toBeInstanceOf(CorruptObjectError);
  });

  it('missing -> ObjectNotFoundError; bad id -> InvalidArgumentError', async () => {
    await expect(meta.get('0'.repeat(64))).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(meta.get('../../etc/passwd')).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(() => meta.pathOf('A'.repeat(64))).toThrow(InvalidArgumentError);
  });

  it('detects corruption and names the object; put repairs a damaged copy', async () => {
    const bytes = encodeCommit(commit());
    const id = await meta.put(bytes);
    const file = meta.pathOf(id);
    await fsp.chmod(file, 0o644);
    const bad = Buffer.from(bytes);
    bad[10] ^= 1;
    await fsp.writeFile(file, bad);
    const err = await meta.get(id).catch((e) => e);
    expect(err).toBeInstanceOf(CorruptObjectError);
    expect(err.code).toBe(CorruptObjectError.code);
    expect(err.message).toContain(id);
    expect(err.data.id).toBe(id);
    await meta.put(bytes);
    expect((await meta.get(id)).equals(bytes)).toBe(true);
  });

  it('typed readers check the type', async () => {
    const cid = await meta.put(encodeCommit(commit()));
    const tid = await meta.put(encodeTree(tree()));
    const gid = await meta.put(encodeTag(tag()));
    expect(await meta.readTree(tid)).toEqual(tree());
    expect(await meta.readTag(gid)).toEqual(tag());
    await expect(meta.readCommit(tid)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(meta.readTree(cid)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(meta.readTag(cid)).rejects.toThrow(/is a commit, not a tag/);
    expect(await meta.typeOf(gid)).toBe('tag');
  });

  it('readCommit returns copies (cache cannot be mutated)', async () => {
    const id = await meta.put(encodeCommit(commit({ parents: ['1'.repeat(64)] })));
    const a = await meta.readCommit(id);
    a.parents.push('x');
    expect((await meta.readCommit(id)).parents).toEqual(['1'.repeat(64)]);
  });

  it('lists, deletes, resolves prefixes', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) ids.push(await meta.put(encodeCommit(commit({ message: `m${i}` }))));
    await fsp.writeFile(path.join(root, 'objects', 'meta', 'junk'), 'x');
    const listed: string[] = [];
    for await (const id of meta.list()) listed.push(id);
    expect(listed.sort()).toEqual([...ids].sort());
    expect(await meta.resolvePrefix(ids[0].slice(0, 12))).toBe(ids[0]);
    expect(await meta.resolvePrefix(ids[0].slice(0, 12).toUpperCase())).toBe(ids[0]);
    expect(await meta.resolvePrefix(ids[0])).toBe(ids[0]);
    await expect(meta.resolvePrefix('abc')).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(meta.resolvePrefix('zzzz')).rejects.toBeInstanceOf(InvalidArgumentError);
    // find an ambiguous 1-hex-char-past-fanout prefix among 40 ids, if any, else craft via fan-out only
    const byFour = new Map<string, string[]>();
    for (const id of ids) byFour.set(id.slice(0, 4), [...(byFour.get(id.slice(0, 4)) ?? []), id]);
    const missing = [...Array(65536).keys()].map((n) => n.toString(16).padStart(4, '0')).find((p) => !byFour.has(p))!;
    await expect(meta.resolvePrefix(missing)).rejects.toBeInstanceOf(RefNotFoundError);
    expect(await meta.delete(ids[0])).toBe(true);
    expect(await meta.delete(ids[0])).toBe(false);
    expect(await meta.has(ids[0])).toBe(false);
  });

  it('reports ambiguous prefixes with the candidates', async () => {
    // Put objects until two share a 4-hex prefix (birthday bound: ~300 tries at most in practice).
    const seen = new Map<string, string>();
    let pair: [string, string] | null = null;
    for (let i = 0; i < 3000 && !pair; i++) {
      const id = await meta.put(encodeCommit(commit({ message: `amb ${i}` })));
      const p = id.slice(0, 4);
      if (seen.has(p)) pair = [seen.get(p)!, id];
      seen.set(p, id);
    }
    expect(pair).not.toBeNull();
    const err = await meta.resolvePrefix(pair![0].slice(0, 4)).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.data.candidates).toEqual([...pair!].sort());
    expect(err.message).toContain(pair![0]);
  });
});
