/**
 * Direct ingestion into a served repository: one uploaded checkpoint becomes one commit on a branch.
 *
 * 1. The branch head's tree is read; the entry at the same path gives each tensor its delta base (the
 *    fine-tune case: lib/commands/add.ts `treeBases`, scored by lib/ingest/bases.ts `BaseSelector`), and
 *    exact duplicates are deduplicated by content id against everything the store has. The bases are
 *    found decoded in the series heads (./heads.ts) when an earlier upload of the series left them there.
 * 2. The body is ingested as it streams (lib/ingest/stream.ts) into ONE pack transaction, published only
 *    when the whole file was read and checked; any error aborts the transaction, so nothing of a refused
 *    upload is stored and no ref moves. The first attempt's tree and commit are written while the pack
 *    is published; the ref moves once both are durable.
 * 3. The commit: the head's tree with `path` replaced or added, parent = the head at the moment the ref
 *    moves. The ref moves by compare-and-swap (`RemoteRepo.updateRef`); when another upload (in this
 *    process or another server on the same bucket) moved it first, the tree is rebuilt on the new head
 *    (the tensors are stored already) and the swap retried, a bounded number of times with jittered
 *    backoff. N concurrent uploads into one branch become N commits, none lost.
 * 4. Idempotency: the upload's key is recorded in the commit (`metadata.idempotencyKey`). Before the body
 *    is read, and again right before every compare-and-swap, the branch's recent first-parent history
 *    (IDEMPOTENCY_DEPTH commits) is searched for it; found, the existing commit is the reply and nothing
 *    new is committed. Because the search runs against the exact head the swap expects, a duplicate
 *    committed by another process makes the swap fail and the next search find it. Within one process,
 *    uploads with the same key run one after another.
 *
 * @example
 * const reply = await ingestUpload(repo, req.raw, {
 *   branch: 'main', path: 'model.safetensors', message: 'step 1000', metadata: { step: 1000 },
 *   idempotencyKey: 'run-7-step-1000', limits, tmpDir: '/var/tmp/coral',
 * });
 * reply.commit; reply.objects.delta;
 */
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { treeBases } from '../../commands/add';
import {
  InvalidArgumentError,
  LockedError,
  RefConflictError,
  RemoteUnavailableError,
  invalidParameter,
} from '../../errors';
import { BaseSelector, DEFAULT_PARENT_TRUST } from '../../ingest/bases';
import type { BaseQuery, FindBase } from '../../ingest/ingest';
import { ingestStream, type StreamLimits } from '../../ingest/stream';
import {
  checkShortRefName,
  checkTreePath,
  decodeCommit,
  decodeTree,
  encodeCommit,
  encodeTree,
  fileTable,
  sha256Hex,
  type FileEntry,
  signatureNow,
  type Commit,
  type Signature,
  type Tree,
} from '../../models';
import { DEFAULT_BASE_CACHE_BYTES, ObjectWriter } from '../../odb/objects';
import type { RemoteRepo } from '../../remote/transport';
import { HeadReader, SeriesHeads } from './heads';

/** First-parent commits searched for an idempotency key. */
export const IDEMPOTENCY_DEPTH = 128;
/** Compare-and-swap attempts before an upload gives up with RefConflictError. */
export const MAX_REF_ATTEMPTS = 64;
/** Longest idempotency key accepted. */
export const MAX_KEY_LENGTH = 256;

export interface IngestUploadOptions {
  /** Branch to commit on (default: the repository's HEAD branch, else "main"). */
  branch?: string;
  /** The file's path in the tree (replaced when present). */
  path: string;
  /** Commit message (default "ingest <path>"). */
  message?: string;
  /**
   * Commit metadata as `coral commit` stores it: `step`, `metrics: {name: value}` (read by
   * `coral log --metric`), anything else JSON. `idempotencyKey` is reserved.
   */
  metadata?: Record<string, unknown>;
  /** Retries of one upload carry the same key; a key already committed on the branch is not committed again. */
  idempotencyKey?: string;
  /** Declared body length (Content-Length), or null when unknown. */
  size?: number | null;
  limits: StreamLimits;
  /** For spooled formats (a private subdirectory, removed afterwards). */
  tmpDir: string;
  /** Aborts the upload before its commit (nothing stored). */
  signal?: AbortSignal;
  /** Author and committer (default "coral ingest <ingest@host>"). */
  author?: Partial<Pick<Signature, 'name' | 'email'>>;
  /** zstd level (default 3) and delta chain bound (default 8), as `core.compressionLevel`/`core.maxChainDepth`. */
  level?: number;
  maxChainDepth?: number;
}

