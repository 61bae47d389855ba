/**
 * `hub get`: download a model from a Hugging Face-compatible hub, moving only
 * what is needed (lib/remote/hf-hub.ts does the HTTP).
 *
 * For each selected `.safetensors` file: the 8-byte length and the JSON
 * header are read with Range requests; then the tensor bytes are fetched by
 * range, adjacent tensors in one request. When the hub publishes a coral
 * sidecar (`<file>.coral.json`, per-tensor content ids) a tensor whose id
 * is already in the local object store is read from the store instead, and
 * every fetched tensor is checked against its id.
 * - Without `tensors` globs, the file is rebuilt byte-exact (header bytes as
 *   received + every tensor in file order) and checked against the hub's
 *   sha256 (LFS oid, or the sidecar's) before it is renamed into place.
 * - With `tensors` globs, the selected tensors are written as a new, valid
 *   safetensors file (our writer's header, the hub file's `__metadata__`):
 *   not the hub's bytes, since the hub's file holds tensors that were not asked for.
 * Other files (config, tokenizer, …) are fetched whole.
 *
 * @example
 * const r = await hubGet(repo, 'org/model', { endpoint: 'http://127.0.0.1:8080', include: ['*.safetensors', '*.json'] });
 * console.log(r.bytesOnWire, r.bytesTotal);
 */
import * as crypto from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ChecksumMismatchError, InvalidArgumentError, LimitExceededError, UnsafePathError } from '../errors';
import { FileSource, writeFileAtomic } from '../formats/io';
import {
  MAX_HEADER_BYTES,
  type SafetensorsEntry,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  writeSafetensors,
} from '../formats/safetensors';
import { contentId } from '../hash';
import { treePathProblem } from '../models/tree';
import type { ObjectReader } from '../odb/objects';
import { globToRegExp } from '../merge/rules';
import {
  HubClient,
  SIDECAR_SUFFIX,
  checkSidecar,
  pathGlobToRegExp,
  type HubFile,
  type Sidecar,
} from '../remote/hf-hub';
import type { Tensor } from '../tensor/tensor';

/** Largest run of adjacent tensors fetched in one request. */
export const MAX_RANGE_BYTES = 256 * 1024 * 1024;

export interface HubGetOptions {
  /** Revision (branch, tag or commit) on the hub; default `main`. */
  rev?: string;
  /** Path globs of the files to get (default: every file). */
  include?: string[];
  /** Tensor-name globs: write only these tensors of each safetensors file. */
  tensors?: string[];
  /** Hub base URL (default HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  token?: string;
  /** Destination folder (default: the repository's working tree). */
  dir?: string;
}

export interface HubFileReport {
  path: string;
  /** Where it was written. */
  dest: string;
  /** Size of the file on the hub. */
  size: number;
  /** Size written locally. */
  written: number;
  /** True when the local file is the hub's file byte for byte (no tensor filter). */
  exact: boolean;
  tensors: number;
  /** Tensors fetched over the network / taken from the local store. */
  fetched: number;
  local: number;
  bytesOnWire: number;
}

export interface HubGetReport {
  repo: string;
  rev: string;
  endpoint: string;
  files: HubFileReport[];
  /** Bytes received, listing and sidecars included. */
  bytesOnWire: number;
  /** Sum of the selected files' sizes on the hub (what a full download moves). */
  bytesTotal: number;
  requests: number;
}

/** File globs match the path, or the base name when the glob has no `/`. */
function pathMatcher(globs: string[] | undefined): (s: string) => boolean {
  if (!globs?.length) return () => true;
  const res = globs.map((g) => ({ re: pathGlobToRegExp(g), base: !g.includes('/') }));
  return (s) => res.some(({ re, base }) => re.test(s) || (base && re.test(path.posix.basename(s))));
}

/** Tensor-name globs, as `merge --resolve` spells them (`*` matches dots too, `[...]` classes). */
function nameMatcher(globs: string[] | undefined): (s: string) => boolean {
  if (!globs?.length) return () => true;
  const res = globs.map((g) => globToRegExp(g));
  return (s) => res.some((re) => re.test(s));
}

function destPath(dir: string, rel: string): string {
  const problem = treePathProblem(rel);
  if (problem) throw new UnsafePathError(`hub file ${JSON.stringify(rel)} ${problem}`, { path: rel });
  return path.join(dir, ...rel.split('/'));
}

