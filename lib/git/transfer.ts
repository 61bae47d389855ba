/**
 * Payload transfer between a repository's payload store and the coral remote
 * that belongs to a git remote, on the remotes machinery (lib/remote):
 * `openRemote(url)` for the transport and `transfer()` for negotiation (what
 * the receiver lacks, bases before deltas, every object verified on arrival,
 * one pack per transfer).
 *
 * The coral remote of git remote <name>: git config `remote.<name>.coralurl`
 * (a path, s3:// or http:// URL), else `<remote path>/coral` when the git
 * remote is a local path or file:// URL (a bare repository gets a coral bare
 * repository inside it).
 *
 * `transfer()` walks meta objects from tips; here the "meta" is one synthetic
 * tree naming every file the pointers describe, served from memory and never
 * written to the receiver (only tensor objects move).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GitCommandError, InvalidArgumentError } from '../errors';
import { sha256Hex } from '../models/canonical';
import { encodeTree, fileTable, type FileEntry } from '../models/tree';
import { transfer, type TransferReport, type TransferSide } from '../remote/negotiate';
import { openRemote } from '../remote/open';
import type { RemoteMeta, RemoteRepo } from '../remote/transport';
import type { ObjectStore } from '../store/object-store';
import { git, gitConfig, gitDirs, gitRaw } from './gitcmd';
import { lfsObjects, lfsPush } from './lfs';
import { closure, entryObjects, missingObjects, openPayloads, type Payloads } from './payloads';
import { looksLikePointer, MAX_POINTER_BYTES, parsePointer, type LfsObject, type Pointer } from './pointer';

/** The coral remote URL of git remote `name` (whose URL is `gitUrl`, when known). */
export async function coralRemoteUrl(cwd: string, name: string, gitUrl?: string): Promise<string> {
  const configured = await gitConfig(cwd, `remote.${name}.coralurl`);
  if (configured) return configured;
  const url = gitUrl ?? (await gitConfig(cwd, `remote.${name}.url`)) ?? name;
  let p: string | null = null;
  if (url.startsWith('file://')) p = decodeURIComponent(url.slice('file://'.length));
  else if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url) && !/^[^/]+@[^:]+:/.test(url)) p = path.resolve(cwd, url);
  if (p === null || !fs.existsSync(p))
    throw new InvalidArgumentError(
      `git remote ${JSON.stringify(name)} (${url}) is not a local path; set its payload store with ` +
        `\`git config remote.${name}.coralurl <path | s3://bucket/prefix | http://host/repo>\``,
      { remote: name, url },
    );
  // A non-bare repository keeps its payloads in .git/coral (its own payload store is the remote).
  const dotgit = path.join(p, '.git');
  if (fs.existsSync(dotgit) && fs.statSync(dotgit).isDirectory()) return path.join(dotgit, 'coral');
  return path.join(p, 'coral');
}

/** An in-memory meta side holding one synthetic tree (never written anywhere). */
class MemoryMeta implements RemoteMeta {
  private readonly objs = new Map<string, Uint8Array>();
  add(bytes: Uint8Array): string {
    const id = sha256Hex(bytes);
    this.objs.set(id, bytes);
    return id;
  }
  async has(id: string): Promise<boolean> {
    return this.objs.has(id);
  }
  async get(id: string): Promise<Uint8Array> {
    const b = this.objs.get(id);
    if (!b) throw new InvalidArgumentError(`no synthetic meta object ${id}`);
    return b;
  }
  async put(bytes: Uint8Array): Promise<string> {
    return sha256Hex(bytes);
  }
}

/** A receiver's meta side that has nothing and keeps nothing: only tensor objects move. */
const DISCARD_META: RemoteMeta = {
  has: async () => false,
  get: async (id) => {
    throw new InvalidArgumentError(`no meta object ${id}`);
  },
  put: async (bytes) => sha256Hex(bytes),
};

/** Moves the objects `entries` need (and their bases) from `src` to `dst`: what `dst` lacks. */
export async function transferEntries(
  src: ObjectStore,
  dst: ObjectStore,
  entries: readonly FileEntry[],
  what: string,
  local: 'src' | 'dst',
): Promise<TransferReport | null> {
  if (!entries.length) return null;
  const meta = new MemoryMeta();
  const tree = encodeTree({ files: fileTable(entries.map((e, i) => [`f${i}`, e] as const)) });
  const tip = meta.add(tree);
  const from: TransferSide = { meta, objects: src };
  const to: TransferSide = { meta: DISCARD_META, objects: dst };
  return transfer(from, to, [tip], { what, local });
}