/** The reply of an ingestion (the JSON body of `POST /<name>/ingest`). */
export interface IngestReply {
  /** The new commit (or, for a repeated idempotency key, the commit made by the first upload). */
  commit: string;
  /** Its first parent (null for the branch's first commit). */
  parent: string | null;
  branch: string;
  path: string;
  /** True when the idempotency key was already committed: nothing new was committed. */
  duplicate: boolean;
  /** The file as stored: format, size, sha256, number of tensors. */
  file: { format: string; size: number; sha256: string; tensors: number };
  /**
   * Objects of the file (tensor segments, the skeleton, blob chunks): `new` were stored (of which `delta`
   * as deltas against an earlier version), `deduplicated` already existed. Zero for a duplicate.
   */
  objects: { new: number; deduplicated: number; delta: number };
  /** Body bytes received, and encoded bytes this upload added to the store. */
  bytes: { received: number; stored: number };
  /** Compare-and-swap attempts the commit took (1 when nobody else moved the branch meanwhile). */
  attempts: number;
  /** 'stream' (safetensors parsed as it arrived) or 'spool' (temp file first); absent for a duplicate. */
  mode?: 'stream' | 'spool';
}

const decoded = new WeakMap<RemoteRepo, Map<string, { parent: string | null; key: string | null; commit: Commit }>>();
const CACHE_COMMITS = 4096;
const running = new WeakMap<RemoteRepo, Map<string, Promise<unknown>>>();
/**
 * The decoded series heads of every served repository (lib/server/ingest/heads.ts), one budget for the
 * process: the next upload of a series finds its delta bases in memory instead of decoding their chains.
 */
export const seriesHeads = new SeriesHeads(DEFAULT_BASE_CACHE_BYTES);

/** A commit of `repo`, decoded once per process (commits are immutable). */
async function commitOf(
  repo: RemoteRepo,
  id: string,
): Promise<{ parent: string | null; key: string | null; commit: Commit }> {
  let cache = decoded.get(repo);
  if (!cache)
    decoded.set(repo, (cache = new Map<string, { parent: string | null; key: string | null; commit: Commit }>()));
  const hit = cache.get(id);
  if (hit) return hit;
  const commit = decodeCommit(await repo.meta.get(id));
  const k = commit.metadata.idempotencyKey;
  const v = { parent: commit.parents[0] ?? null, key: typeof k === 'string' ? k : null, commit };
  if (cache.size >= CACHE_COMMITS) cache.delete(cache.keys().next().value!);
  cache.set(id, v);
  return v;
}

/** The commit at or below `head` (first parents, IDEMPOTENCY_DEPTH of them) recorded with `key`. */
async function findKey(repo: RemoteRepo, head: string | null, key: string): Promise<string | null> {
  let cur = head;
  for (let i = 0; cur && i < IDEMPOTENCY_DEPTH; i++) {
    const c = await commitOf(repo, cur);
    if (c.key === key) return cur;
    cur = c.parent;
  }
  return null;
}

async function treeAt(repo: RemoteRepo, commit: string | null): Promise<Tree> {
  if (!commit) return { files: fileTable() };
  return decodeTree(await repo.meta.get((await commitOf(repo, commit)).commit.tree));
}

async function branchHead(repo: RemoteRepo, ref: string): Promise<{ id: string; token: string } | null> {
  return (await repo.listRefs()).get(ref) ?? null;
}

function checkOptions(o: IngestUploadOptions): void {
  if (!o || typeof o !== 'object') throw invalidParameter('options', 'object', o);
  checkTreePath(o.path);
  if (o.branch !== undefined) checkShortRefName(o.branch);
  if (o.message !== undefined && (typeof o.message !== 'string' || !o.message.trim()))
    throw invalidParameter('message', 'non-empty string', o.message);
  if (o.metadata !== undefined && (o.metadata === null || typeof o.metadata !== 'object' || Array.isArray(o.metadata)))
    throw invalidParameter('metadata', 'plain object', o.metadata);
  if (o.metadata && Object.prototype.hasOwnProperty.call(o.metadata, 'idempotencyKey'))
    throw new InvalidArgumentError('metadata key "idempotencyKey" is reserved for the idempotency key');
  if (
    o.idempotencyKey !== undefined &&
    (typeof o.idempotencyKey !== 'string' ||
      o.idempotencyKey.length === 0 ||
      o.idempotencyKey.length > MAX_KEY_LENGTH ||
      !/^[\x21-\x7e]+$/.test(o.idempotencyKey))
  )
    throw invalidParameter('idempotencyKey', `1 to ${MAX_KEY_LENGTH} printable ASCII characters`, o.idempotencyKey);
}

