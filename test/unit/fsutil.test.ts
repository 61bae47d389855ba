import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptObjectError, IoError } from '../../lib/errors';
import { exists, fsyncDir, mkdirp, readJsonFile, writeFileAtomic } from '../../lib/util/fsutil';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-fsutil-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('fsutil', () => {
  it('writeFileAtomic writes, replaces and leaves no temp files', async () => {
    const f = path.join(root, 'a.json');
    await writeFileAtomic(f, '{"x":1}');
    await writeFileAtomic(f, new Uint8Array([0x7b, 0x7d]), { mode: 0o600 });
    expect(await fsp.readFile(f, 'utf8')).toBe('{}');
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o600);
    expect(await fsp.readdir(root)).toEqual(['a.json']);
  });

  it('uses tmpDir when given', async () => {
    const tmp = path.join(root, 'tmp');
    await mkdirp(tmp);
    const f = path.join(root, 'b');
    await writeFileAtomic(f, 'hello', { tmpDir: tmp, fsync: false });
    expect(await fsp.readFile(f, 'utf8')).toBe('hello');
    expect(await fsp.readdir(tmp)).toEqual([]);
  });

  it('concurrent writers never produce a torn file', async () => {
    const f = path.join(root, 'c');
    const payloads = Array.from({ length: 20 }, (_, i) => String(i).repeat(50_000));
    await Promise.all(payloads.map((p) => writeFileAtomic(f, p, { fsync: false })));
    const got = await fsp.readFile(f, 'utf8');
    expect(payloads).toContain(got);
    expect(await fsp.readdir(root)).toEqual(['c']);
  });

  it('fails with IoError and cleans up when the directory is missing', async () => {
    await expect(writeFileAtomic(path.join(root, 'nope', 'x'), 'x')).rejects.toBeInstanceOf(IoError);
  });

  it('exists / mkdirp / fsyncDir', async () => {
    expect(await exists(path.join(root, 'd'))).toBe(false);
    await mkdirp(path.join(root, 'd', 'e', 'f'));
    await mkdirp(path.join(root, 'd', 'e', 'f'));
    expect(await exists(path.join(root, 'd', 'e', 'f'))).toBe(true);
    expect(await exists(path.join(root, 'x', 'y'))).toBe(false);
    await fsyncDir(path.join(root, 'd'));
  });

  it('readJsonFile parses and types errors', async () => {
    const f = path.join(root, 'j');
    await fsp.writeFile(f, '{"a":[1,2]}');
    expect(await readJsonFile<{ a: number[] }>(f)).toEqual({ a: [1, 2] });
    await fsp.writeFile(f, '{"a":');
    await expect(readJsonFile(f)).rejects.toBeInstanceOf(CorruptObjectError);
    await fsp.writeFile(f, Buffer.from([0x22, 0xc3, 0x22]));
    await expect(readJsonFile(f)).rejects.toBeInstanceOf(CorruptObjectError);
    const err = (await readJsonFile(path.join(root, 'missing')).catch((e: unknown) => e)) as IoError;
    expect(err).toBeInstanceOf(IoError);
    expect(err.data?.errno).toBe('ENOENT');
  });
});

describe('one writeFileAtomic and one fsyncDir (issue #12)', () => {
  it('writeFileAtomicSync writes, replaces, leaves no temp files and types errors', async () => {
    const { writeFileAtomicSync } = await import('../../lib/util/fsutil');
    const f = path.join(root, 's');
    writeFileAtomicSync(f, 'one');
    writeFileAtomicSync(f, new Uint8Array([0x32]), { mode: 0o600 });
    expect(await fsp.readFile(f, 'utf8')).toBe('2');
    expect((await fsp.stat(f)).mode & 0o777).toBe(0o600);
    expect(await fsp.readdir(root)).toEqual(['s']);
    expect(() => writeFileAtomicSync(path.join(root, 'nope', 'x'), 'x')).toThrow(IoError);
  });

  it('fsyncDir and fsyncDirSync surface real errors as IoError', async () => {
    const { fsyncDirSync } = await import('../../lib/util/fsutil');
    await expect(fsyncDir(path.join(root, 'missing'))).rejects.toBeInstanceOf(IoError);
    expect(() => fsyncDirSync(path.join(root, 'missing'))).toThrow(IoError);
    fsyncDirSync(root);
  });

  it('the similarity index, materialize and the format writers use the shared helpers', async () => {
    const fsutil = await import('../../lib/util/fsutil');
    const materialize = await import('../../lib/worktree/materialize');
    expect(materialize.fsyncDirSync).toBe(fsutil.fsyncDirSync);
    const sim = await import('../../lib/similarity/index-file');
    // Errors of the similarity index's atomic write are the shared IoError naming the file.
    expect(() => sim.writeFileAtomic(path.join(root, 'nope', 'index.csx'), new Uint8Array(1))).toThrow(
      /atomic write of .*index\.csx failed/,
    );
    const io = await import('../../lib/formats/io');
    const f = path.join(root, 'w.bin');
    await io.writeFileAtomic(f, async (sink) => sink.write(new Uint8Array([1, 2, 3])));
    expect([...(await fsp.readFile(f))]).toEqual([1, 2, 3]);
    await expect(io.writeFileAtomic(path.join(root, 'nope', 'w.bin'), async () => undefined)).rejects.toBeInstanceOf(
      IoError,
    );
    expect(await fsp.readdir(root)).toEqual(['w.bin']);
  });
});