/** Pointer blobs among `blobIds` (`git cat-file --batch`), parsed. */
export async function readPointers(cwd: string, blobIds: readonly string[]): Promise<Pointer[]> {
  if (!blobIds.length) return [];
  const check = (await git(cwd, ['cat-file', '--batch-check'], blobIds.join('\n') + '\n')).toString('utf8');
  const small = check
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length === 3 && f[1] === 'blob' && Number(f[2]) <= MAX_POINTER_BYTES && Number(f[2]) >= 16)
    .map((f) => f[0]);
  if (!small.length) return [];
  const out: Pointer[] = [];
  const data = await git(cwd, ['cat-file', '--batch'], small.join('\n') + '\n');
  let pos = 0;
  while (pos < data.length) {
    const nl = data.indexOf(0x0a, pos);
    const [, , size] = data.subarray(pos, nl).toString('latin1').split(' ');
    const n = Number(size);
    const body = data.subarray(nl + 1, nl + 1 + n);
    pos = nl + 1 + n + 1;
    if (looksLikePointer(body)) {
      try {
        out.push(parsePointer(body));
      } catch {
        /* a text file that merely starts like a pointer: not ours to move */
      }
    }
  }
  return out;
}

/** Blob ids reachable from `revs` (rev-list syntax, e.g. `['abc', '--not', '--remotes=origin']`). */
export async function blobsOf(cwd: string, revs: readonly string[]): Promise<string[]> {
  if (!revs.length) return [];
  const out = (await git(cwd, ['rev-list', '--objects', ...revs])).toString('utf8');
  const ids = out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(0, l.indexOf(' ') < 0 ? l.length : l.indexOf(' ')));
  if (!ids.length) return [];
  const check = (await git(cwd, ['cat-file', '--batch-check'], ids.join('\n') + '\n')).toString('utf8');
  return check
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[1] === 'blob')
    .map((f) => f[0]);
}

export interface PrePushReport {
  url: string;
  pointers: number;
  objects: number;
  bytes: number;
}

const ZERO = /^0+$/;

/**
 * The pre-push hook (`<remote-name> <url>`, stdin `<local ref> <local sha> <remote ref> <remote sha>` lines):
 * sends the payloads of every pointer the pushed commits add. Throws (so git push fails) when they cannot
 * all be sent.
 */
export async function prePush(
  ps: Payloads,
  cwd: string,
  name: string,
  url: string,
  stdin: string,
): Promise<PrePushReport> {
  const revs: string[] = [];
  const not: string[] = [`--remotes=${name}`];
  for (const line of stdin.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length !== 4 || ZERO.test(f[1])) continue; // a deletion sends nothing
    revs.push(f[1]);
    if (!ZERO.test(f[3]) && (await gitRaw(cwd, ['cat-file', '-e', `${f[3]}^{commit}`])).code === 0) not.push(f[3]);
  }
  const remoteUrl = ps.backend === 'lfs' ? url : await coralRemoteUrl(cwd, name, url);
  if (!revs.length) return { url: remoteUrl, pointers: 0, objects: 0, bytes: 0 };
  const pointers = await readPointers(cwd, await blobsOf(cwd, [...revs, '--not', ...not]));
  const report: PrePushReport = { url: remoteUrl, pointers: pointers.length, objects: 0, bytes: 0 };
  if (!pointers.length) return report;
  const missing = await missingObjects(
    ps,
    pointers.flatMap((p) => entryObjects(p.entry)),
  );
  if (missing.length)
    throw new GitCommandError(
      `cannot push: ${missing.length} payload object(s) the pushed commits need are not in this repository ` +
        `(first: ${missing[0]}); fetch them first (coral git fetch)`,
      { missing: missing.slice(0, 20) },
    );
  if (ps.backend === 'lfs') {
    const objects = new Map<string, LfsObject>();
    for (const p of pointers) {
      const m = p.lfs ?? (await lfsObjects(ps, await closure(ps, entryObjects(p.entry))));
      for (const [id, o] of m) objects.set(id, o);
    }
    report.url = `git-lfs (${name})`;
    report.objects = await lfsPush(ps, cwd, ps.dirs.commonDir, name, objects);
    report.bytes = [...objects.values()].reduce((n, o) => n + o.size, 0);
    return report;
  }
  Object.assign(report, await sendEntries(ps, remoteUrl, pointers));
  return report;
}