/** Drains what is left of a body (a duplicate upload): the client may still be sending it. */
async function drain(body: Readable | AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  try {
    for await (const c of body as AsyncIterable<Uint8Array>) n += c.byteLength ?? 0;
  } catch {
    /* a client that hangs up on a duplicate has nothing more to say */
  }
  return n;
}

/**
 * Ingests one uploaded file into `repo` and commits it on a branch (see the module comment).
 * Errors: InvalidArgumentError (bad options, a path that clashes with a directory), FormatError,
 * LimitExceededError, UnsupportedFormatError, UnsafePickleError (the body), RefConflictError (the branch
 * kept moving for MAX_REF_ATTEMPTS attempts), RemoteUnavailableError (aborted by `signal`).
 */
export async function ingestUpload(
  repo: RemoteRepo,
  body: Readable | AsyncIterable<unknown>,
  opts: IngestUploadOptions,
): Promise<IngestReply> {
  checkOptions(opts);
  const key = opts.idempotencyKey;
  if (!key) return doIngest(repo, body, opts);
  // Uploads with one key run one after another in this process (a client retrying while its first
  // attempt is still committing gets that commit back).
  let byKey = running.get(repo);
  if (!byKey) running.set(repo, (byKey = new Map<string, Promise<unknown>>()));
  const before = byKey.get(key);
  const mine = (async () => {
    if (before) await before.catch(() => undefined);
    return doIngest(repo, body, opts);
  })();
  byKey.set(key, mine);
  try {
    return await mine;
  } finally {
    if (byKey.get(key) === mine) byKey.delete(key);
  }
}

/** The reply for an upload whose idempotency key was already committed (as `id`). */
async function duplicateOf(
  repo: RemoteRepo,
  branch: string,
  opts: IngestUploadOptions,
  id: string,
  received: number,
  attempts: number,
): Promise<IngestReply> {
  const c = await commitOf(repo, id);
  const tree = decodeTree(await repo.meta.get(c.commit.tree));
  const e = tree.files[opts.path];
  return {
    commit: id,
    parent: c.parent,
    branch,
    path: opts.path,
    duplicate: true,
    file: e
      ? { format: e.format, size: e.size, sha256: e.sha256, tensors: e.tensors.length }
      : { format: 'raw', size: 0, sha256: '', tensors: 0 },
    objects: { new: 0, deduplicated: 0, delta: 0 },
    bytes: { received, stored: 0 },
    attempts,
  };
}

async function doIngest(
  repo: RemoteRepo,
  body: Readable | AsyncIterable<unknown>,
  opts: IngestUploadOptions,
): Promise<IngestReply> {
  const branch = opts.branch ?? (await repo.headBranch()) ?? 'main';
  const ref = `refs/heads/${branch}`;
  const key = opts.idempotencyKey;
  const head0 = await branchHead(repo, ref);
  if (key) {
    const dup = await findKey(repo, head0?.id ?? null, key);
    if (dup) return duplicateOf(repo, branch, opts, dup, await drain(body), 0);
  }
  // Objects other servers published since this process last looked: dedup and delta bases see them.
  await repo.objects.refresh();
  const baseTree = await treeAt(repo, head0?.id ?? null);
  // One reader per upload (it counts the heads the upload holds); the heads are the shared cache.
  const reader = new HeadReader(repo.objects, seriesHeads);
  const maxChainDepth = opts.maxChainDepth ?? 8;
  const level = opts.level ?? 3;
  const selector = new BaseSelector({
    reader,
    store: repo.objects,
    parent: treeBases(baseTree),
    sim: null,
    maxChainDepth,
    level,
    parentTrust: DEFAULT_PARENT_TRUST,
  });
  // One transaction = one pack, published only once the whole file is in (never rolled over midway).
  const writer = new ObjectWriter(repo.objects, reader, { level, maxChainDepth, packBytes: Number.POSITIVE_INFINITY });
  // Each new tensor whose object can serve as the next version's base becomes its series' head as soon
  // as its own base is chosen: the old head (this upload's base) is released after the encode, and the
  // pipeline's own release of the tensor leaves it in the heads (lib/server/ingest/heads.ts).
  const findBase = async (q: BaseQuery) => {
    const base = await selector.findBase(q);
    if (q.tensor && q.id) {
      // Its depth: one more than its base's (the writer may store it whole instead: depth 0).
      const depth = base ? ((await reader.info(base.id).catch(() => null))?.depth ?? maxChainDepth) + 1 : 0;
      if (depth + 1 <= maxChainDepth) reader.adopt(repo.url, opts.path, q.name, q.id, q.tensor);
    }
    return base;
  };
  return ingestAndCommit(repo, body, opts, {
    branch,
    ref,
    head0,
    baseTree,
    writer,
    findBase,
    reader,
  });
}

