/**
 * The payload store of a git repository: a coral object store inside the
 * repository's common git directory (`.git/coral/`, shared by every linked
 * worktree), plus clean (file bytes -> pointer text, payloads stored) and
 * smudge (pointer -> file bytes, sha256-checked).
 *
 * It is the repository core without commits or refs: the same HDF5 packs
 * (lib/store), object reader and writer with dedup, codec choice and chain
 * bounds (lib/odb), ingestion (lib/ingest) and re-assembly
 * (lib/worktree/materialize). Writers run inside writer sessions, so
 * `coral git gc` never deletes an object a clean is about to rely on.
 *
 * Update chains: each group is offered its previous version (the same-named
 * group of the file's previous pointer, else an unclaimed group of the same
 * dtype and shape: a rename) or that version's anchor, the whole value its
 * chain starts from, as a delta base, whichever a probe of a chunk or two
 * says pays (anchors.ts: the anchor is one decode, the previous version its
 * whole chain). The codec keeps the smallest of the whole value and every
 * lossless update (sparse, ordered/xor/exponent deltas). After
 * `coral.maxChainLength` updates since the last whole value (core.maxChainDepth
 * of the store, default 8) the group is stored whole again.
 *
 * @example
 * const ps = await openPayloads(await gitDirs(process.cwd()));
 * const { text } = await cleanFile(ps, 'model.safetensors', spoolPath, previousPointer);
 * for await (const chunk of smudgeChunks(ps, parsePointer(text))) process.stdout.write(chunk);
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { withWriter, type RepoContext } from '../context';
import { ChecksumMismatchError, ObjectNotFoundError } from '../errors';
import { ingestFile, SKELETON_NAME, type BaseQuery, type IngestReport } from '../ingest/ingest';
import { RepoLayout } from '../layout';
import type { FileEntry } from '../models/tree';
import { ObjectReader } from '../odb/objects';
import { Config } from '../refs/config';
import { openLocalStore } from '../store';
import type { ObjectStore } from '../store/object-store';
import type { Tensor } from '../tensor/tensor';
import { fileChunks } from '../worktree/materialize';
import { anchorFor, chooseBase, UPDATES_ATTR } from './anchors';
import { lowRankBases } from './lowrank';
import { formatPointer, storageOf, type Pointer, type Storage } from './pointer';
import { gitConfig, type GitDirs } from './gitcmd';
import { lfsObjects } from './lfs';

/** The payload directory inside a common git dir. */
export const PAYLOAD_DIR = 'coral';

/**
 * Base cache of a filter process (`streaming`). Clean and smudge walk each group's chain once, so
 * cached links and remembered groups are never asked for again; held in the cache they would only keep
 * their buffers from going back to the native pool, and on a VM a fresh 16 MiB mapping costs tens of
 * milliseconds of page zeroing. Small groups (up to 1/16 of this) are still remembered.
 */
const STREAMING_CACHE_BYTES = 32 << 20;

/** The payload store of one git repository (the parts of a repository context the core needs). */
export interface Payloads extends Pick<RepoContext, 'layout' | 'store' | 'reader' | 'config'> {
  /** `<common git dir>/coral`. */
  readonly dir: string;
  readonly dirs: GitDirs;
  /** Scratch space for spooled input and decoded files (same filesystem as the store). */
  readonly tmp: string;
  /** Where payloads travel: coral remotes (default), or git-lfs (git config `coral.backend lfs`). */
  readonly backend: 'coral' | 'lfs';
  close(): Promise<void>;
}

/**
 * Opens (creating on first use) the payload store of the repository. A git
 * config `coral.maxChainLength` is mirrored into the store's chain bound;
 * `opts.backend`: git config `coral.backend`, when the caller read it already.
 */
export async function openPayloads(
  dirs: GitDirs,
  opts: { maxChainLength?: number; streaming?: boolean; backend?: 'coral' | 'lfs' } = {},
): Promise<Payloads> {
  const dir = path.join(dirs.commonDir, PAYLOAD_DIR);
  const backend =
    opts.backend ?? ((await gitConfig(dirs.worktree || dirs.commonDir, 'coral.backend')) === 'lfs' ? 'lfs' : 'coral');
  const layout = new RepoLayout(dirs.worktree || dirs.commonDir, dir);
  await fsp.mkdir(layout.tmp, { recursive: true });
  const config = await Config.load(dir);
  if (opts.maxChainLength !== undefined && config.getNumber('core.maxChainDepth') !== opts.maxChainLength)
    await config.set('core.maxChainDepth', opts.maxChainLength);
  const store: ObjectStore = await openLocalStore(dir);
  const cacheBytes: number = config.getNumber('core.baseCacheBytes') ?? 256 << 20;
  const reader = opts.streaming
    ? new ObjectReader(store, Math.min(cacheBytes, STREAMING_CACHE_BYTES), { cacheBases: false })
    : new ObjectReader(store, cacheBytes);
  return {
    dir,
    dirs,
    layout,
    store,
    reader,
    config,
    tmp: layout.tmp,
    backend,
    close: () => store.close(),
  };
}

