/**
 * LocalPackStore maintenance: repack (garbage collection), verify, index
 * rebuild and temp-file cleanup, as functions over the store's PackView
 * (local-view.ts). The store checks that it is open before calling them.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { PackEntry, PackReader } from '../../binding';
import { CoralError, CorruptObjectError, ObjectNotFoundError, invalidParameter } from '../errors';
import { ASYNC_THRESHOLD_BYTES, callAsync, callSync } from '../native';
import { errnoOf, fsyncDir, ioError, unlinkIfExists, writeFileAtomic } from './fs';
import type { RepackOptions, RepackResult, StoreProblem } from './object-store';
import { encodeIndex, indexNameFor, parseIndex, sameEntries } from './pack-index';
import type { LocalTransaction } from './local-transaction';
import { isNativeNotFound, type PackView } from './local-view';

const INDEX_RE = /^pack-[0-9a-f]{32}\.idx$/;
/** Temp files this store creates in <root>/tmp (and only these are cleaned). */
const TMP_RE = /^pack-[0-9a-f]{32}\.(h5\.tmp|idx\.\d+\.[0-9a-f]+\.tmp)$/;

/** What repack needs of the store: its view, and a registered transaction that does not dedup. */
export interface RepackStore {
  readonly view: PackView;
  /** A transaction that must not dedup against the packs it is replacing (closed with the store). */
  beginRawWrite(): LocalTransaction;
}

/**
 * Keeps only objects with keep(id) === true. Candidate packs (older than
 * graceMs, holding garbage or all packs with `all`) are read, their kept
 * objects not present elsewhere are copied into one new pack, which is
 * published first; then each candidate whose mtime did not change meanwhile
 * (a writer reusing one of its objects freshens it) is removed, .h5 then .idx.
 */
export async function repack(
  store: RepackStore,
  keep: (id: string) => boolean,
  opts: RepackOptions = {},
): Promise<RepackResult> {
  const view = store.view;
  if (typeof keep !== 'function') throw invalidParameter('keep', 'function', keep);
  const graceMs = opts.graceMs ?? 0;
  if (!Number.isFinite(graceMs) || graceMs < 0) throw invalidParameter('graceMs', 'non-negative number', graceMs);
  await view.refresh();
  const cutoff = Date.now() - graceMs;
  const candidates: Array<{ name: string; mtimeMs: number; entries: PackEntry[] }> = [];
  for (const name of view.packNames()) {
    const st = view.packs.get(name)!;
    let mtimeMs: number;
    try {
      mtimeMs = (await fsp.stat(view.packPath(name))).mtimeMs;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') continue;
      throw ioError(e, 'stat', view.packPath(name));
    }
    if (graceMs > 0 && mtimeMs > cutoff) continue;
    if (opts.all || st.entries.some((e) => !keep(e.id))) candidates.push({ name, mtimeMs, entries: st.entries });
  }
  const result: RepackResult = { newPack: null, removedPacks: [], skippedPacks: [], copied: 0, dropped: 0 };
  if (
    candidates.length === 0 ||
    (opts.all && candidates.length === 1 && candidates[0].entries.every((e) => keep(e.id)))
  )
    return result;
  const candNames = new Set(candidates.map((c) => c.name));
  const elsewhere = new Set<string>();
  for (const [name, st] of view.packs) if (!candNames.has(name)) for (const e of st.entries) elsewhere.add(e.id);

  const tx = store.beginRawWrite();
  const dropped = new Set<string>();
  try {
    for (const c of candidates) {
      const r = view.reader(c.name);
      for (const e of c.entries) {
        if (!keep(e.id)) {
          dropped.add(e.id);
          continue;
        }
        if (elsewhere.has(e.id) || tx.staged(e.id)) continue;
        // Verified read: a corrupted survivor aborts the repack before anything is deleted.
        const bytes =
          e.size >= ASYNC_THRESHOLD_BYTES ? await callAsync(() => r.read(e.id)) : callSync(() => r.readSync(e.id));
        await tx.put(e.id, bytes, {
          codec: e.codec,
          dtype: e.dtype,
          shape: e.shape,
          base: e.base,
          rawSize: e.rawSize,
          extra: e.extra,
        });
        result.copied++;
      }
    }
    result.newPack = await tx.commit();
  } catch (e) {
    await tx.abort();
    throw e;
  }
  for (const c of candidates) {
    const p = view.packPath(c.name);
    let mtimeMs: number;
    try {
      mtimeMs = (await fsp.stat(p)).mtimeMs;
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') continue;
      throw ioError(e, 'stat', p);
    }
    if (mtimeMs !== c.mtimeMs) {
      result.skippedPacks.push(c.name);
      continue;
    }
    view.dropReader(c.name);
    await unlinkIfExists(p);
    await unlinkIfExists(path.join(view.packsDir, indexNameFor(c.name)));
    result.removedPacks.push(c.name);
  }
  if (view.sync) await fsyncDir(view.packsDir);
  result.dropped = dropped.size;
  await view.refresh();
  return result;
}

