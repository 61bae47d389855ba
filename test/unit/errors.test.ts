// docs/errors.md documents every error code: each CoralError subclass in lib/errors.ts and each
// code the CLI prints on its own (CORAL_USAGE, CORAL_FSCK_FAILED, …), with the exit code `coral`
// really uses.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as errors from '../../lib/errors';
import { exitCodeFor } from '../../lib/cli/output';

const ROOT = path.resolve(__dirname, '..', '..');
const doc = fs.readFileSync(path.join(ROOT, 'docs', 'errors.md'), 'utf8');
const rows = new Map<string, string[]>();
for (const line of doc.split('\n')) {
  const m = /^\|\s*(CORAL_[A-Z0-9_]+)\s*\|(.*)\|\s*$/.exec(line);
  if (m)
    rows.set(
      m[1],
      m[2].split('|').map((c) => c.trim()),
    );
}

function libraryCodes(): string[] {
  const out = new Set<string>();
  for (const v of Object.values(errors)) {
    if (typeof v === 'function' && (v === errors.CoralError || v.prototype instanceof errors.CoralError))
      out.add((v as unknown as { code: string }).code);
  }
  // Also every code literal in the source, in case a class is not exported.
  for (const m of fs.readFileSync(path.join(ROOT, 'lib', 'errors.ts'), 'utf8').matchAll(/'(CORAL_[A-Z0-9_]+)'/g))
    out.add(m[1]);
  return [...out].sort();
}

function cliCodes(): string[] {
  const out = new Set<string>();
  const dir = path.join(ROOT, 'lib', 'cli');
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    for (const m of fs
      .readFileSync(path.join(dir, f), 'utf8')
      .matchAll(/\((CORAL_[A-Z0-9_]+)\)|code = '(CORAL_[A-Z0-9_]+)'/g))
      out.add(m[1] ?? m[2]);
  }
  return [...out].sort();
}

describe('docs/errors.md', () => {
  it('documents every code of lib/errors.ts', () => {
    const missing = libraryCodes().filter((c) => !rows.has(c));
    expect(missing).toEqual([]);
    expect(libraryCodes()).toEqual(
      expect.arrayContaining(['CORAL_ALREADY_EXISTS', 'CORAL_NOT_FOUND', 'CORAL_CORRUPT_INDEX']),
    );
  });

  it('documents every code the CLI prints', () => {
    expect(cliCodes().filter((c) => !rows.has(c))).toEqual([]);
  });

  it('gives each library code the exit code `coral` uses for it', () => {
    for (const c of libraryCodes()) {
      const exit = rows.get(c)![rows.get(c)!.length - 1];
      expect(`${c} ${exit}`).toBe(`${c} ${exitCodeFor({ code: c })}`);
    }
  });
});
