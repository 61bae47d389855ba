import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError } from '../../../lib/errors';
import { Config } from '../../../lib/refs';

let root: string;
beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-config-'));
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

describe('Config', () => {
  it('missing file is empty; set persists as nested JSON', async () => {
    const c = await Config.load(root);
    expect(c.entries()).toEqual([]);
    expect(c.get('user.name')).toBeUndefined();
    expect(c.get('user.name', 'fallback')).toBe('fallback');
    await c.set('user.name', 'Ada');
    await c.set('user.email', 'ada@example.com');
    await c.set('gc.keepDays', 14);
    await c.set('core.fsync', true);
    await c.set('merge.strategies', ['ties', 'dare']);
    expect(JSON.parse(await fsp.readFile(path.join(root, 'config'), 'utf8'))).toEqual({
      user: { name: 'Ada', email: 'ada@example.com' },
      gc: { keepDays: 14 },
      core: { fsync: true },
      merge: { strategies: ['ties', 'dare'] },
    });
    const again = await Config.load(root);
    expect(again.getString('user.name')).toBe('Ada');
    expect(again.getNumber('gc.keepDays')).toBe(14);
    expect(again.getBool('core.fsync')).toBe(true);
    expect(again.get('user')).toEqual({ name: 'Ada', email: 'ada@example.com' });
    expect(again.entries()).toEqual([
      ['core.fsync', true],
      ['gc.keepDays', 14],
      ['merge.strategies', ['ties', 'dare']],
      ['user.email', 'ada@example.com'],
      ['user.name', 'Ada'],
    ]);
    expect(await fsp.readdir(root)).toEqual(['config']);
  });

  it('typed getters validate and coerce the obvious strings', async () => {
    const c = await Config.load(root);
    await c.set('a.n', '42');
    await c.set('a.b', 'yes');
    await c.set('a.s', 5);
    await c.set('a.bad', 'maybe');
    expect(c.getNumber('a.n')).toBe(42);
    expect(c.getBool('a.b')).toBe(true);
    expect(c.getNumber('a.missing', 7)).toBe(7);
    expect(c.getBool('a.missing', false)).toBe(false);
    expect(() => c.getString('a.s')).toThrow(InvalidArgumentError);
    expect(() => c.getBool('a.bad')).toThrow(/config a.bad must be a boolean/);
    expect(() => c.getNumber('a.b')).toThrow(InvalidArgumentError);
  });

  it('unset removes keys and empty parents', async () => {
    const c = await Config.load(root);
    await c.set('x.y.z', 1);
    await c.set('x.w', 2);
    expect(await c.unset('x.y.z')).toBe(true);
    expect(await c.unset('x.y.z')).toBe(false);
    expect(c.toJSON()).toEqual({ x: { w: 2 } });
    await c.unset('x.w');
    expect(c.toJSON()).toEqual({});
  });

  it('rejects bad keys and values', async () => {
    const c = await Config.load(root);
    await c.set('a', 1);
    await expect(c.set('a.b', 1)).rejects.toBeInstanceOf(InvalidArgumentError);
    for (const k of ['', 'a..b', '.a', 'a b', '__proto__.x', 'a.__proto__'])
      await expect(c.set(k, 1)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.set('n', NaN)).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(c.set('n', undefined as never)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(({} as Record<string, unknown>).x).toBeUndefined(); // no prototype pollution
  });

  it('concurrent writers through separate handles keep every key', async () => {
    const handles = await Promise.all(Array.from({ length: 8 }, () => Config.load(root)));
    await Promise.all(handles.map((h, i) => h.set(`k.v${i}`, i)));
    const c = await Config.load(root);
    expect(c.get('k')).toEqual(Object.fromEntries(handles.map((_, i) => [`v${i}`, i])));
  });

  it('corrupt config is a CorruptObjectError naming the file', async () => {
    await fsp.writeFile(path.join(root, 'config'), '{"a":');
    await expect(Config.load(root)).rejects.toThrow(/config .*config is not valid JSON/);
    await fsp.writeFile(path.join(root, 'config'), '[1]');
    await expect(Config.load(root)).rejects.toBeInstanceOf(CorruptObjectError);
  });
});
