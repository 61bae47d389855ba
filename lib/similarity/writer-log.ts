/**
 * Per-writer append-only logs of the similarity index (`log-*.csl`, see
 * index-file.ts): the header, the checksummed insert/remove/seal records, the
 * parser that tolerates a torn tail, replay order, and log ownership (name ->
 * host + pid) for deciding when an absorbed log may be deleted.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CorruptIndexError } from '../errors';
import { DTYPES, dtypeFromCode } from '../tensor/dtype';
import type { Fingerprint } from './fingerprint';
import type { EntryMeta, SimilarityIndex } from './lsh-index';
import { pidAlive } from '../util/process';
import { FORMAT_VERSION, crc32 } from './store-common';

const LOG_MAGIC = Buffer.from('CORALSIL');
export const OP_INSERT = 1;
export const OP_REMOVE = 2;
export const OP_SEAL = 3;
/** Record header: u32 body length, u32 its complement, u32 CRC-32 of the body. */
const REC_HEAD = 12;
const MAX_RECORD = 1 << 20;

export interface LogRecord {
  time: number;
  log: string;
  seq: number;
  op: number;
  id: string;
  fp?: Fingerprint;
  meta?: EntryMeta & { rms: number };
}

export function logHeader(scheme: string): Buffer {
  const s = Buffer.from(scheme, 'utf8');
  const b = Buffer.alloc(8 + 4 + 4 + s.length + 4);
  LOG_MAGIC.copy(b, 0);
  b.writeUInt32LE(FORMAT_VERSION, 8);
  b.writeUInt32LE(s.length, 12);
  s.copy(b, 16);
  b.writeUInt32LE(crc32(b.subarray(0, 16 + s.length)), 16 + s.length);
  return b;
}

export function encodeRecord(op: number, time: number, id: string, fp?: Fingerprint, meta?: EntryMeta): Buffer {
  const idb = Buffer.from(id, 'utf8');
  const shape = meta?.shape ?? fp?.shape ?? [];
  const sig = fp?.signature ?? new Uint8Array(0);
  const bodyLen = 1 + 8 + 2 + idb.length + (op === OP_INSERT ? 1 + 1 + 8 * shape.length + 8 + sig.byteLength : 0);
  const b = Buffer.alloc(REC_HEAD + bodyLen);
  b.writeUInt32LE(bodyLen, 0);
  b.writeUInt32LE(~bodyLen >>> 0, 4);
  let o = REC_HEAD;
  o = b.writeUInt8(op, o);
  o = b.writeDoubleLE(time, o);
  o = b.writeUInt16LE(idb.length, o);
  o += idb.copy(b, o);
  if (op === OP_INSERT && fp) {
    o = b.writeUInt8(DTYPES[meta?.dtype ?? fp.dtype].code, o);
    o = b.writeUInt8(shape.length, o);
    for (const d of shape) o = b.writeDoubleLE(d, o);
    o = b.writeDoubleLE(meta?.rms ?? fp.rms, o);
    b.set(sig, o);
  }
  b.writeUInt32LE(crc32(b.subarray(REC_HEAD)), 8);
  return b;
}

export interface ParsedLog {
  records: LogRecord[];
  /** Bytes consumed (header + whole valid records). */
  end: number;
  sealed: boolean;
}

/**
 * Parses log bytes from `start`. A short or bad record that reaches the end of
 * the file is a torn tail (ignored); a bad record followed by more data is corruption.
 */