/**
 * Checks every pack: readable, index present and equal to the pack's own
 * listing, every object's bytes matching its checksum.
 */
export async function verify(view: PackView): Promise<StoreProblem[]> {
  await view.refresh();
  const problems: StoreProblem[] = [];
  const code = (e: unknown) => (e instanceof CoralError ? e.code : 'CORAL_INTERNAL');
  const msg = (e: unknown) => (e instanceof Error ? e.message : String(e));
  for (const name of await view.listPackFiles()) {
    let entries: PackEntry[];
    let r: PackReader;
    try {
      r = view.reader(name);
      entries = await callAsync(() => r.list());
    } catch (e) {
      if (isNativeNotFound(e)) continue; // removed meanwhile
      problems.push({ kind: 'pack', pack: name, code: code(e), message: msg(e) });
      continue;
    }
    let text: Buffer | null;
    try {
      text = await fsp.readFile(path.join(view.packsDir, indexNameFor(name)));
    } catch {
      text = null;
    }
    const size = (await fsp.stat(view.packPath(name)).catch(() => null))?.size ?? -1;
    if (text === null) {
      problems.push({
        kind: 'index',
        pack: name,
        code: ObjectNotFoundError.code,
        message: `pack ${name} has no index; run \`coral fsck --rebuild-index\``,
      });
    } else {
      const idx = parseIndex(text, name, size);
      if (!idx || !sameEntries(idx, entries))
        problems.push({
          kind: 'index',
          pack: name,
          code: CorruptObjectError.code,
          message: `index of pack ${name} does not match the pack; run \`coral fsck --rebuild-index\``,
        });
    }
    const max = entries.reduce((m, e) => Math.max(m, e.size), 0);
    const buf = Buffer.allocUnsafe(max);
    for (const e of entries) {
      try {
        if (e.size >= ASYNC_THRESHOLD_BYTES) await callAsync(() => r.readInto(e.id, buf));
        else callSync(() => r.readIntoSync(e.id, buf));
      } catch (err) {
        problems.push({ kind: 'object', pack: name, id: e.id, code: code(err), message: msg(err) });
      }
    }
  }
  return problems;
}

/**
 * Regenerates every pack's .idx from the pack's HDF5 metadata and removes
 * index files whose pack is gone. Unreadable packs are reported, not indexed.
 */
export async function rebuildIndex(
  view: PackView,
): Promise<{ packs: number; objects: number; problems: StoreProblem[] }> {
  const problems: StoreProblem[] = [];
  let packs = 0;
  let objects = 0;
  const names = await view.listPackFiles();
  for (const name of names) {
    try {
      const size = (await fsp.stat(view.packPath(name))).size;
      const entries = await view.listPack(name);
      await writeFileAtomic(
        path.join(view.packsDir, indexNameFor(name)),
        await encodeIndex(name, size, entries),
        view.tmpDir,
        view.sync,
      );
      packs++;
      objects += entries.length;
    } catch (e) {
      if (isNativeNotFound(e) || errnoOf(e) === 'ENOENT') continue;
      problems.push({
        kind: 'pack',
        pack: name,
        code: e instanceof CoralError ? e.code : 'CORAL_IO',
        message: (e as Error).message,
      });
    }
  }
  await removeOrphanIndexes(view, new Set(names));
  if (view.sync) await fsyncDir(view.packsDir);
  // Reload everything from the fresh indexes.
  view.forget();
  await view.refresh();
  return { packs, objects, problems };
}

async function removeOrphanIndexes(view: PackView, packNames: Set<string>): Promise<string[]> {
  const removed: string[] = [];
  for (const n of await fsp.readdir(view.packsDir)) {
    if (INDEX_RE.test(n) && !packNames.has(n.replace(/\.idx$/, '.h5'))) {
      // Re-check: a writer publishes the .h5 before its .idx, so an .idx without .h5 is always stale.
      const h5 = n.replace(/\.idx$/, '.h5');
      if (
        await fsp.stat(view.packPath(h5)).then(
          () => true,
          () => false,
        )
      )
        continue;
      if (await unlinkIfExists(path.join(view.packsDir, n))) removed.push(n);
    }
  }
  return removed;
}

/**
 * Removes leftovers of crashed writers: temp files of this store in tmp/
 * older than `olderThanMs` (default one hour; a live writer keeps touching
 * its file) and index files whose pack is gone. Returns the removed names.
 */
export async function cleanTmp(view: PackView, olderThanMs = 3_600_000): Promise<string[]> {
  const removed: string[] = [];
  const now = Date.now();
  for (const n of await fsp.readdir(view.tmpDir)) {
    if (!TMP_RE.test(n)) continue;
    const p = path.join(view.tmpDir, n);
    const st = await fsp.stat(p).catch(() => null);
    if (st && now - st.mtimeMs >= olderThanMs && (await unlinkIfExists(p))) removed.push(n);
  }
  removed.push(...(await removeOrphanIndexes(view, new Set(await view.listPackFiles()))));
  return removed;
}