/** A fresh scratch path in the payload store's tmp/ (keeps `name`'s extension: format detection reads it). */
export function scratchPath(ps: Pick<Payloads, 'tmp'>, what: string, name = ''): string {
  const ext = path.extname(name).replace(/[^A-Za-z0-9.]/g, '');
  return path.join(ps.tmp, `git-${what}-${process.pid}-${crypto.randomBytes(6).toString('hex')}${ext}`);
}

/** How every object a file entry names is stored (from the store's attributes). */
export async function storageMap(ps: Pick<Payloads, 'reader'>, entry: FileEntry): Promise<Map<string, Storage>> {
  const out = new Map<string, Storage>();
  for (const id of [entry.skeleton, ...entry.segments.map((s) => s.object)]) {
    if (out.has(id)) continue;
    const info = await ps.reader.info(id);
    // A residual on LOW_RANK factors (lowrank.ts) is a low-rank update of the group's previous version.
    const onFactors = info.base !== null && (await ps.reader.info(info.base)).codec === 'LOW_RANK';
    out.set(
      id,
      onFactors ? { kind: 'low-rank', codec: info.codec, base: info.base } : storageOf(info.codec, info.base),
    );
  }
  return out;
}

/**
 * The delta-base proposal of a file's previous version: for a group, the same-named group (same dtype
 * and shape), else a group of that dtype and shape not yet taken (a renamed parameter); the previous
 * skeleton for the skeleton. With `anchors`, a group's proposal is that version or its anchor, decoded
 * (anchors.ts chooseBase), or none after `maxUpdates` updates since the last whole value; `updates`
 * receives, by group name, the UPDATES_ATTR value of each proposal.
 */
export function previousBases(
  previous: Pointer | null,
  anchors?: {
    reader: ObjectReader;
    store: Pick<ObjectStore, 'stat' | 'get'>;
    maxUpdates: number;
    updates: Map<string, number>;
  },
): (q: BaseQuery) => Promise<{ id: string; tensor?: Tensor } | null> {
  const byName = new Map<string, { id: string; dtype: string; shape: string }>();
  const taken = new Set<string>();
  if (previous)
    previous.groups.forEach((name, i) => {
      const s = previous.entry.segments[i];
      byName.set(name, { id: s.object, dtype: s.dtype, shape: s.shape.join(',') });
    });
  const propose = async (q: BaseQuery, id: string): Promise<{ id: string; tensor?: Tensor } | null> => {
    if (!anchors || !q.tensor) return { id };
    // Anything unreadable here is proposed as it is: the writer checks every base, and reports.
    const a = await anchorFor(anchors.store, id, anchors.maxUpdates).catch(() => undefined);
    if (a === undefined) return { id };
    if (a === null) return null;
    anchors.updates.set(q.name, a.updates);
    return chooseBase(anchors.reader, anchors.store, q.tensor, a).catch(() => ({ id }));
  };
  return async (q) => {
    if (!previous) return null;
    if (q.name === SKELETON_NAME) return { id: previous.entry.skeleton };
    const shape = q.shape.join(',');
    const same = byName.get(q.name);
    if (same && same.dtype === q.dtype && same.shape === shape) {
      taken.add(q.name);
      return propose(q, same.id);
    }
    for (const [name, g] of byName)
      if (!taken.has(name) && g.dtype === q.dtype && g.shape === shape && name !== q.name) {
        taken.add(name);
        return propose(q, g.id);
      }
    return null;
  };
}

export interface CleanResult {
  /** The pointer text git stores. */
  text: string;
  entry: FileEntry;
  report: IngestReport;
}

/**
 * Clean: stores the payloads of the file whose bytes are at `spool` (a copy
 * of what git passed, never the worktree file) and returns its pointer;
 * `opts.sha256`: the spool's sha256 when the caller took it already; `opts.direct`: read the
 * spool bypassing the page cache (it was written that way: lib/git/spool.ts). Same
 * bytes give the same pointer; objects already stored are not written again.
 */
export async function cleanFile(
  ps: Payloads,
  relPath: string,
  spool: string,
  previous: Pointer | null,
  opts: { sha256?: string; direct?: boolean } = {},
): Promise<CleanResult> {
  const updates = new Map<string, number>();
  const findBase = previousBases(previous, {
    reader: ps.reader,
    store: ps.store,
    maxUpdates: ps.config.getNumber('core.maxChainDepth', 8),
    updates,
  });
  // Each update records which update on its anchor it is (a whole value ignores it: no base).
  const attrs = (q: BaseQuery) => {
    const n = updates.get(q.name);
    return n ? { [UPDATES_ATTR]: String(n) } : undefined;
  };
  const { entry, report } = await withWriter(ps, 'git clean', (w) =>
    ingestFile(
      w,
      spool,
      relPath,
      lowRankBases(w, ps.reader, findBase),
      { attrs },
      { ...(opts.sha256 ? { sha256: opts.sha256 } : {}), ...(opts.direct ? { direct: true } : {}) },
    ),
  );
  // A file whose pointer named git-lfs copies keeps naming them, whatever this clone's backend.
  return { text: await pointerText(ps, entry, ps.backend === 'lfs' || !!previous?.lfs), entry, report };
}

