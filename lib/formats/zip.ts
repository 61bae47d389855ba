/**
 * A minimal ZIP reader and writer, enough for PyTorch archives and .npz.
 *
 * Reader: end-of-central-directory (incl. ZIP64 locator/record), central
 * directory, local headers for data offsets; stored and deflated members
 * (node:zlib). Everything is validated against the file size: offsets,
 * sizes, overlapping members, duplicate names, truncation.
 *
 * Writer: stored (optionally deflated) members with PyTorch's alignment:
 * caffe2/serialize/inline_container.cc pads each local header with an extra
 * field tagged "FB" filled with 'Z' so the payload starts on a 64-byte
 * boundary. ZIP64 extra fields and end records are written when sizes or
 * offsets need them (or when forced, for testing).
 * @see https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT
 *
 * @example
 * const src = await FileSource.open('model.pt');
 * const dir = await readZipDirectory(src);
 * const pkl = await readZipEntry(src, dir.entries.find((e) => e.name.endsWith('/data.pkl'))!);
 */
import * as zlib from 'node:zlib';
import { promisify } from 'node:util';
import { FormatError, InvalidArgumentError, LimitExceededError, UnsupportedFormatError } from '../errors';
import { type ByteSource, type Sink, dataView, u64le } from './io';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_LOCATOR64 = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

export const METHOD_STORE = 0;
export const METHOD_DEFLATE = 8;

/** Largest member this reader inflates or reads into one buffer. */
export const MAX_ENTRY_BYTES = 2 ** 32;

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated; others are listed but cannot be read. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  /** Absolute offset of the member's (compressed) payload. */
  dataOffset: number;
}

export interface ZipDirectory {
  entries: ZipEntry[];
  centralDirOffset: number;
  centralDirSize: number;
  /** Offset of the first end record (ZIP64 record if present, else the classic one). */
  endOffset: number;
  zip64: boolean;
}

const inflateRawAsync = promisify(zlib.inflateRaw);

