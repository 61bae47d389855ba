/**
 * The s3:// transport: a bare coral repository laid out under a bucket prefix (the layout is in
 * lib/remote/transport.ts; tensor objects are an S3ObjectStore, lib/store/s3/store.ts).
 *
 * Refs are keys moved by compare-and-swap with S3 conditional writes:
 * - create: `PutObject` with `If-None-Match: *` (412 when the key exists);
 * - update: `PutObject` with `If-Match: <bare ETag>` (412 when the ref moved since it was read; Ceph
 *   RGW compares the header text with the bare ETag, so a quoted one never matches);
 * - delete: S3 servers (Ceph RGW 16 among them) ignore `If-Match` on DeleteObject, so a delete is a
 *   conditional overwrite with an empty body, a *tombstone*, which listRefs skips and which a later
 *   create replaces with `If-Match` on the tombstone's ETag. Tombstones are never removed: removing
 *   one unconditionally could remove a ref created meanwhile. Each costs one empty key.
 *
 * Some S3 servers ignore conditional headers silently. Before the first ref update on a remote, a
 * probe writes a scratch key twice with `If-None-Match: *` and once with a wrong `If-Match`; unless
 * both repeats get 412, every ref update throws RemoteUnsafeError (reads and object uploads still
 * work: only moving refs needs the guarantee).
 *
 * Meta objects are loose keys `objects/meta/<id[0:2]>/<id[2:]>` in MetaStore's on-disk form (raw
 * canonical JSON or "\0CB1" + Brotli), written with `If-None-Match: *`, verified (sha256) on read.
 *
 * @example
 * const remote = await openS3Remote('s3://models/llama', { endpoint: 'http://127.0.0.1:7480', create: true });
 * await remote.updateRef('refs/heads/main', null, commitId);
 * await remote.close();
 */
import * as crypto from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import {
  CoralError,
  CorruptObjectError,
  InvalidArgumentError,
  ObjectNotFoundError,
  RefConflictError,
  RemoteNotFoundError,
  RemoteUnsafeError,
  invalidParameter,
} from '../errors';
import { isSha256Hex, sha256Hex } from '../models/canonical';
import { decodeMeta } from '../models/meta';
import { isValidRefName } from '../models/refname';
import { metaFromDisk, metaToDisk } from '../odb/meta-store';
import {
  isNoSuchKey,
  isPreconditionFailed,
  openS3Client,
  parseS3Url,
  s3Error,
  type S3Handle,
} from '../store/s3/client';

export { parseS3Url };
import { S3ObjectStore } from '../store/s3/store';
import type { OpenRemoteOptions, RemoteMeta, RemoteRefValue, RemoteRepo } from './transport';

/** The marker object of a bare repository. */
export const BARE_FORMAT = 'coral-bare-1';
const REF_VALUE_RE = /^([0-9a-f]{64})\n?$/;