async function ingestAndCommit(
  repo: RemoteRepo,
  body: Readable | AsyncIterable<unknown>,
  opts: IngestUploadOptions,
  s: {
    branch: string;
    ref: string;
    head0: { id: string; token: string } | null;
    baseTree: Tree;
    writer: ObjectWriter;
    findBase: FindBase;
    reader: HeadReader;
  },
): Promise<IngestReply> {
  const { branch, ref, head0, baseTree, writer } = s;
  const key = opts.idempotencyKey;
  const who = signatureNow(opts.author?.name ?? 'coral ingest', opts.author?.email ?? `ingest@${os.hostname()}`);
  const message = opts.message ?? `ingest ${opts.path}`;
  const metadata: Record<string, unknown> = { ...(opts.metadata ?? {}), ...(key ? { idempotencyKey: key } : {}) };
  /** Writes the tree (`tree` with the file at `opts.path`) and the commit on `head`; resolves the commit id. */
  const writeCommit = async (head: { id: string } | null, tree: Tree, entry: FileEntry): Promise<string> => {
    const files = fileTable(Object.entries(tree.files));
    files[opts.path] = entry;
    const treeBytes = encodeTree({ files });
    const commit: Commit = {
      // A meta object's id is the sha256 of its bytes (RemoteMeta): the commit is written beside its tree.
      tree: sha256Hex(treeBytes),
      parents: head ? [head.id] : [],
      author: who,
      committer: who,
      message: message.endsWith('\n') ? message : `${message}\n`,
      metadata,
    };
    const [, id] = await Promise.all([repo.meta.put(treeBytes), repo.meta.put(encodeCommit(commit))]);
    return id;
  };
  let ingested;
  // The first attempt's tree and commit, written while the pack is published.
  let first: Promise<string> | undefined;
  try {
    ingested = await ingestStream(
      writer,
      body,
      s.findBase,
      {},
      {
        path: opts.path,
        size: opts.size ?? null,
        limits: opts.limits,
        tmpDir: opts.tmpDir,
        signal: opts.signal,
      },
    );
    if (opts.signal?.aborted) throw new RemoteUnavailableError('the server is shutting down; upload aborted');
    // The body was read and checked whole: the pack is published (objects first, durable before any ref
    // can reach them) while the first attempt's tree and commit are written; the ref moves once both are
    // durable. (A pack that fails to publish leaves that tree and commit unreachable, as a lost
    // compare-and-swap does: gc removes them.)
    first = writeCommit(head0, baseTree, ingested.entry);
    first.catch(() => undefined);
    await writer.flush();
  } catch (e) {
    await writer.abort().catch(() => undefined);
    throw e;
  } finally {
    s.reader.close();
  }
  const { entry, report, received, mode } = ingested;

  let head = head0;
  for (let attempt = 1; ; attempt++) {
    if (attempt > 1) head = await branchHead(repo, ref);
    if (key && attempt > 1) {
      const dup = await findKey(repo, head?.id ?? null, key);
      if (dup) return duplicateOf(repo, branch, opts, dup, received, attempt - 1);
    }
    const id =
      attempt === 1 && first !== undefined
        ? await first
        : await writeCommit(head, head?.id === head0?.id ? baseTree : await treeAt(repo, head?.id ?? null), entry);
    try {
      await repo.updateRef(ref, head?.token ?? null, id);
      return {
        commit: id,
        parent: head?.id ?? null,
        branch,
        path: opts.path,
        duplicate: false,
        file: { format: entry.format, size: entry.size, sha256: entry.sha256, tensors: entry.tensors.length },
        objects: {
          new: report.storedObjects,
          deduplicated: report.dedupedObjects,
          delta: report.deltaObjects,
        },
        bytes: { received, stored: report.storedBytes },
        attempts: attempt,
        mode,
      };
    } catch (e) {
      // Another upload moved the branch (or holds its lock file) meanwhile: rebuild on the new head.
      const moved = e instanceof RefConflictError || e instanceof LockedError;
      if (!moved || attempt >= MAX_REF_ATTEMPTS) {
        if (moved)
          throw new RefConflictError(
            `${ref} kept moving: gave up after ${attempt} compare-and-swap attempts (the objects are stored; retry the upload)`,
            { ref, attempts: attempt },
          );
        throw e;
      }
      // Full jitter over a growing window, so racing uploads spread out.
      await sleep(Math.random() * Math.min(250, 4 * 2 ** Math.min(attempt, 6)));
    }
  }
}