// CRC-32 (IEEE): node >= 20.15 has zlib.crc32; otherwise a table fallback.
let CRC_TABLE: Uint32Array | undefined;
export function crc32(data: Uint8Array, prev = 0): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
  if (native) return native(data, prev) >>> 0;
  if (!CRC_TABLE) {
    CRC_TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      CRC_TABLE[n] = c >>> 0;
    }
  }
  let c = (prev ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function bad(src: ByteSource, msg: string, data?: Record<string, unknown>): never {
  throw new FormatError(`${src.label}: ${msg}`, data);
}

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function decodeName(b: Uint8Array, flags: number): string {
  if (flags & 0x800) {
    try {
      return utf8Fatal.decode(b);
    } catch {
      throw new FormatError('zip member name is not valid UTF-8');
    }
  }
  // CP437 for non-ASCII without the UTF-8 flag; ASCII is identical. Latin-1 is
  // a lossless stand-in for comparing and matching names.
  return Buffer.from(b).toString('latin1');
}

/** Locates the end record(s) and parses the central directory and local headers. */
export async function readZipDirectory(src: ByteSource): Promise<ZipDirectory> {
  if (src.size < 22) bad(src, `file is ${src.size} bytes, too short for a zip archive`);
  const tailLen = Math.min(src.size, 22 + 0xffff);
  const tailStart = src.size - tailLen;
  const tail = await src.read(tailStart, tailLen, 'zip end record');
  const tv = dataView(tail);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === SIG_EOCD) {
      const clen = tv.getUint16(i + 20, true);
      if (i + 22 + clen === tailLen) {
        eocd = i;
        break;
      }
      if (eocd < 0 && i + 22 + clen <= tailLen) eocd = i;
    }
  }
  if (eocd < 0) bad(src, 'no zip end-of-central-directory record (not a zip, or truncated)');
  const eocdAbs = tailStart + eocd;
  let disk = tv.getUint16(eocd + 4, true);
  let cdDisk = tv.getUint16(eocd + 6, true);
  let count = tv.getUint16(eocd + 10, true);
  const countDisk = tv.getUint16(eocd + 8, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  let endOffset = eocdAbs;
  let zip64 = false;
  if (eocdAbs >= 20) {
    const loc = await src.read(eocdAbs - 20, 20, 'zip64 locator');
    const lv = dataView(loc);
    if (lv.getUint32(0, true) === SIG_LOCATOR64) {
      zip64 = true;
      const recOff = u64le(loc, 8);
      if (lv.getUint32(16, true) > 1)
        throw new UnsupportedFormatError(`${src.label}: multi-disk zip archives are not supported`);
      if (!(recOff + 56 <= eocdAbs - 20)) bad(src, `zip64 end record offset ${recOff} is out of range`);
      const rec = await src.read(recOff, 56, 'zip64 end record');
      const rv = dataView(rec);
      if (rv.getUint32(0, true) !== SIG_EOCD64) bad(src, 'zip64 locator does not point at a zip64 end record');
      disk = rv.getUint32(16, true);
      cdDisk = rv.getUint32(20, true);
      count = u64le(rec, 32);
      cdSize = u64le(rec, 40);
      cdOffset = u64le(rec, 48);
      endOffset = recOff;
    }
  }
  if (!zip64 && (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX)) {
    bad(src, 'zip end record needs a zip64 record that is missing');
  }
  if (disk !== 0 || cdDisk !== 0 || (!zip64 && countDisk !== count)) {
    throw new UnsupportedFormatError(`${src.label}: multi-disk zip archives are not supported`);
  }
  if (!(cdOffset + cdSize <= endOffset)) {
    bad(src, `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past the end record at ${endOffset}`);
  }
  if (count * 46 > cdSize) bad(src, `central directory of ${cdSize} bytes cannot hold ${count} entries`);
  const cd = await src.read(cdOffset, cdSize, 'central directory');
  const cv = dataView(cd);
  const entries: ZipEntry[] = [];
  const names = new Set<string>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || cv.getUint32(p, true) !== SIG_CENTRAL) bad(src, `central directory entry ${i} is malformed`);
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let csize = cv.getUint32(p + 20, true);
    let usize = cv.getUint32(p + 24, true);
    const nlen = cv.getUint16(p + 28, true);
    const xlen = cv.getUint16(p + 30, true);
    const clen = cv.getUint16(p + 32, true);
    let diskStart = cv.getUint16(p + 34, true);
    let lho = cv.getUint32(p + 42, true);
    const end = p + 46 + nlen + xlen + clen;
    if (end > cdSize) bad(src, `central directory entry ${i} runs past the directory`);
    const name = decodeName(cd.subarray(p + 46, p + 46 + nlen), flags);
    // ZIP64 extended information: present fields follow the 0xFFFFFFFF markers, in order.
    let x = p + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = cv.getUint16(x, true);
      const sz = cv.getUint16(x + 2, true);
      if (x + 4 + sz > xend) bad(src, `extra field of ${JSON.stringify(name)} runs past its entry`);
      if (id === 0x0001) {
        let q = x + 4;
        const take = (): number => {
          if (q + 8 > x + 4 + sz) bad(src, `zip64 extra field of ${JSON.stringify(name)} is too short`);
          const v = u64le(cd, q);
          q += 8;
          return v;
        };
        if (usize === U32_MAX) usize = take();
        if (csize === U32_MAX) csize = take();
        if (lho === U32_MAX) lho = take();
        if (diskStart === U16_MAX) {
          if (q + 4 > x + 4 + sz) bad(src, `zip64 extra field of ${JSON.stringify(name)} is too short`);
          diskStart = cv.getUint32(q, true);
        }
      }
      x += 4 + sz;
    }
    if (diskStart !== 0) throw new UnsupportedFormatError(`${src.label}: multi-disk zip archives are not supported`);
    if (flags & 0x1) throw new UnsupportedFormatError(`${src.label}: member ${JSON.stringify(name)} is encrypted`);
    if (names.has(name)) bad(src, `duplicate zip member ${JSON.stringify(name)}`);
    names.add(name);
    if (
      !Number.isSafeInteger(csize) ||
      !Number.isSafeInteger(usize) ||
      !Number.isSafeInteger(lho) ||
      lho + 30 > cdOffset
    ) {
      bad(src, `member ${JSON.stringify(name)} has an out-of-range offset or size`);
    }
    entries.push({
      name,
      method,
      flags,
      crc32: crc,
      compressedSize: csize,
      uncompressedSize: usize,
      localHeaderOffset: lho,
      dataOffset: -1,
    });
    p = end;
  }
  // Local headers give the data offsets (their extra fields differ from the central ones).
  for (const e of entries) {
    const nameBytes = Buffer.byteLength(e.name, e.flags & 0x800 ? 'utf8' : 'latin1');
    const h = await src.read(
      e.localHeaderOffset,
      Math.min(30 + nameBytes, cdOffset - e.localHeaderOffset),
      'local header',
    );
    const hv = dataView(h);
    if (h.byteLength < 30 || hv.getUint32(0, true) !== SIG_LOCAL)
      bad(src, `member ${JSON.stringify(e.name)}: no local header at ${e.localHeaderOffset}`);
    const nlen = hv.getUint16(26, true);
    const xlen = hv.getUint16(28, true);
    if (nlen !== nameBytes || decodeName(h.subarray(30, 30 + nlen), e.flags) !== e.name) {
      bad(src, `member ${JSON.stringify(e.name)}: local header name does not match the central directory`);
    }
    e.dataOffset = e.localHeaderOffset + 30 + nlen + xlen;
    if (e.dataOffset + e.compressedSize > cdOffset) {
      bad(
        src,
        `member ${JSON.stringify(e.name)} data [${e.dataOffset}, ${e.dataOffset + e.compressedSize}) runs into the central directory at ${cdOffset}`,
      );
    }
  }
  const sorted = entries.slice().sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (prev.dataOffset + prev.compressedSize > sorted[i].localHeaderOffset) {
      bad(src, `zip members ${JSON.stringify(prev.name)} and ${JSON.stringify(sorted[i].name)} overlap`);
    }
  }
  return { entries, centralDirOffset: cdOffset, centralDirSize: cdSize, endOffset, zip64 };
}