/** Bare (unquoted) ETag. */
function bare(etag: string | undefined): string {
  return (etag ?? '').replace(/"/g, '');
}

function checkRef(name: string): void {
  if (!isValidRefName(name) || name === 'HEAD') throw invalidParameter('ref', 'full ref name (refs/...)', name);
}

function checkCommitId(id: string, what: string): void {
  if (!isSha256Hex(id)) throw invalidParameter(what, '64-hex object id', id);
}

class S3Remote implements RemoteRepo {
  readonly transport = 's3';
  readonly meta: RemoteMeta;
  private probe: Promise<void> | null = null;
  private closed = false;

  constructor(
    readonly url: string,
    private readonly s3: S3Handle,
    private readonly bucket: string,
    private readonly prefix: string,
    readonly objects: S3ObjectStore,
  ) {
    this.meta = {
      has: (id) => this.metaHas(id),
      get: (id) => this.metaGet(id),
      put: (bytes) => this.metaPut(bytes),
    };
  }

  private err(e: unknown, op: string): Error {
    return s3Error(e, this.url, this.s3.endpoint, op);
  }

  private checkOpen(): void {
    if (this.closed) throw new InvalidArgumentError(`remote ${this.url} is closed`);
  }

  private async getText(key: string): Promise<{ body: Buffer; etag: string } | null> {
    try {
      const out = await this.s3.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { body: Buffer.from(await out.Body!.transformToByteArray()), etag: bare(out.ETag) };
    } catch (e) {
      if (isNoSuchKey(e)) return null;
      throw this.err(e, `read of ${key}`);
    }
  }

  /** PUT with a condition; resolves the new bare ETag, or null when the precondition failed. */
  private async putIf(
    key: string,
    body: Uint8Array,
    cond: { ifNoneMatch?: '*'; ifMatch?: string },
  ): Promise<string | null> {
    try {
      const out = await this.s3.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: body,
          IfNoneMatch: cond.ifNoneMatch,
          IfMatch: cond.ifMatch,
        }),
      );
      return bare(out.ETag);
    } catch (e) {
      // A PUT with If-Match on a missing key is a 404 on some servers: the ref moved (was removed).
      if (isPreconditionFailed(e) || (cond.ifMatch !== undefined && isNoSuchKey(e))) return null;
      throw this.err(e, `write of ${key}`);
    }
  }

  // ---- refs -----------------------------------------------------------------------------------

  async listRefs(): Promise<Map<string, RemoteRefValue>> {
    this.checkOpen();
    const names: string[] = [];
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.s3.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + 'refs/', ContinuationToken: token }),
        );
      } catch (e) {
        throw this.err(e, 'listing refs');
      }
      for (const o of page.Contents ?? []) {
        const name = o.Key!.slice(this.prefix.length);
        if ((o.Size ?? 0) > 0 && isValidRefName(name)) names.push(name);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const refs = new Map<string, RemoteRefValue>();
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++];
        const got = await this.getText(name);
        if (!got || got.body.length === 0) continue; // deleted meanwhile
        const m = REF_VALUE_RE.exec(got.body.toString('latin1'));
        if (!m) throw new CorruptObjectError(`ref ${name} at ${this.url} does not hold an object id`, { ref: name });
        refs.set(name, { id: m[1], token: got.etag });
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, names.length) }, worker));
    return new Map([...refs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  async headBranch(): Promise<string | null> {
    this.checkOpen();
    const got = await this.getText('HEAD');
    const m = got ? /^ref: refs\/heads\/(\S+)\s*$/.exec(got.body.toString('utf8')) : null;
    return m && isValidRefName(`refs/heads/${m[1]}`) ? m[1] : null;
  }

  /**
   * Checks once per remote that the server honours conditional writes (the file header). Throws
   * RemoteUnsafeError, with what failed, when it does not.
   */
  private checkConditionalWrites(): Promise<void> {
    this.probe ??= (async () => {
      const key = `tmp/probe-${crypto.randomBytes(8).toString('hex')}`;
      const first = await this.putIf(key, Buffer.from('probe 1\n'), { ifNoneMatch: '*' });
      const again = first === null ? null : await this.putIf(key, Buffer.from('probe 2\n'), { ifNoneMatch: '*' });
      const wrong =
        again !== null ? null : await this.putIf(key, Buffer.from('probe 3\n'), { ifMatch: '0'.repeat(32) });
      await this.s3.client
        .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }))
        .catch(() => undefined);
      const failed =
        first === null
          ? 'a create with If-None-Match: * on a new key was refused'
          : again !== null
            ? 'a second write with If-None-Match: * to an existing key succeeded (it must fail with 412)'
            : wrong !== null
              ? 'a write with a wrong If-Match ETag succeeded (it must fail with 412)'
              : null;
      if (failed)
        throw new RemoteUnsafeError(
          `${this.url} (endpoint ${this.s3.endpoint}): the server does not honour conditional writes: ${failed}. ` +
            'Refs there could lose concurrent updates, so coral does not move them',
          { url: this.url, endpoint: this.s3.endpoint },
        );
    })();
    // A network failure is not a verdict: let the next call probe again.
    this.probe.catch((e: unknown) => {
      if (!(e instanceof RemoteUnsafeError)) this.probe = null;
    });
    return this.probe;
  }

  checkRefUpdates(): Promise<void> {
    this.checkOpen();
    return this.checkConditionalWrites();
  }

  async updateRef(name: string, expected: string | null, next: string | null): Promise<void> {
    this.checkOpen();
    checkRef(name);
    if (expected !== null && (typeof expected !== 'string' || expected === ''))
      throw invalidParameter('expected', 'token from listRefs or null', expected);
    if (next !== null) checkCommitId(next, 'next');
    await this.checkConditionalWrites();
    const conflict = (why: string) =>
      new RefConflictError(`ref ${name} at ${this.url} ${why}; fetch and try again`, { ref: name, url: this.url });
    const body = next === null ? Buffer.alloc(0) : Buffer.from(`${next}\n`, 'latin1');
    if (expected !== null) {
      // Update or delete (tombstone) exactly the value that was read.
      if ((await this.putIf(name, body, { ifMatch: bare(expected) })) === null) throw conflict('moved meanwhile');
      return;
    }
    if (next === null) {
      // Deleting a ref that must not exist: nothing to do unless it exists.
      const cur = await this.currentRef(name);
      if (cur && cur.size > 0) throw conflict('exists');
      return;
    }
    if ((await this.putIf(name, body, { ifNoneMatch: '*' })) !== null) return;
    // The key exists: fine only when it is a tombstone (a deleted ref), which is replaced by CAS.
    const cur = await this.currentRef(name);
    if (!cur || cur.size > 0) throw conflict('already exists');
    if ((await this.putIf(name, body, { ifMatch: cur.etag })) === null) throw conflict('was created meanwhile');
  }

  private async currentRef(name: string): Promise<{ size: number; etag: string } | null> {
    try {
      const h = await this.s3.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + name }));
      return { size: h.ContentLength ?? 0, etag: bare(h.ETag) };
    } catch (e) {
      if (isNoSuchKey(e)) return null;
      throw this.err(e, `read of ${name}`);
    }
  }

  // ---- meta objects ---------------------------------------------------------------------------

  private metaKey(id: string): string {
    checkCommitId(id, 'id');
    return `objects/meta/${id.slice(0, 2)}/${id.slice(2)}`;
  }

  private async metaHas(id: string): Promise<boolean> {
    this.checkOpen();
    const key = this.metaKey(id);
    try {
      await this.s3.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return true;
    } catch (e) {
      if (isNoSuchKey(e)) return false;
      throw this.err(e, `lookup of meta object ${id}`);
    }
  }

  private async metaGet(id: string): Promise<Uint8Array> {
    this.checkOpen();
    const got = await this.getText(this.metaKey(id));
    if (!got) throw new ObjectNotFoundError(`meta object ${id} is not at ${this.url}`, { id, url: this.url });
    const raw = metaFromDisk(got.body);
    if (!raw)
      throw new CorruptObjectError(`meta object ${id} at ${this.url} is corrupt: its container does not decode`, {
        id,
        url: this.url,
      });
    const actual = sha256Hex(raw);
    if (actual !== id)
      throw new CorruptObjectError(`meta object ${id} at ${this.url} is corrupt: its content hashes to ${actual}`, {
        id,
        actual,
        url: this.url,
      });
    return raw;
  }

  private async metaPut(bytes: Uint8Array): Promise<string> {
    this.checkOpen();
    if (!(bytes instanceof Uint8Array)) throw invalidParameter('bytes', 'Uint8Array', bytes);
    decodeMeta(bytes);
    const id = sha256Hex(bytes);
    const key = this.metaKey(id);
    if ((await this.putIf(key, metaToDisk(bytes), { ifNoneMatch: '*' })) !== null) return id;
    // Already there: keep it if intact, else replace the damaged copy.
    try {
      await this.metaGet(id);
      return id;
    } catch (e) {
      if (!(e instanceof CoralError) || e.code !== CorruptObjectError.code) throw e;
    }
    try {
      await this.s3.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: metaToDisk(bytes) }),
      );
    } catch (e) {
      throw this.err(e, `write of meta object ${id}`);
    }
    return id;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.objects.close();
    this.s3.client.destroy();
  }
}

