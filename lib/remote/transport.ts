/**
 * The contract between remote commands (push, fetch, clone, pull, sync) and the places a repository can live:
 * a path (a bare repository, or the `.coral/` of an ordinary one), an S3 bucket prefix, and later an HTTP
 * server (`coral serve`). Negotiation (lib/remote/negotiate.ts) and the commands are written once against
 * this interface; each transport implements it and runs one conformance suite (test/remote/conformance.ts).
 *
 * A remote repository holds three kinds of things:
 * - refs (`refs/heads/<b>`, `refs/tags/<t>`): moved only by compare-and-swap, and only after every object
 *   they reach is durable on the remote;
 * - meta objects (commits, trees, annotated tags): canonical bytes addressed by their sha256;
 * - tensor objects: an `ObjectStore`, written in immutable packs (one transaction = one pack).
 *
 * Layout of a bare repository (a directory or a bucket prefix): it mirrors `.coral/`, so a local
 * repository's `.coral/` is itself a valid remote.
 * ```
 *   coral-repo.json                  {"format":"coral-bare-1"}: marks the prefix as a repository
 *   HEAD                             "ref: refs/heads/main"
 *   refs/heads/<b>, refs/tags/<t>    64-hex commit (or tag object) id + "\n"
 *   objects/meta/<id[0:2]>/<id[2:]>  meta objects, in MetaStore's on-disk form
 *   objects/packs/pack-<hex>.h5      immutable HDF5 packs (readable by h5dump / h5py)
 *   objects/packs/pack-<hex>.idx     their indexes (lib/store/pack-index.ts); written after the pack, so an
 *                                    index names only a pack that is whole
 * ```
 *
 * @example
 * const remote = await openRemote('s3://bucket/models/llama', { endpoint: 'http://127.0.0.1:7480' });
 * const refs = await remote.listRefs();
 * await remote.updateRef('refs/heads/main', refs.get('refs/heads/main')?.token ?? null, newId);
 */
import type { ObjectStore } from '../store/object-store';

/** Value of one ref on the remote. */
export interface RemoteRefValue {
  /** Commit (or tag object) id the ref points at. */
  id: string;
  /**
   * Compare-and-swap token for `updateRef`: the S3 ETag (bare, unquoted) for S3, the id itself for a path.
   * Opaque to callers.
   */
  token: string;
}

/** Meta objects (commits, trees, tags) on a remote; `MetaStore` has the same shape. */
export interface RemoteMeta {
  has(id: string): Promise<boolean>;
  /** Canonical bytes, verified against the id (sha256); CorruptObjectError / ObjectNotFoundError. */
  get(id: string): Promise<Uint8Array>;
  /** Stores canonical bytes durably; resolves their id. Writing an existing id is a no-op. */
  put(bytes: Uint8Array): Promise<string>;
}

/** Options common to every transport. */
export interface OpenRemoteOptions {
  /** S3: endpoint URL (`--endpoint`, `remote.<name>.endpoint`, else AWS_ENDPOINT_URL); path-style when set. */
  endpoint?: string;
  /** S3: region (default from the SDK chain, else "us-east-1"). */
  region?: string;
  /** HTTP (coral serve): bearer token. */
  token?: string;
  /** Create an empty bare repository there when none exists (push to a new remote). Default false. */
  create?: boolean;
}

/** A repository at the other end of a URL. */
export interface RemoteRepo {
  /** The URL as given (normalised). */
  readonly url: string;
  /** "file", "s3" or "http". */
  readonly transport: string;
  /** Every ref: full name (`refs/heads/main`) → value. */
  listRefs(): Promise<Map<string, RemoteRefValue>>;
  /** The branch HEAD names (e.g. "main"), or null when HEAD is missing or detached. */
  headBranch(): Promise<string | null>;
  /**
   * Compare-and-swap of one ref: `expected` is the token read by `listRefs` (null = the ref must not exist),
   * `next` the new id (null = delete). RefConflictError when the ref moved meanwhile; RemoteUnsafeError
   * when the remote cannot do this safely. The caller has made every object `next` reaches durable first.
   */
  updateRef(name: string, expected: string | null, next: string | null): Promise<void>;
  /**
   * Optional: checks now, ahead of the first `updateRef`, that this remote can move refs safely (S3: the
   * conditional-write probe), so a push overlaps that check with its upload. Rejects as updateRef would
   * (RemoteUnsafeError); updateRef checks again anyway (the result is kept).
   */
  checkRefUpdates?(): Promise<void>;
  readonly meta: RemoteMeta;
  /** Tensor objects. Reads verify checksums; a transaction publishes one immutable pack. */
  readonly objects: ObjectStore;
  /** Releases connections and temp files. */
  close(): Promise<void>;
}
