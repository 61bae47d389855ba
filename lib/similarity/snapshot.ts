/**
 * The similarity index snapshot (`index.csx`, see index-file.ts): magic,
 * version, a checksummed JSON header (generation + absorbed-log offsets), then
 * the serialized SimilarityIndex.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CorruptIndexError } from '../errors';
import { SimilarityIndex } from './lsh-index';
import { FORMAT_VERSION, crc32, ioError } from './store-common';

export const SNAPSHOT = 'index.csx';
const SNAP_MAGIC = Buffer.from('CORALSIX');

export interface SnapshotHeader {
  generation: number;
  /** Log file name -> bytes of it already contained in the snapshot. */
  absorbed: Record<string, number>;
}

export function encodeSnapshot(h: SnapshotHeader, index: SimilarityIndex): Buffer {
  const json = Buffer.from(JSON.stringify({ v: FORMAT_VERSION, ...h }), 'utf8');
  const head = Buffer.alloc(8 + 4 + 4);
  SNAP_MAGIC.copy(head, 0);
  head.writeUInt32LE(FORMAT_VERSION, 8);
  head.writeUInt32LE(json.length, 12);
  const crc = Buffer.alloc(4);
  crc.writeUInt32LE(crc32(Buffer.concat([head, json])), 0);
  return Buffer.concat([head, json, crc, index.serialize()]);
}

export function decodeSnapshot(file: string, b: Buffer): { header: SnapshotHeader; index: SimilarityIndex } {
  const bad = (why: string) => new CorruptIndexError(`similarity snapshot ${file} is corrupt: ${why}`, { file });
  if (b.length < 20 || !b.subarray(0, 8).equals(SNAP_MAGIC)) throw bad('bad magic');
  const version = b.readUInt32LE(8);
  if (version !== FORMAT_VERSION) throw bad(`unsupported version ${version}`);
  const jlen = b.readUInt32LE(12);
  if (16 + jlen + 4 > b.length) throw bad('truncated header');
  if (crc32(b.subarray(0, 16 + jlen)) !== b.readUInt32LE(16 + jlen)) throw bad('header checksum mismatch');
  let header: SnapshotHeader;
  try {
    const j = JSON.parse(b.toString('utf8', 16, 16 + jlen)) as unknown;
    if (typeof j !== 'object' || j === null) throw new Error();
    const { generation, absorbed } = j as { generation?: unknown; absorbed?: unknown };
    if (
      typeof generation !== 'number' ||
      !Number.isInteger(generation) ||
      typeof absorbed !== 'object' ||
      absorbed === null
    )
      throw new Error();
    for (const v of Object.values(absorbed))
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Error();
    header = { generation, absorbed: absorbed as Record<string, number> };
  } catch {
    throw bad('header is not valid JSON of the expected form');
  }
  let index: SimilarityIndex;
  try {
    index = SimilarityIndex.deserialize(b.subarray(16 + jlen + 4));
  } catch (e) {
    if (e instanceof CorruptIndexError) throw bad(e.message);
    throw e;
  }
  return { header, index };
}

export function readSnapshot(dir: string): { header: SnapshotHeader; index: SimilarityIndex; stamp: string } {
  const file = path.join(dir, SNAPSHOT);
  let b: Buffer;
  let stamp: string;
  try {
    // One descriptor for the bytes and their stamp, so a snapshot replaced meanwhile cannot pair them wrongly.
    const fd = fs.openSync(file, 'r');
    try {
      stamp = snapshotStamp(fs.fstatSync(fd, { bigint: true }));
      b = fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    throw ioError(e, `cannot read ${file}`);
  }
  return { ...decodeSnapshot(file, b), stamp };
}

/**
 * Identifies one written snapshot file: snapshots are replaced by rename, so a compaction by any
 * process changes the inode (and in practice the size or mtime).
 */
export function snapshotStamp(st: fs.BigIntStats): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`;
}