export interface ReadEntryOptions {
  /** Check the CRC-32 of the member (default true). */
  verifyCrc?: boolean;
  /** Refuse members whose uncompressed size exceeds this (default MAX_ENTRY_BYTES). */
  maxBytes?: number;
}

/** Reads (and inflates) one member. */
export async function readZipEntry(src: ByteSource, e: ZipEntry, opts: ReadEntryOptions = {}): Promise<Uint8Array> {
  const max = opts.maxBytes ?? MAX_ENTRY_BYTES;
  if (e.uncompressedSize > max) {
    throw new LimitExceededError(
      `${src.label}: member ${JSON.stringify(e.name)} is ${e.uncompressedSize} bytes (limit ${max})`,
    );
  }
  let out: Uint8Array;
  if (e.method === METHOD_STORE) {
    if (e.compressedSize !== e.uncompressedSize)
      bad(src, `stored member ${JSON.stringify(e.name)} has different compressed and uncompressed sizes`);
    out = await src.read(e.dataOffset, e.compressedSize, `member ${JSON.stringify(e.name)}`);
  } else if (e.method === METHOD_DEFLATE) {
    const raw = await src.read(e.dataOffset, e.compressedSize, `member ${JSON.stringify(e.name)}`);
    try {
      const o = { maxOutputLength: Math.max(1, e.uncompressedSize) };
      out = raw.byteLength > 1 << 20 ? await inflateRawAsync(raw, o) : zlib.inflateRawSync(raw, o);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ERR_BUFFER_TOO_LARGE')
        bad(src, `member ${JSON.stringify(e.name)} inflates past its declared ${e.uncompressedSize} bytes`);
      bad(src, `member ${JSON.stringify(e.name)} has corrupt deflate data (${(err as Error).message})`);
    }
    if (out.byteLength !== e.uncompressedSize) {
      bad(src, `member ${JSON.stringify(e.name)} inflates to ${out.byteLength} bytes, declared ${e.uncompressedSize}`);
    }
  } else {
    throw new UnsupportedFormatError(
      `${src.label}: member ${JSON.stringify(e.name)} uses compression method ${e.method} (only stored and deflate are supported)`,
    );
  }
  if (opts.verifyCrc !== false && crc32(out) !== e.crc32)
    bad(src, `member ${JSON.stringify(e.name)} fails its CRC-32 check`);
  return out;
}

