// The CommonJS entry (dist/index.js, rewritten by scripts/lazy-index.js) loads a re-exported module on
// first use: requiring coral-native loads neither the native addon nor the server, the S3 and hub
// clients, the training integrations or the git extension, yet exports exactly what lib/index.ts does.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as api from '../../lib/index';

const root = path.resolve(__dirname, '..', '..');
const dist = path.join(root, 'dist', 'index.js');

function run(code: string): string {
  return execFileSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' });
}

describe('dist/index.js', () => {
  it('exports the names of lib/index.ts and loads only what is used', () => {
    const out = JSON.parse(
      run(`
        const c = require(${JSON.stringify(dist)});
        const loaded = () => Object.keys(require.cache).map((k) => k.replace(/\\\\/g, '/'));
        const atLoad = loaded();
        const names = Object.keys(c);
        const before = { hub: typeof c.HubClient, server: typeof c.startServer, git: typeof c.gitExtension.install };
        process.stdout.write(JSON.stringify({ atLoad, names, before, after: loaded() }));
      `),
    ) as { atLoad: string[]; names: string[]; before: Record<string, string>; after: string[] };
    expect(out.names.sort()).toEqual(
      Object.keys(api)
        .filter((n) => n !== 'default')
        .sort(),
    );
    const heavy =
      /\/(native|repository|server\/app|remote\/hf-hub|train\/|git\/)|@huggingface|@aws-sdk|fastify|prom-client/;
    expect(out.atLoad.filter((k) => heavy.test(k))).toEqual([]);
    expect(out.before).toEqual({ hub: 'function', server: 'function', git: 'function' });
    expect(out.after.some((k) => k.includes('/dist/remote/hf-hub.js'))).toBe(true);
  });

  it('gives the same values through require and the ES module facade', () => {
    const out = run(`
      const c = require(${JSON.stringify(dist)});
      import(${JSON.stringify(path.join(root, 'dist', 'index.mjs'))}).then((m) => {
        const same = ['Repository', 'CoralError', 'HubClient', 'formats', 'runtime', 'tensor', 'startServer'].every((n) => m[n] === c[n]);
        process.stdout.write(String(same && m.default === c && typeof c.runtime.sourceDigest === 'string'));
      });
    `);
    expect(out).toBe('true');
  });
});
