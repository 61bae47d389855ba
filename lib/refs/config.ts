/**
 * Repository configuration: a JSON object in `.coral/config`, addressed with
 * dotted keys (`user.name` is `{"user":{"name":…}}`). Changes re-read the file
 * under its lock, apply the one change and replace the file atomically, so
 * concurrent `set`s of different keys are all kept.
 *
 * @example
 * const cfg = await Config.load('.coral');
 * await cfg.set('user.name', 'Ada');
 * cfg.getString('user.name') // 'Ada'
 * cfg.getNumber('gc.keepDays', 14)
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CorruptObjectError, InvalidArgumentError, invalidParameter } from '../errors';
import { canonicalJson } from '../models/canonical';
import { ioError } from '../util/fsutil';
import { LockFile } from './lock';
import { lockTimeoutMs } from '../util/waits';

export type ConfigValue = string | number | boolean | null | ConfigValue[] | { [k: string]: ConfigValue };
type Obj = { [k: string]: ConfigValue };

const KEY_PART = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;

function splitKey(key: unknown): string[] {
  if (typeof key !== 'string') throw invalidParameter('key', 'dotted string like "user.name"', key);
  const parts = key.split('.');
  if (parts.some((p) => !KEY_PART.test(p) || p === '__proto__'))
    throw invalidParameter('key', 'dotted key of [A-Za-z0-9_-] parts like "user.name"', key);
  return parts;
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

async function readConfigFile(file: string): Promise<Obj> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw ioError(e, 'read config', file);
  }
  if (text.trim() === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CorruptObjectError(`config ${file} is not valid JSON: ${(e as Error).message}`, { path: file });
  }
  if (!isObj(v)) throw new CorruptObjectError(`config ${file} must hold a JSON object`, { path: file });
  return v;
}

export class Config {
  readonly file: string;
  private data: Obj;

  private constructor(file: string, data: Obj) {
    this.file = file;
    this.data = data;
  }

  /** Loads `<coralDir>/config` (a missing file is an empty config). */
  static async load(coralDir: string): Promise<Config> {
    if (typeof coralDir !== 'string' || !coralDir) throw invalidParameter('coralDir', 'non-empty string', coralDir);
    const file = path.join(coralDir, 'config');
    return new Config(file, await readConfigFile(file));
  }

  /** Re-reads the file. */
  async reload(): Promise<void> {
    this.data = await readConfigFile(this.file);
  }

  /** The value at a dotted key (a deep copy for objects), or `fallback` when absent. */
  get(key: string, fallback?: ConfigValue): ConfigValue | undefined {
    let cur: ConfigValue = this.data;
    for (const p of splitKey(key)) {
      if (!isObj(cur) || !Object.prototype.hasOwnProperty.call(cur, p)) return fallback;
      cur = cur[p];
    }
    return cur !== null && typeof cur === 'object' ? structuredClone(cur) : cur;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  getString(key: string): string | undefined;
  getString(key: string, fallback: string): string;
  getString(key: string, fallback?: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string') throw this.typeError(key, 'a string', v);
    return v;
  }

  getNumber(key: string): number | undefined;
  getNumber(key: string, fallback: number): number;
  getNumber(key: string, fallback?: number): number | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(v.trim())) return Number(v);
    throw this.typeError(key, 'a number', v);
  }

  getBool(key: string): boolean | undefined;
  getBool(key: string, fallback: boolean): boolean;
  getBool(key: string, fallback?: boolean): boolean | undefined {
    const v = this.get(key);
    if (v === undefined) return fallback;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'string') {
      const s = v.trim().toLowerCase();
      if (s === 'true' || s === 'yes' || s === 'on' || s === '1') return true;
      if (s === 'false' || s === 'no' || s === 'off' || s === '0') return false;
    }
    if (v === 1 || v === 0) return v === 1;
    throw this.typeError(key, 'a boolean', v);
  }

  /** Sets a dotted key (creating parent objects) and persists the file atomically under its lock. */
  async set(key: string, value: ConfigValue): Promise<void> {
    const parts = splitKey(key);
    if (value === undefined) throw invalidParameter('value', 'JSON value', value);
    canonicalJson(value); // rejects NaN, Infinity, cycles, class instances
    const copy = structuredClone(value);
    await this.mutate((data) => {
      let cur: Obj = data;
      for (let i = 0; i < parts.length - 1; i++) {
        const next = cur[parts[i]];
        if (next === undefined) cur = cur[parts[i]] = {};
        else if (isObj(next)) cur = next;
        else
          throw new InvalidArgumentError(
            `config key ${parts.slice(0, i + 1).join('.')} holds a value, so ${key} cannot be set`,
            {
              key,
            },
          );
      }
      cur[parts[parts.length - 1]] = copy;
    });
  }

  /** Removes a dotted key (and parent objects left empty). Returns whether it existed. */
  async unset(key: string): Promise<boolean> {
    const parts = splitKey(key);
    let existed = false;
    await this.mutate((data) => {
      const chain: Obj[] = [data];
      for (let i = 0; i < parts.length - 1; i++) {
        const next = chain[i][parts[i]];
        if (!isObj(next)) return;
        chain.push(next);
      }
      const leaf = chain[chain.length - 1];
      if (!Object.prototype.hasOwnProperty.call(leaf, parts[parts.length - 1])) return;
      delete leaf[parts[parts.length - 1]];
      existed = true;
      for (let i = chain.length - 1; i > 0 && Object.keys(chain[i]).length === 0; i--)
        delete chain[i - 1][parts[i - 1]];
    });
    return existed;
  }

  /** Every leaf as [dottedKey, value], sorted by key. Arrays are leaves. */
  entries(): Array<[string, ConfigValue]> {
    const out: Array<[string, ConfigValue]> = [];
    const walk = (o: Obj, pre: string) => {
      for (const k of Object.keys(o).sort()) {
        const v = o[k];
        const key = pre ? `${pre}.${k}` : k;
        if (isObj(v)) walk(v, key);
        else out.push([key, structuredClone(v)]);
      }
    };
    walk(this.data, '');
    return out;
  }

  /** A deep copy of the whole config object. */
  toJSON(): Obj {
    return structuredClone(this.data);
  }

  private async mutate(fn: (data: Obj) => void): Promise<void> {
    const lock = await LockFile.acquire(this.file, { timeoutMs: lockTimeoutMs(path.dirname(this.file)) });
    try {
      const data = await readConfigFile(this.file);
      fn(data);
      await lock.write(`${JSON.stringify(data, null, 2)}\n`);
      await lock.commit();
      this.data = data;
    } finally {
      await lock.release();
    }
  }

  private typeError(key: string, expected: string, v: unknown): InvalidArgumentError {
    return new InvalidArgumentError(
      `config ${key} must be ${expected}, but is ${JSON.stringify(v)}; fix it with \`coral config ${key} <value>\``,
      { key, value: v },
    );
  }
}
