/**
 * The git-lfs backend (`coral git install --backend lfs`, git config
 * `coral.backend lfs`): payload objects travel as git-lfs objects, so the
 * repository can live on any host that speaks LFS. Encoding, dedup and update
 * chains are unchanged (the objects are the payload store's encoded objects,
 * byte for byte); what changes is transfer:
 * - each pointer lists the git-lfs copy (`lfs <id> <sha256> <size>`) of every
 *   object the file needs, delta bases included (pointer.ts);
 * - the pre-push hook writes the pushed objects into `.git/lfs/objects/` and
 *   runs `git lfs push --object-id <remote> <oid>…` (any LFS server, or a
 *   local path with git-lfs's standalone file transfer), then drops its copies;
 * - smudge fetches a missing object by piping its git-lfs pointer through
 *   `git lfs smudge`, checks the sha256, and stores the bytes as they are
 *   (each object's header names its codec, dtype, shape and base).
 * The sha256 of each object is computed once and remembered in
 * `.git/coral/lfs-oids`.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { inspectObject } from '../codec';
import { ChecksumMismatchError, GitCommandError } from '../errors';
import type { ObjectStore } from '../store/object-store';
import type { LfsObject } from './pointer';

/** What this module needs of the payload store. */
export interface LfsStoreSide {
  readonly dir: string;
  readonly store: ObjectStore;
}

const OIDS_FILE = 'lfs-oids';

async function readOids(ps: LfsStoreSide): Promise<Map<string, LfsObject>> {
  const m = new Map<string, LfsObject>();
  const text = await fsp.readFile(path.join(ps.dir, OIDS_FILE), 'utf8').catch(() => '');
  for (const l of text.split('\n')) {
    const f = l.split(' ');
    if (f.length === 3 && /^[0-9a-f]{32}$/.test(f[0]) && /^[0-9a-f]{64}$/.test(f[1]))
      m.set(f[0], { oid: f[1], size: Number(f[2]) });
  }
  return m;
}

/** The git-lfs oid and size of each of `ids` (stored objects), computed once and remembered. */
export async function lfsObjects(ps: LfsStoreSide, ids: readonly string[]): Promise<Map<string, LfsObject>> {
  const known = await readOids(ps);
  const out = new Map<string, LfsObject>();
  const added: string[] = [];
  for (const id of ids) {
    let o = known.get(id);
    if (!o) {
      const { bytes } = await ps.store.get(id);
      o = { oid: crypto.createHash('sha256').update(bytes).digest('hex'), size: bytes.byteLength };
      known.set(id, o);
      added.push(`${id} ${o.oid} ${o.size}\n`);
    }
    out.set(id, o);
  }
  // Appends of whole short lines: concurrent writers interleave lines, never tear them.
  if (added.length) await fsp.appendFile(path.join(ps.dir, OIDS_FILE), added.join(''));
  return out;
}

/** `.git/lfs/objects/<aa>/<bb>/<oid>`: git-lfs's local object path. */
export function lfsObjectPath(commonDir: string, oid: string): string {
  return path.join(commonDir, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
}

function runLfs(
  cwd: string,
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['lfs', ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new GitCommandError(`cannot run git lfs: ${e.message}`)));
    child.on('close', (code) =>
      resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** Pushes objects to git remote `remote` through git-lfs. */
export async function lfsPush(
  ps: LfsStoreSide,
  cwd: string,
  commonDir: string,
  remote: string,
  objects: ReadonlyMap<string, LfsObject>,
): Promise<number> {
  const written: string[] = [];
  try {
    for (const [id, o] of objects) {
      const dest = lfsObjectPath(commonDir, o.oid);
      if (fs.existsSync(dest)) continue;
      const { bytes } = await ps.store.get(id);
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      await fsp.writeFile(dest, bytes);
      written.push(dest);
    }
    const oids = [...new Set([...objects.values()].map((o) => o.oid))];
    for (let i = 0; i < oids.length; i += 200) {
      const r = await runLfs(cwd, ['push', '--object-id', remote, ...oids.slice(i, i + 200)]);
      if (r.code !== 0)
        throw new GitCommandError(`git lfs push to ${remote} failed: ${r.stderr.trim() || `exit ${r.code}`}`, {
          remote,
        });
    }
    return oids.length;
  } finally {
    // The payload store keeps the objects; git-lfs's copies were only for the push.
    for (const f of written) await fsp.rm(f, { force: true });
  }
}

/**
 * Fetches the objects `ids` (whose git-lfs copies `lfs` names) that the store lacks, bases first, via
 * `git lfs smudge`; returns how many were stored.
 */
export async function lfsFetch(
  ps: LfsStoreSide,
  cwd: string,
  commonDir: string,
  pathname: string,
  lfs: ReadonlyMap<string, LfsObject>,
): Promise<number> {
  const want: Array<{ id: string; bytes: Uint8Array }> = [];
  const fetched = new Map<string, Uint8Array>();
  const get = async (id: string): Promise<Uint8Array | null> => {
    if (fetched.has(id)) return fetched.get(id)!;
    const o = lfs.get(id);
    if (!o) return null;
    const ptr = `version https://git-lfs.github.com/spec/v1\noid sha256:${o.oid}\nsize ${o.size}\n`;
    const r = await runLfs(cwd, ['smudge', '--', pathname], ptr);
    if (r.code !== 0)
      throw new GitCommandError(`git lfs smudge of ${o.oid} failed: ${r.stderr.trim()}`, { oid: o.oid });
    const got = crypto.createHash('sha256').update(r.stdout).digest('hex');
    if (got !== o.oid || r.stdout.byteLength !== o.size)
      throw new ChecksumMismatchError(`git-lfs object ${o.oid} (payload ${id}) came back as ${got}`, {
        id,
        oid: o.oid,
      });
    await fsp.rm(lfsObjectPath(commonDir, o.oid), { force: true });
    fetched.set(id, r.stdout);
    return r.stdout;
  };
  // Walk each missing object's chain down to what the store has.
  const order: string[] = [];
  const visit = async (id: string): Promise<void> => {
    if (order.includes(id) || (await ps.store.has(id))) return;
    const bytes = await get(id);
    if (!bytes) return;
    const h = inspectObject(bytes);
    if (h.id !== id) throw new ChecksumMismatchError(`git-lfs object for payload ${id} holds ${h.id}`, { id });
    if (h.baseId) await visit(h.baseId);
    order.push(id);
    want.push({ id, bytes });
  };
  for (const id of lfs.keys()) await visit(id);
  if (!want.length) return 0;
  const depth = new Map<string, number>();
  const tx = ps.store.beginWrite();
  try {
    for (const { id, bytes } of want) {
      const h = inspectObject(bytes);
      const d = h.baseId
        ? (depth.get(h.baseId) ?? Number((await ps.store.stat(h.baseId).catch(() => null))?.extra?.depth ?? 0)) + 1
        : 0;
      depth.set(id, d);
      await tx.put(id, bytes, {
        codec: h.codec,
        dtype: h.dtype,
        shape: h.shape,
        base: h.baseId ?? '',
        rawSize: h.nbytes,
        extra: { depth: String(d) },
      });
    }
    await tx.commit();
  } catch (e) {
    await tx.abort();
    throw e;
  }
  await ps.store.refresh();
  return want.length;
}
