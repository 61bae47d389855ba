/**
 * Pieces shared by the persisted similarity index's file formats (snapshot.ts,
 * writer-log.ts) and its store (index-file.ts).
 */
import * as zlib from 'node:zlib';
import { IoError } from '../errors';

/** Version written in both the snapshot and the log headers. */
export const FORMAT_VERSION = 1;

export const crc32: (b: Uint8Array) => number = (zlib as unknown as { crc32: (b: Uint8Array) => number }).crc32;

export function ioError(e: unknown, what: string): IoError {
  const msg = e instanceof Error ? e.message : String(e);
  return new IoError(`${what}: ${msg}`, { cause: msg });
}