export interface ZipWriterOptions {
  /** Payload alignment for stored members (default 64, as PyTorch). 1 disables the padding field. */
  align?: number;
  /** Always write ZIP64 fields and end records (for testing readers). */
  forceZip64?: boolean;
}

export interface AddOptions {
  /** 'store' (default) or 'deflate'. */
  method?: 'store' | 'deflate';
  /** Override the writer's alignment for this member. */
  align?: number;
}

interface Written {
  name: Buffer;
  method: number;
  crc: number;
  csize: number;
  usize: number;
  lho: number;
}

/** DOS date 1980-01-01, time 00:00 (fixed so archives are reproducible). */
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** Streams a zip archive to a sink: add members in order, then finish(). */
export class ZipWriter {
  private readonly written: Written[] = [];
  private readonly names = new Set<string>();
  private finished = false;
  readonly align: number;
  readonly forceZip64: boolean;

  constructor(
    readonly sink: Sink,
    opts: ZipWriterOptions = {},
  ) {
    this.align = opts.align ?? 64;
    this.forceZip64 = opts.forceZip64 ?? false;
    if (!Number.isInteger(this.align) || this.align < 1 || this.align > 0x8000) {
      throw new InvalidArgumentError(`zip alignment must be an integer in [1, 32768], got ${this.align}`);
    }
  }

  /** Adds a member from one buffer or a list of chunks; returns the payload offset. */
  async add(name: string, data: Uint8Array | readonly Uint8Array[], opts: AddOptions = {}): Promise<number> {
    if (this.finished) throw new InvalidArgumentError('zip writer already finished');
    if (this.names.has(name)) throw new InvalidArgumentError(`duplicate zip member ${JSON.stringify(name)}`);
    this.names.add(name);
    let chunks = data instanceof Uint8Array ? [data] : [...data];
    let usize = 0;
    let crc = 0;
    for (const c of chunks) {
      usize += c.byteLength;
      crc = crc32(c, crc);
    }
    let method = METHOD_STORE;
    if (opts.method === 'deflate') {
      method = METHOD_DEFLATE;
      chunks = [zlib.deflateRawSync(Buffer.concat(chunks))];
    }
    const csize = chunks.reduce((s, c) => s + c.byteLength, 0);
    const nameBuf = Buffer.from(name, 'utf8');
    const ascii = nameBuf.byteLength === name.length;
    const big = this.forceZip64 || usize >= U32_MAX || csize >= U32_MAX;
    const lho = this.sink.position;
    const align = method === METHOD_STORE ? (opts.align ?? this.align) : 1;
    const z64Len = big ? 20 : 0;
    let padLen = 0;
    let fbLen = 0;
    if (align > 1) {
      const start = lho + 30 + nameBuf.byteLength + z64Len + 4;
      padLen = (align - (start % align)) % align;
      fbLen = 4 + padLen;
    }
    const head = Buffer.alloc(30 + nameBuf.byteLength + z64Len + fbLen);
    head.writeUInt32LE(SIG_LOCAL, 0);
    head.writeUInt16LE(big ? 45 : 20, 4);
    head.writeUInt16LE(ascii ? 0 : 0x800, 6);
    head.writeUInt16LE(method, 8);
    head.writeUInt16LE(0, 10);
    head.writeUInt16LE(DOS_DATE, 12);
    head.writeUInt32LE(crc, 14);
    head.writeUInt32LE(big ? U32_MAX : csize, 18);
    head.writeUInt32LE(big ? U32_MAX : usize, 22);
    head.writeUInt16LE(nameBuf.byteLength, 26);
    head.writeUInt16LE(z64Len + fbLen, 28);
    nameBuf.copy(head, 30);
    let q = 30 + nameBuf.byteLength;
    if (big) {
      head.writeUInt16LE(0x0001, q);
      head.writeUInt16LE(16, q + 2);
      head.writeBigUInt64LE(BigInt(usize), q + 4);
      head.writeBigUInt64LE(BigInt(csize), q + 12);
      q += 20;
    }
    if (fbLen) {
      head.write('FB', q, 'latin1');
      head.writeUInt16LE(padLen, q + 2);
      head.fill(0x5a /* 'Z' */, q + 4, q + 4 + padLen);
    }
    await this.sink.write(head);
    const dataOffset = this.sink.position;
    for (const c of chunks) if (c.byteLength) await this.sink.write(c);
    this.written.push({ name: nameBuf, method, crc, csize, usize, lho });
    return dataOffset;
  }

