/**
 * The wire format of the HTTP remote (`coral serve`, lib/server/routes/remote.ts) shared by the client
 * (lib/remote/http.ts) and the server. JSON for refs and lookups; raw bytes for objects; one streamed
 * request per pack transaction.
 *
 * Routes, relative to the repository URL `http(s)://host:port/<name>`:
 * ```
 *   GET  /refs                    {head, refs: [{name, id, token}]}              read
 *   POST /refs                    {name, expected, next} -> {ok}                 write (compare-and-swap)
 *   POST /init                    creates an empty bare repository              write
 *   POST /meta/has                {ids} -> {have: boolean[]}                     read
 *   GET  /meta/<id>               the meta object in its on-disk form            read
 *   PUT  /meta                    body: on-disk form -> {id}                     write
 *   POST /objects/stat            {ids} -> {attrs: (StoredAttrs|null)[]}         read
 *   GET  /objects/<id>            stored bytes; attributes in X-Coral-Attrs      read
 *   GET  /objects                 NDJSON, one StoredAttrs a line                 read
 *   POST /packs                   a pack stream (below) -> {pack: PackInfo|null} write
 * ```
 *
 * A pack stream (Content-Type `application/x-coral-pack`) is a sequence of frames, each a 4-byte
 * big-endian length and that many bytes of JSON (`PackFrame`); a `put` frame is followed by exactly
 * `size` bytes of the object's stored bytes. The last frame is `{op: "commit"}`; a stream that ends
 * without it publishes nothing.
 *
 * @example
 * frameHeader({ op: 'put', id, attrs, size: bytes.length, checksum }) // then the bytes
 */
import type { ObjectAttrs } from '../store/object-store';

export const PACK_CONTENT_TYPE = 'application/x-coral-pack';
export const META_CONTENT_TYPE = 'application/x-coral-meta';
/** Response header carrying an object's attributes (base64url of JSON: header values are ASCII). */
export const ATTRS_HEADER = 'x-coral-attrs';
/** Largest JSON frame header in a pack stream. */
export const MAX_FRAME_HEADER = 1 << 20;
/** Most ids in one `has`/`stat` request. */
export const MAX_BATCH = 4096;

export type PackFrame =
  | { op: 'put'; id: string; attrs: ObjectAttrs; size: number; checksum: string }
  | { op: 'reuse'; id: string }
  | { op: 'commit' };

/** The length-prefixed JSON of one frame. */
export function frameHeader(f: PackFrame): Buffer {
  const json = Buffer.from(JSON.stringify(f), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  return out;
}

export function encodeAttrsHeader(attrs: object): string {
  return Buffer.from(JSON.stringify(attrs), 'utf8').toString('base64url');
}

export function decodeAttrsHeader(v: string): unknown {
  return JSON.parse(Buffer.from(v, 'base64url').toString('utf8'));
}

/** Repository names a server serves: one path segment, no leading dot (so no `..`, no `.coral-serve`). */
export const REPO_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