/** Sends the payload objects `pointers` need to the coral store at `url` (made when absent). */
async function sendEntries(
  ps: Payloads,
  url: string,
  pointers: ReadonlyArray<{ entry: FileEntry }>,
): Promise<{ objects: number; bytes: number }> {
  const remote = await openRemote(url, { create: true });
  try {
    const r = await transferEntries(
      ps.store,
      remote.objects,
      pointers.map((p) => p.entry),
      'git-push',
      'src',
    );
    return { objects: r?.objects ?? 0, bytes: r?.objectBytes ?? 0 };
  } finally {
    await remote.close();
  }
}

/** The git remotes to fetch payloads from, in order: coral.remote, origin, then the rest. */
export async function fetchRemotes(cwd: string): Promise<string[]> {
  const r = await gitRaw(cwd, ['remote']);
  const all = r.stdout.toString('utf8').split('\n').filter(Boolean);
  const first = (await gitConfig(cwd, 'coral.remote')) ?? 'origin';
  return [...all.filter((n) => n === first), ...all.filter((n) => n !== first)];
}

/**
 * Fetches whatever `entries` need and the store lacks, trying each git remote's coral remote in turn.
 * Returns the objects fetched; leaves the rest missing (the caller reports them).
 */
export async function fetchEntries(ps: Payloads, cwd: string, entries: readonly FileEntry[]): Promise<number> {
  let fetched = 0;
  const need = () => missingObjects(ps, entries.flatMap(entryObjects));
  if (!(await need()).length) return 0;
  for (const name of await fetchRemotes(cwd)) {
    let remote: RemoteRepo;
    try {
      remote = await openRemote(await coralRemoteUrl(cwd, name));
    } catch {
      continue;
    }
    try {
      const r = await transferEntries(remote.objects, ps.store, entries, 'git-fetch', 'dst').catch(() => null);
      fetched += r?.objects ?? 0;
      await ps.store.refresh();
    } finally {
      await remote.close();
    }
    if (!(await need()).length) break;
  }
  return fetched;
}

/** Pointers of the files at `revs` (default HEAD) and, with `all`, of every ref. */
async function pointersAt(cwd: string, revs: readonly string[]): Promise<Pointer[]> {
  return readPointers(cwd, await blobsOf(cwd, revs));
}

export interface FetchReport {
  pointers: number;
  fetched: number;
  missing: number;
}

/** `coral git fetch [--all]`: fetches the payloads HEAD's (or every ref's) pointers need. */
export async function fetchPayloads(ps: Payloads, cwd: string, opts: { all?: boolean } = {}): Promise<FetchReport> {
  const pointers = await pointersAt(cwd, opts.all ? ['--all'] : ['HEAD']);
  const entries = pointers.map((p) => p.entry);
  const fetched = await fetchEntries(ps, cwd, entries);
  const missing = (await missingObjects(ps, entries.flatMap(entryObjects))).length;
  return { pointers: pointers.length, fetched, missing };
}

/** `coral git push <remote> [<rev>...]`: sends the payloads the revisions' pointers need (default HEAD). */
export async function pushPayloads(
  ps: Payloads,
  cwd: string,
  name: string,
  revs: readonly string[],
): Promise<PrePushReport> {
  const pointers = await pointersAt(cwd, revs.length ? revs : ['HEAD']);
  const url = await coralRemoteUrl(cwd, name);
  return { url, pointers: pointers.length, ...(await sendEntries(ps, url, pointers)) };
}

/** Opens the payload store and runs `fn` with it. */
export async function withPayloads<T>(cwd: string, fn: (ps: Payloads, top: string) => Promise<T>): Promise<T> {
  const dirs = await gitDirs(cwd);
  const ps = await openPayloads(dirs);
  try {
    return await fn(ps, dirs.worktree || cwd);
  } finally {
    await ps.close();
  }
}
