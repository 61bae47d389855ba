// lib/refs/config-schema.ts: every key coral reads is in the schema (so `coral config` accepts it and
// checks its value), every key in the schema is documented in docs/config.md, and values are checked.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../lib/errors';
import { CONFIG_SCHEMA, checkConfigValue, isKnownConfigKey } from '../../lib/refs/config-schema';

const ROOT = path.resolve(__dirname, '..', '..');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('config schema', () => {
  it('lists every key lib/ reads', () => {
    const read = new Set<string>();
    for (const f of sources(path.join(ROOT, 'lib')))
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/config\.get(?:String|Number|Bool)?\('([A-Za-z0-9_.-]+)'/g))
        read.add(m[1]);
    expect(read.size).toBeGreaterThan(10);
    expect([...read].filter((k) => !isKnownConfigKey(k))).toEqual([]);
  });

  it('is documented in docs/config.md', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'config.md'), 'utf8');
    const missing = Object.keys(CONFIG_SCHEMA).filter((k) => !CONFIG_SCHEMA[k].readOnly && !doc.includes(`\`${k}\``));
    expect(missing).toEqual([]);
  });

  it('parses command-line strings by type and refuses out-of-range values', () => {
    expect(checkConfigValue('core.maxChainDepth', '4')).toBe(4);
    expect(checkConfigValue('core.deltaAgainstParent', 'no')).toBe(false);
    expect(checkConfigValue('similarity.minCosine', 0.5)).toBe(0.5);
    expect(checkConfigValue('user.name', '42')).toBe('42');
    expect(checkConfigValue('team.size', '4')).toBe(4);
    expect(checkConfigValue('team.name', 'ada')).toBe('ada');
    for (const [k, v] of [
      ['core.maxChainDepth', 'banana'],
      ['core.maxChainDepth', '1.5'],
      ['core.compressionLevel', '23'],
      ['similarity.bits', '96'],
      ['similarity.minCosine', '2'],
      ['core.deltaAgainstParent', 'maybe'],
      ['user.email', 3],
      ['core.nope', '1'],
      ['core.formatVersion', '2'],
    ] as const)
      expect(() => checkConfigValue(k, v), `${k}=${v}`).toThrow(InvalidArgumentError);
  });
});