/**
 * Opens the bare repository at `s3://<bucket>/<prefix>`. With `create`, an empty repository is made
 * there when none exists (`coral-repo.json` and HEAD → refs/heads/main). RemoteNotFoundError for a
 * missing bucket or (without `create`) a prefix that holds no repository; RemoteAuthError;
 * RemoteUnavailableError.
 */
export async function openS3Remote(url: string, opts: OpenRemoteOptions = {}): Promise<RemoteRepo> {
  const { bucket, prefix, url: norm } = parseS3Url(url);
  const s3 = openS3Client({ endpoint: opts.endpoint, region: opts.region });
  const where = (op: string, e: unknown) => s3Error(e, norm, s3.endpoint, op);
  // The pack listing is read while the marker is checked (one round trip less); dropped if that fails.
  const opening = S3ObjectStore.open({ bucket, prefix, s3, url: norm });
  opening.catch(() => undefined);
  try {
    let marker: Buffer | null = null;
    try {
      const out = await s3.client.send(new GetObjectCommand({ Bucket: bucket, Key: prefix + 'coral-repo.json' }));
      marker = Buffer.from(await out.Body!.transformToByteArray());
    } catch (e) {
      if (!isNoSuchKey(e)) throw where('opening the repository', e);
    }
    if (marker) {
      let format: unknown;
      try {
        format = (JSON.parse(marker.toString('utf8')) as { format?: unknown }).format;
      } catch {
        format = undefined;
      }
      if (format !== BARE_FORMAT)
        throw new RemoteNotFoundError(`${norm}: coral-repo.json there is not a ${BARE_FORMAT} marker`, { url: norm });
    } else {
      if (!opts.create) throw new RemoteNotFoundError(`${norm}: no coral repository there`, { url: norm });
      const put = async (key: string, body: string) => {
        try {
          await s3.client.send(
            new PutObjectCommand({ Bucket: bucket, Key: prefix + key, Body: Buffer.from(body), IfNoneMatch: '*' }),
          );
        } catch (e) {
          if (!isPreconditionFailed(e)) throw where(`creating ${key}`, e);
        }
      };
      await put('HEAD', 'ref: refs/heads/main\n');
      await put('coral-repo.json', `{"format":"${BARE_FORMAT}"}\n`);
    }
    const objects = await opening;
    return new S3Remote(norm, s3, bucket, prefix, objects);
  } catch (e) {
    await opening.then((o) => o.close()).catch(() => undefined);
    s3.client.destroy();
    throw e;
  }
}