export function parseLog(name: string, b: Buffer, start: number, scheme: string, bits: number): ParsedLog {
  const bad = (why: string) => new CorruptIndexError(`similarity log ${name} is corrupt: ${why}`, { file: name });
  const hlen = logHeader(scheme).length;
  if (b.length < hlen) return { records: [], end: 0, sealed: false }; // header torn: writer died at once
  if (!b.subarray(0, 8).equals(LOG_MAGIC)) throw bad('bad magic');
  if (b.readUInt32LE(8) !== FORMAT_VERSION) throw bad('unsupported version');
  const slen = b.readUInt32LE(12);
  if (16 + slen + 4 > b.length || crc32(b.subarray(0, 16 + slen)) !== b.readUInt32LE(16 + slen))
    throw bad('header checksum mismatch');
  const logScheme = b.toString('utf8', 16, 16 + slen);
  if (logScheme !== scheme) throw bad(`scheme ${logScheme} differs from the index scheme ${scheme}; rebuild the index`);
  let o = Math.max(start, hlen);
  const records: LogRecord[] = [];
  let sealed = false;
  let seq = 0;
  while (o < b.length) {
    if (b.length - o < REC_HEAD) break; // torn
    const len = b.readUInt32LE(o);
    if (len !== ~b.readUInt32LE(o + 4) >>> 0 || len > MAX_RECORD) throw bad(`bad record length at byte ${o}`);
    if (len > b.length - o - REC_HEAD) break; // torn
    const body = b.subarray(o + REC_HEAD, o + REC_HEAD + len);
    if (crc32(body) !== b.readUInt32LE(o + 8)) {
      if (o + REC_HEAD + len === b.length) break; // torn last record
      throw bad(`record checksum mismatch at byte ${o}`);
    }
    try {
      let p = 0;
      const op = body.readUInt8(p++);
      const time = body.readDoubleLE(p);
      p += 8;
      const idLen = body.readUInt16LE(p);
      p += 2;
      const id = body.toString('utf8', p, p + idLen);
      p += idLen;
      if (op === OP_INSERT) {
        const dtype = dtypeFromCode(body.readUInt8(p++));
        const nd = body.readUInt8(p++);
        const shape: number[] = [];
        for (let i = 0; i < nd; i++, p += 8) shape.push(body.readDoubleLE(p));
        const rms = body.readDoubleLE(p);
        p += 8;
        if (len - p !== bits / 8) throw new Error('signature length');
        const numel = shape.reduce((a, d) => a * d, 1);
        const fp: Fingerprint = {
          scheme,
          bits,
          signature: new Uint8Array(body.subarray(p)),
          dtype,
          shape,
          numel,
          samples: 0,
          exact: false,
          small: false,
          nonfinite: 0,
          mean: 0,
          rms,
        };
        records.push({ time, log: name, seq: seq++, op, id, fp, meta: { dtype, shape, rms } });
      } else if (op === OP_REMOVE) {
        records.push({ time, log: name, seq: seq++, op, id });
      } else if (op === OP_SEAL) {
        sealed = true;
      } else {
        throw new Error(`unknown op ${op}`);
      }
    } catch (e) {
      throw bad(`malformed record at byte ${o} (${e instanceof Error ? e.message : String(e)})`);
    }
    o += REC_HEAD + len;
  }
  return { records, end: o, sealed };
}

export function applyRecords(index: SimilarityIndex, records: LogRecord[]): void {
  records.sort((a, b) => a.time - b.time || (a.log < b.log ? -1 : a.log > b.log ? 1 : a.seq - b.seq));
  for (const r of records) {
    if (r.op === OP_INSERT) index.insert(r.id, r.fp!, r.meta);
    else index.remove(r.id);
  }
}

function logOwner(name: string): { host: string; pid: number } | null {
  const m = /^log-[0-9a-z]+-(.+)-(\d+)-[0-9a-f]+\.csl$/.exec(name);
  return m ? { host: m[1], pid: Number(m[2]) } : null;
}

export function safeHost(): string {
  return (
    os
      .hostname()
      .replace(/[^A-Za-z0-9_.]/g, '_')
      .slice(0, 64) || 'host'
  );
}

/** A fresh log name for this session; logOwner() parses it back. */
export function newLogName(): string {
  return `log-${Date.now().toString(36)}-${safeHost()}-${process.pid}-${crypto.randomBytes(4).toString('hex')}.csl`;
}

/**
 * Deletes logs that are fully absorbed by a just-written snapshot and finished
 * (sealed, or owned by a dead process on this host). `skip` is the caller's own log.
 */
export function removeFinishedLogs(
  dir: string,
  absorbed: Record<string, number>,
  skip: string | null,
  scheme: string,
  bits: number,
): void {
  const host = safeHost();
  for (const name of Object.keys(absorbed)) {
    if (name === skip) continue;
    const file = path.join(dir, name);
    let size: number;
    try {
      size = fs.statSync(file).size;
    } catch {
      continue;
    }
    if (size !== absorbed[name]) continue;
    let finished: boolean;
    try {
      finished = parseLog(name, fs.readFileSync(file), 0, scheme, bits).sealed;
    } catch {
      finished = true; // corrupt and absorbed (a rebuild superseded it)
    }
    const owner = logOwner(name);
    if (!finished && owner) {
      // A writer on another host cannot be checked from here: its log stays (pidAlive says alive).
      finished = owner.host === host && !pidAlive(owner.pid);
    }
    if (finished) fs.rmSync(file, { force: true });
  }
}
