/**
 * Canonical JSON: the byte form that commits, trees and tags are hashed in.
 * Object keys are sorted by UTF-16 code units (as RFC 8785 / JCS does), there
 * is no whitespace, numbers use the ECMAScript shortest round-trip form, and
 * anything that has no single JSON spelling (NaN, Infinity, bigint, functions,
 * cycles, class instances) is rejected rather than silently coerced.
 *
 * @example
 * canonicalJson({ b: 1, a: [true, null, 'x'] }) // '{"a":[true,null,"x"],"b":1}'
 * sha256Hex(Buffer.from('abc')) // 'ba7816bf…'
 */
import { createHash } from 'node:crypto';
import { CorruptObjectError, InvalidArgumentError, LimitExceededError } from '../errors';

/** Deepest nesting accepted when encoding or decoding (defends against stack exhaustion). */
export const MAX_JSON_DEPTH = 64;
/** Largest meta object (commit, tree, tag) accepted: 256 MiB. */
export const MAX_META_BYTES = 256 * 1024 * 1024;

/** A JSON value as produced by JSON.parse. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Path of the value being encoded, joined only when an error needs it. */
function where(trail: Array<string | number>): string {
  let out = '$';
  for (const t of trail) out += typeof t === 'number' ? `[${t}]` : `.${t}`;
  return out;
}

function bad(trail: Array<string | number>, msg: string): InvalidArgumentError {
  const w = where(trail);
  return new InvalidArgumentError(`${w}: ${msg}`, { path: w });
}

// Strings made only of printable ASCII other than '"' and '\\' need no escaping.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const str = (s: string): string => (PLAIN.test(s) ? `"${s}"` : JSON.stringify(s));

// Appends tokens to `out` (joined once at the end: far less garbage than string concatenation).
function enc(v: unknown, out: string[], trail: Array<string | number>, stack: object[]): void {
  switch (typeof v) {
    case 'string':
      out.push(str(v));
      return;
    case 'boolean':
      out.push(v ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(v)) throw bad(trail, `${v} has no JSON form (only finite numbers are allowed)`);
      out.push(String(v)); // same as JSON: -0 -> "0", shortest round-trip digits
      return;
    case 'object': {
      if (v === null) {
        out.push('null');
        return;
      }
      if (stack.length >= MAX_JSON_DEPTH)
        throw new LimitExceededError(`${where(trail)}: nesting deeper than ${MAX_JSON_DEPTH}`);
      if (stack.includes(v)) throw bad(trail, 'circular reference');
      stack.push(v);
      if (Array.isArray(v)) {
        out.push('[');
        for (let i = 0; i < v.length; i++) {
          trail.push(i);
          if (v[i] === undefined) throw bad(trail, 'undefined inside an array has no JSON form');
          if (i > 0) out.push(',');
          enc(v[i], out, trail, stack);
          trail.pop();
        }
        out.push(']');
      } else {
        if (!isPlainObject(v)) throw bad(trail, `${v.constructor?.name ?? 'object'} instance is not plain JSON data`);
        const keys = Object.keys(v);
        if (keys.length > 1) keys.sort();
        out.push('{');
        let first = true;
        for (const k of keys) {
          const x = (v as Record<string, unknown>)[k];
          if (x === undefined) continue;
          trail.push(k);
          out.push(first ? `${str(k)}:` : `,${str(k)}:`);
          enc(x, out, trail, stack);
          trail.pop();
          first = false;
        }
        out.push('}');
      }
      stack.pop();
      return;
    }
    default:
      throw bad(trail, `a ${typeof v} has no JSON form`);
  }
}

/**
 * Canonical JSON text of a value: sorted keys (recursively), no whitespace,
 * `undefined` object members dropped. Throws InvalidArgumentError for
 * non-finite numbers, bigint, functions, symbols, undefined array items,
 * cycles and non-plain objects (Date, Map, Buffer…).
 */
export function canonicalJson(value: unknown): string {
  if (value === undefined) throw new InvalidArgumentError('value: undefined has no JSON form');
  const out: string[] = [];
  enc(value, out, [], []);
  return out.join('');
}

/** sha256 of bytes (or the UTF-8 of a string) as 64 lowercase hex characters. */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** True for a 64-char lowercase hex string (a meta object id). */
export function isSha256Hex(x: unknown): x is string {
  return typeof x === 'string' && /^[0-9a-f]{64}$/.test(x);
}

function depthOk(v: unknown, depth: number): boolean {
  if (v === null || typeof v !== 'object') return true;
  if (depth > MAX_JSON_DEPTH) return false;
  if (Array.isArray(v)) return v.every((x) => depthOk(x, depth + 1));
  for (const k of Object.keys(v)) if (!depthOk((v as Record<string, unknown>)[k], depth + 1)) return false;
  return true;
}

/**
 * Parses meta bytes strictly: valid UTF-8, valid JSON, nesting within limits,
 * and byte-identical to the canonical re-encoding (so one logical object has
 * exactly one id). Every failure is a CorruptObjectError; `what` names the
 * object in messages.
 */
export function parseCanonical(bytes: Uint8Array, what: string): JsonValue {
  if (!(bytes instanceof Uint8Array)) throw new InvalidArgumentError(`${what}: expected bytes`);
  if (bytes.byteLength > MAX_META_BYTES)
    throw new CorruptObjectError(`${what}: ${bytes.byteLength} bytes exceeds the ${MAX_META_BYTES}-byte limit`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new CorruptObjectError(`${what}: not valid UTF-8`);
  }
  let v: JsonValue;
  try {
    v = JSON.parse(text) as JsonValue;
  } catch (e) {
    throw new CorruptObjectError(`${what}: not valid JSON (${(e as Error).message})`);
  }
  if (!depthOk(v, 0)) throw new CorruptObjectError(`${what}: JSON nested deeper than ${MAX_JSON_DEPTH}`);
  let again: string;
  try {
    again = canonicalJson(v);
  } catch (e) {
    throw new CorruptObjectError(`${what}: ${(e as Error).message}`);
  }
  if (again !== text) throw new CorruptObjectError(`${what}: JSON is not in canonical form`);
  return v;
}
