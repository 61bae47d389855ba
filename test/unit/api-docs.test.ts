import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as api from '../../lib/index';

// Issue #12: every runtime export of lib/index.ts is documented in docs/api.md.
describe('docs/api.md', () => {
  const doc = readFileSync(resolve(__dirname, '../../docs/api.md'), 'utf8');
  const escape = (s: string): string => s.replace(/[$]/g, '\\$');

  it('mentions every runtime export', () => {
    const names = Object.keys(api).filter((n) => n !== 'default');
    expect(names.length).toBeGreaterThan(0);
    const missing = names.filter((n) => !new RegExp(`(^|[^\\w$])${escape(n)}(?![\\w$])`).test(doc));
    expect(missing).toEqual([]);
  });

  it('does not export internals', () => {
    for (const n of ['LockFile', 'withLock', 'pidAlive', 'ZERO_ID', 'resolveBase', 'peelToCommit', 'fromNative']) {
      expect(api).not.toHaveProperty(n);
    }
  });
});