interface Planned {
  entry: SafetensorsEntry;
  id?: string;
  local: boolean;
}

async function getSafetensors(
  reader: Pick<ObjectReader, 'has' | 'tensor'> | null,
  hub: HubClient,
  repo: string,
  rev: string,
  f: HubFile,
  sidecar: Sidecar | null,
  want: (name: string) => boolean,
  filtered: boolean,
  dest: string,
): Promise<Omit<HubFileReport, 'path' | 'dest' | 'bytesOnWire'>> {
  const label = `${repo}@${rev}:${f.path}`;
  const lenBytes = await hub.range(repo, rev, f.path, 0, 8);
  const n = Number(lenBytes.readBigUInt64LE(0));
  if (n > MAX_HEADER_BYTES)
    throw new LimitExceededError(`${label}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const json = await hub.range(repo, rev, f.path, 8, 8 + n);
  const header = parseSafetensorsHeader(json, f.size, label);
  const plan: Planned[] = [];
  for (const e of header.entries) {
    if (!want(e.name)) continue;
    const s = sidecar?.tensors[e.name];
    if (s && (s.offset !== e.offset || s.length !== e.length))
      throw new ChecksumMismatchError(
        `${label}: the sidecar places tensor ${JSON.stringify(e.name)} elsewhere than the header`,
      );
    const local = !!(s && reader && (await reader.has(s.id)));
    plan.push({ entry: e, ...(s ? { id: s.id } : {}), local });
  }
  // Fetch the missing tensors in runs of adjacent ranges, lazily in file order.
  const fetched = new Map<string, Uint8Array>();
  const missing = plan.filter((p) => !p.local);
  let next = 0;
  const ensure = async (p: Planned): Promise<Uint8Array> => {
    const have = fetched.get(p.entry.name);
    if (have) {
      fetched.delete(p.entry.name);
      return have;
    }
    const i = missing.indexOf(p, next);
    let j = i + 1;
    let end = p.entry.offset + p.entry.length;
    while (
      j < missing.length &&
      missing[j].entry.offset === end &&
      end + missing[j].entry.length - p.entry.offset <= MAX_RANGE_BYTES
    ) {
      end += missing[j].entry.length;
      j++;
    }
    const body = await hub.range(repo, rev, f.path, p.entry.offset, end);
    for (let k = i; k < j; k++) {
      const e = missing[k].entry;
      fetched.set(e.name, body.subarray(e.offset - p.entry.offset, e.offset - p.entry.offset + e.length));
    }
    next = j;
    const got = fetched.get(p.entry.name)!;
    fetched.delete(p.entry.name);
    return got;
  };
  const load = async (p: Planned): Promise<Tensor> => {
    const e = p.entry;
    if (p.local) {
      const t = await reader!.tensor(p.id!);
      if (t.dtype !== e.dtype || t.data.byteLength !== e.length)
        throw new ChecksumMismatchError(
          `local object ${p.id} does not match tensor ${JSON.stringify(e.name)} of ${label}`,
        );
      return { dtype: e.dtype, shape: e.shape.slice(), data: t.data };
    }
    const t: Tensor = { dtype: e.dtype, shape: e.shape.slice(), data: await ensure(p) };
    if (p.id && (await contentId(t)) !== p.id)
      throw new ChecksumMismatchError(
        `${label}: tensor ${JSON.stringify(e.name)} does not match the sidecar's content id`,
        {
          name: e.name,
        },
      );
    return t;
  };
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  let written: number;
  if (!filtered) {
    const expected = f.sha256 ?? sidecar?.sha256;
    await writeFileAtomic(dest, async (sink) => {
      const h = crypto.createHash('sha256');
      const head = Buffer.concat([lenBytes, json]);
      h.update(head);
      await sink.write(head);
      for (const p of plan) {
        const t = await load(p);
        h.update(t.data);
        await sink.write(t.data);
      }
      const got = h.digest('hex');
      if (sink.position !== f.size || (expected && got !== expected))
        throw new ChecksumMismatchError(`${label}: rebuilt file has sha256 ${got}, the hub says ${expected}`, {
          expected,
          actual: got,
        });
    });
    written = f.size;
  } else {
    const tensors = new Map<string, Tensor>();
    for (const p of plan) tensors.set(p.entry.name, await load(p));
    await writeSafetensors(dest, tensors, header.metadata);
    written = (await fsp.stat(dest)).size;
  }
  return {
    size: f.size,
    written,
    exact: !filtered,
    tensors: plan.length,
    fetched: plan.filter((p) => !p.local).length,
    local: plan.filter((p) => p.local).length,
  };
}

