/**
 * Shared field checks for the meta models. Each check takes the error class to
 * throw: InvalidArgumentError while encoding caller input, CorruptObjectError
 * while decoding stored bytes.
 */
import { CorruptObjectError, InvalidArgumentError } from '../errors';

export type ErrClass = typeof InvalidArgumentError | typeof CorruptObjectError;

export function fail(Err: ErrClass, where: string, msg: string): Error {
  return new Err(`${where}: ${msg}`, { field: where });
}

export function plainObject(Err: ErrClass, x: unknown, where: string): Record<string, unknown> {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw fail(Err, where, 'expected an object');
  const proto: unknown = Object.getPrototypeOf(x);
  if (proto !== Object.prototype && proto !== null) throw fail(Err, where, 'expected a plain object');
  return x as Record<string, unknown>;
}

/** Rejects keys outside `allowed` (strict schema: unknown fields mean a newer or hostile writer). */
export function onlyKeys(Err: ErrClass, o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const k of Object.keys(o))
    if (!allowed.includes(k)) throw fail(Err, where, `unknown field ${JSON.stringify(k)}`);
}

export function str(Err: ErrClass, x: unknown, where: string): string {
  if (typeof x !== 'string') throw fail(Err, where, `expected a string, got ${x === null ? 'null' : typeof x}`);
  return x;
}

export function uint(Err: ErrClass, x: unknown, where: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0)
    throw fail(Err, where, `expected a non-negative safe integer, got ${String(x)}`);
  return x;
}

export function int(Err: ErrClass, x: unknown, where: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x))
    throw fail(Err, where, `expected a safe integer, got ${String(x)}`);
  return x;
}

export function arr(Err: ErrClass, x: unknown, where: string): unknown[] {
  if (!Array.isArray(x)) throw fail(Err, where, 'expected an array');
  return x;
}

const SHA256 = /^[0-9a-f]{64}$/;
/** A meta object id: sha256, 64 lowercase hex. */
export function metaId(Err: ErrClass, x: unknown, where: string): string {
  if (typeof x !== 'string' || !SHA256.test(x))
    throw fail(Err, where, `expected a 64-char lowercase hex id, got ${JSON.stringify(x)}`);
  return x;
}

const OBJ_ID = /^(?:[0-9a-f]{32}|[0-9a-f]{64})$/;
/** A store object id: a 32-hex content id (docs/content-ids.md) or a 64-hex sha256. */
export function objectId(Err: ErrClass, x: unknown, where: string): string {
  if (typeof x !== 'string' || !OBJ_ID.test(x))
    throw fail(Err, where, `expected a 32- or 64-char lowercase hex object id, got ${JSON.stringify(x)}`);
  return x;
}

/** The `type`/`v` header every meta object carries. */
export function header(Err: ErrClass, o: Record<string, unknown>, type: string, where: string): void {
  if (o.type !== type) throw fail(Err, where, `expected "type":"${type}", got ${JSON.stringify(o.type)}`);
  if (o.v !== 1) throw fail(Err, where, `unsupported version ${JSON.stringify(o.v)} (this build reads v1)`);
}