  /** Writes the central directory and end records. */
  async finish(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    const cdOffset = this.sink.position;
    const parts: Buffer[] = [];
    for (const w of this.written) {
      const needU = this.forceZip64 || w.usize >= U32_MAX;
      const needC = this.forceZip64 || w.csize >= U32_MAX;
      const needO = this.forceZip64 || w.lho >= U32_MAX;
      const zlen = (needU ? 8 : 0) + (needC ? 8 : 0) + (needO ? 8 : 0);
      const x = zlen ? 4 + zlen : 0;
      const h = Buffer.alloc(46 + w.name.byteLength + x);
      h.writeUInt32LE(SIG_CENTRAL, 0);
      h.writeUInt16LE(zlen ? 45 : 20, 4);
      h.writeUInt16LE(zlen ? 45 : 20, 6);
      h.writeUInt16LE(w.name.byteLength === w.name.toString('utf8').length ? 0 : 0x800, 8);
      h.writeUInt16LE(w.method, 10);
      h.writeUInt16LE(0, 12);
      h.writeUInt16LE(DOS_DATE, 14);
      h.writeUInt32LE(w.crc, 16);
      h.writeUInt32LE(needC ? U32_MAX : w.csize, 20);
      h.writeUInt32LE(needU ? U32_MAX : w.usize, 24);
      h.writeUInt16LE(w.name.byteLength, 28);
      h.writeUInt16LE(x, 30);
      h.writeUInt32LE(needO ? U32_MAX : w.lho, 42);
      w.name.copy(h, 46);
      let q = 46 + w.name.byteLength;
      if (zlen) {
        h.writeUInt16LE(0x0001, q);
        h.writeUInt16LE(zlen, q + 2);
        q += 4;
        if (needU) {
          h.writeBigUInt64LE(BigInt(w.usize), q);
          q += 8;
        }
        if (needC) {
          h.writeBigUInt64LE(BigInt(w.csize), q);
          q += 8;
        }
        if (needO) h.writeBigUInt64LE(BigInt(w.lho), q);
      }
      parts.push(h);
    }
    const cd = Buffer.concat(parts);
    await this.sink.write(cd);
    const cdSize = cd.byteLength;
    const n = this.written.length;
    const z64 = this.forceZip64 || n >= U16_MAX || cdOffset >= U32_MAX || cdSize >= U32_MAX;
    if (z64) {
      const recOff = this.sink.position;
      const rec = Buffer.alloc(56 + 20);
      rec.writeUInt32LE(SIG_EOCD64, 0);
      rec.writeBigUInt64LE(44n, 4);
      rec.writeUInt16LE(45, 12);
      rec.writeUInt16LE(45, 14);
      rec.writeBigUInt64LE(BigInt(n), 24);
      rec.writeBigUInt64LE(BigInt(n), 32);
      rec.writeBigUInt64LE(BigInt(cdSize), 40);
      rec.writeBigUInt64LE(BigInt(cdOffset), 48);
      rec.writeUInt32LE(SIG_LOCATOR64, 56);
      rec.writeBigUInt64LE(BigInt(recOff), 64);
      rec.writeUInt32LE(1, 72);
      await this.sink.write(rec);
    }
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(SIG_EOCD, 0);
    eocd.writeUInt16LE(z64 ? Math.min(n, U16_MAX) : n, 8);
    eocd.writeUInt16LE(z64 ? Math.min(n, U16_MAX) : n, 10);
    eocd.writeUInt32LE(z64 && cdSize >= U32_MAX ? U32_MAX : cdSize, 12);
    eocd.writeUInt32LE(z64 && (cdOffset >= U32_MAX || this.forceZip64) ? U32_MAX : cdOffset, 16);
    await this.sink.write(eocd);
  }
}