/** Downloads `repo` (see the module comment); `reader` is the local object store, or null for none. */
export async function hubGet(
  ctx: { reader: Pick<ObjectReader, 'has' | 'tensor'> | null; worktree?: string },
  repo: string,
  opts: HubGetOptions = {},
): Promise<HubGetReport> {
  const hub = new HubClient({ endpoint: opts.endpoint, token: opts.token });
  HubClient.checkRepo(repo);
  const rev = opts.rev ?? 'main';
  const dir = path.resolve(opts.dir ?? ctx.worktree ?? '.');
  const include = pathMatcher(opts.include);
  const want = nameMatcher(opts.tensors);
  const filtered = !!opts.tensors?.length;
  const all = await hub.listFiles(repo, rev);
  const byPath = new Map(all.map((f) => [f.path, f]));
  const selected = all.filter((f) => include(f.path) && !f.path.endsWith(SIDECAR_SUFFIX));
  if (!selected.length)
    throw new InvalidArgumentError(`no file of ${repo}@${rev} matches ${JSON.stringify(opts.include ?? [])}`);
  const files: HubFileReport[] = [];
  for (const f of selected) {
    const before = hub.bytesOnWire;
    const dest = destPath(dir, f.path);
    if (f.path.endsWith('.safetensors')) {
      const sc = byPath.get(f.path + SIDECAR_SUFFIX);
      let sidecar: Sidecar | null = null;
      if (sc) {
        const raw = await hub.file(repo, rev, sc.path);
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw.toString('utf8'));
        } catch {
          parsed = null;
        }
        sidecar = checkSidecar(parsed, `${repo}@${rev}:${sc.path}`);
      }
      const r = await getSafetensors(ctx.reader, hub, repo, rev, f, sidecar, want, filtered, dest);
      files.push({ path: f.path, dest, ...r, bytesOnWire: hub.bytesOnWire - before });
    } else {
      const body = await hub.file(repo, rev, f.path);
      const got = crypto.createHash('sha256').update(body).digest('hex');
      if (f.sha256 && got !== f.sha256)
        throw new ChecksumMismatchError(`${repo}@${rev}:${f.path} has sha256 ${got}, the hub says ${f.sha256}`);
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      await writeFileAtomic(dest, (sink) => sink.write(body));
      files.push({
        path: f.path,
        dest,
        size: f.size,
        written: body.byteLength,
        exact: true,
        tensors: 0,
        fetched: 0,
        local: 0,
        bytesOnWire: hub.bytesOnWire - before,
      });
    }
  }
  return {
    repo,
    rev,
    endpoint: hub.endpoint,
    files,
    bytesOnWire: hub.bytesOnWire,
    bytesTotal: selected.reduce((a, f) => a + f.size, 0),
    requests: hub.requests,
  };
}

/** The coral sidecar of a local safetensors file (publish it as `<file>.coral.json` next to the file on a hub). */
export async function hubSidecar(file: string): Promise<Sidecar> {
  const src = await FileSource.open(file);
  try {
    const h = await readSafetensorsHeader(src);
    const tensors = Object.create(null) as Sidecar['tensors'];
    const hash = crypto.createHash('sha256');
    hash.update(await src.read(0, h.dataStart));
    for (const e of h.entries) {
      const data = await src.read(e.offset, e.length);
      hash.update(data);
      tensors[e.name] = {
        dtype: e.dtype,
        shape: e.shape,
        offset: e.offset,
        length: e.length,
        id: await contentId({ dtype: e.dtype, shape: e.shape, data }),
      };
    }
    return {
      format: 'coral-tensors',
      version: 1,
      file: path.basename(file),
      size: src.size,
      sha256: hash.digest('hex'),
      tensors,
    };
  } finally {
    await src.close();
  }
}

/** Writes the sidecar of `file` to `out` (default `<file>.coral.json`) atomically; returns the path. */
export async function writeHubSidecar(
  file: string,
  out = `${file}${SIDECAR_SUFFIX}`,
): Promise<{ path: string; sidecar: Sidecar }> {
  const sidecar = await hubSidecar(file);
  await writeFileAtomic(out, (sink) => sink.write(Buffer.from(`${JSON.stringify(sidecar)}\n`)));
  return { path: out, sidecar };
}