/** The pointer text of a stored file entry (with its git-lfs objects under the lfs backend). */
export async function pointerText(ps: Payloads, entry: FileEntry, lfs = ps.backend === 'lfs'): Promise<string> {
  const storage = await storageMap(ps, entry);
  return formatPointer(entry, storage, lfs ? await lfsObjects(ps, await closure(ps, entryObjects(entry))) : undefined);
}

/** Object ids a file entry needs directly (its skeleton and groups); their bases are found through the store. */
export function entryObjects(entry: FileEntry): string[] {
  return [...new Set([entry.skeleton, ...entry.segments.map((s) => s.object)])];
}

/** Walks `ids` and their delta bases, transitively: every id met, and those the store lacks. */
async function walkBases(
  ps: Pick<Payloads, 'store'>,
  ids: readonly string[],
): Promise<{ all: string[]; missing: string[] }> {
  const all: string[] = [];
  const missing: string[] = [];
  const seen = new Set<string>();
  const todo = [...ids];
  while (todo.length) {
    const id = todo.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    all.push(id);
    if (!(await ps.store.has(id))) {
      missing.push(id);
      continue;
    }
    const a = await ps.store.stat(id);
    if (a.base) todo.push(a.base);
  }
  return { all, missing };
}

/** `ids` and their delta bases, transitively (what is stored of them). */
export async function closure(ps: Pick<Payloads, 'store'>, ids: readonly string[]): Promise<string[]> {
  return (await walkBases(ps, ids)).all;
}

/** The ids among `ids` (and their delta bases, transitively) missing from the store. */
export async function missingObjects(ps: Pick<Payloads, 'store'>, ids: readonly string[]): Promise<string[]> {
  return (await walkBases(ps, ids)).missing;
}

/**
 * Smudge: the file's bytes in order, verified at the end against the
 * pointer's size and sha256 (ChecksumMismatchError naming the file). Callers
 * send nothing they cannot take back before the final check: git's filter
 * protocol lets the status turn into an error after the content. With
 * `release`, the caller is done with a chunk when it asks for the next (see
 * fileChunks): decoded groups go back to the buffer pool at once.
 */
export async function* smudgeChunks(
  ps: Pick<Payloads, 'reader' | 'store'>,
  p: Pointer,
  relPath: string,
  opts: { release?: boolean } = {},
): AsyncGenerator<Uint8Array> {
  let missing = await missingObjects(ps, entryObjects(p.entry));
  if (missing.length) {
    // Another process (a merge driver, a fetch) may have published packs since this store was opened.
    await ps.store.refresh();
    missing = await missingObjects(ps, entryObjects(p.entry));
  }
  if (missing.length)
    throw new ObjectNotFoundError(
      `${relPath}: ${missing.length} payload object(s) are not in the payload store (first: ${missing[0]}); ` +
        'fetch them from the remote (coral git fetch) or check the file out where they were added',
      { path: relPath, missing },
    );
  const sha = crypto.createHash('sha256');
  let n = 0;
  for await (const chunk of fileChunks(ps.reader, p.entry, undefined, opts)) {
    sha.update(chunk);
    n += chunk.byteLength;
    yield chunk;
  }
  const got = sha.digest('hex');
  if (n !== p.entry.size || got !== p.entry.sha256)
    throw new ChecksumMismatchError(`${relPath}: rebuilt file does not match its sha256 ${p.entry.sha256}`, {
      path: relPath,
      expected: p.entry.sha256,
      actual: got,
    });
}

/** Smudges into a new file at `dest` (written, sha256-checked, fsynced; removed on failure). */
export async function smudgeToFile(
  ps: Pick<Payloads, 'reader' | 'store'>,
  p: Pointer,
  relPath: string,
  dest: string,
): Promise<void> {
  const fh = await fsp.open(dest, 'wx', 0o600);
  let ok = false;
  try {
    // Each chunk is written before the next is asked for: its memory may go back to the pool.
    for await (const chunk of smudgeChunks(ps, p, relPath, { release: true })) {
      let off = 0;
      while (off < chunk.byteLength) off += (await fh.write(chunk, off, chunk.byteLength - off)).bytesWritten;
    }
    ok = true;
  } finally {
    await fh.close();
    if (!ok) fs.rmSync(dest, { force: true });
  }
}
