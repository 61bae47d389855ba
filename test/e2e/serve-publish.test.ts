// Issue #19 (hub downloads from a registry, publishing) and #15 (ingest) through a real `coral serve` child
// process on a free loopback port and the real `coral` CLI:
// - a clone that holds the base fetches / pulls a fine-tune and moves its stored delta, not the file;
// - `coral publish <rev> --to http://…/<name>`: tagged, cloned back byte-exact, a republish is a no-op, a
//   tag is not moved without --force, a read token is refused;
// - `coral ingest` into the served repository with a write token, cloned back byte-exact; a read token is
//   refused and nothing moves.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  coral,
  ok,
  sha256,
  tempDirs,
  tmpdir,
  okJson as json,
  commitAll as commit,
  worktreeSnapshot as snapshot,
} from '../helpers/cli';
import { startServe, type ServeProcess } from '../helpers/serve';
import { family, storedObjects, writeModel } from '../remote/helpers';

const dirs = tempDirs({ needDist: true });

/** A served root with one write and one read token, in a fresh work directory. */
function servedRoot(): { d: string; root: string; write: string; read: string } {
  const d = tmpdir('coral-serve-publish-');
  dirs.push(d);
  const root = path.join(d, 'srv');
  fs.mkdirSync(root);
  const write = ok(root, ['serve', 'token', 'add', 'ci', '--scope', 'write', root]).trim();
  const read = ok(root, ['serve', 'token', 'add', 'viewer', '--scope', 'read', root]).trim();
  return { d, root, write, read };
}

async function withServer<T>(root: string, fn: (s: ServeProcess) => Promise<T>): Promise<T> {
  const s = await startServe([root]);
  try {
    return await fn(s);
  } finally {
    await s.stop('SIGKILL');
  }
}

/** What committing the fine-tune stored locally: objects new to the store, and their stored bytes. */
async function commitAndMeasure(a: string, step: number): Promise<{ objects: number; bytes: number }> {
  const before = await storedObjects(path.join(a, '.coral'));
  writeModel(path.join(a, 'model.safetensors'), family(step));
  commit(a, `fine-tune ${step}`);
  const added = [...(await storedObjects(path.join(a, '.coral')))].filter(([id]) => !before.has(id));
  return { objects: added.length, bytes: added.reduce((n, [, s]) => n + s, 0) };
}

interface Transfer {
  objects: number;
  objectBytes: number;
  metaBytes: number;
  files: number;
  fileBytes: number;
}

describe('coral serve registry: a fine-tune whose base is local moves only its delta', () => {
  it('fetch and pull report the bytes moved against the file size; they match what the fine-tune stored', async () => {
    const { d, root, write } = servedRoot();
    const env = { CORAL_TOKEN: write };
    await withServer(root, async (s) => {
      const url = `${s.url}/llama`;
      const a = path.join(d, 'a');
      fs.mkdirSync(a);
      ok(a, ['init']);
      writeModel(path.join(a, 'model.safetensors'), family(0));
      ok(a, ['add', '.']);
      commit(a, 'base');
      ok(a, ['push', url, 'main'], env);
      const b = path.join(d, 'b');
      ok(d, ['clone', url, b], env); // b holds the base
      const fileSize = fs.statSync(path.join(a, 'model.safetensors')).size;

      // Fine-tune 1, pushed by a; b fetches it.
      const ft1 = await commitAndMeasure(a, 1);
      ok(a, ['push', url, 'main'], env);
      const f = json<Transfer>(b, ['fetch'], env);
      expect(f.objects).toBe(ft1.objects);
      expect(f.objectBytes).toBe(ft1.bytes);
      expect(f.files).toBe(1);
      expect(f.fileBytes).toBe(fileSize);
      expect(f.objectBytes + f.metaBytes).toBeLessThan(fileSize / 2);
      ok(b, ['pull'], env);
      expect(snapshot(b)).toEqual(snapshot(a));

      // Fine-tune 2: pull fetches and merges it.
      const ft2 = await commitAndMeasure(a, 2);
      ok(a, ['push', url, 'main'], env);
      const p = json<{ fetch: Transfer; merge: { status: string } }>(b, ['pull'], env);
      expect(p.merge.status).toBe('fast-forward');
      expect(p.fetch).toMatchObject({ objects: ft2.objects, objectBytes: ft2.bytes, files: 1, fileBytes: fileSize });
      expect(snapshot(b)).toEqual(snapshot(a));

      // Fine-tune 3: what pull prints (bytes moved against the changed file's size).
      await commitAndMeasure(a, 3);
      ok(a, ['push', url, 'main'], env);
      const text = ok(b, ['pull'], env);
      const m = /received (\d+) object\(s\) .*: .* for 1 changed file\(s\) of .* \((\d+\.\d)%\)/.exec(text);
      expect(m, text).not.toBeNull();
      expect(Number(m![2])).toBeLessThan(50);
      expect(snapshot(b)).toEqual(snapshot(a));
      expect(ok(b, ['fsck'])).toMatch(/0 problem/);
    });
  });
});

interface Published {
  status: string;
  tag: string;
  commit: string;
  objects: number;
  objectBytes: number;
  bytes: number;
}

describe('coral publish --to a coral serve registry', () => {
  it('tags the commit, clones back byte-exact, republish is a no-op, a tag moves only with --force', async () => {
    const { d, root, write, read } = servedRoot();
    const env = { CORAL_TOKEN: write };
    await withServer(root, async (s) => {
      const url = `${s.url}/models`;
      const a = path.join(d, 'a');
      fs.mkdirSync(a);
      ok(a, ['init']);
      writeModel(path.join(a, 'model.safetensors'), family(0));
      fs.writeFileSync(path.join(a, 'config.json'), '{"hidden": 64}\n');
      ok(a, ['add', '.']);
      const base = commit(a, 'base');
      const files = snapshot(a);

      const r = json<Published>(a, ['publish', 'HEAD', '--to', url, '--tag', 'v1'], env);
      expect(r).toMatchObject({ status: 'new', tag: 'v1', commit: base });
      expect(r.objects).toBeGreaterThan(0);
      const tagFile = path.join(root, 'models', 'refs', 'tags', 'v1');
      expect(fs.readFileSync(tagFile, 'utf8').trim()).toBe(base);

      // `clone --branch <tag>` checks the tag out on a detached HEAD, byte-exact.
      const c = path.join(d, 'c');
      expect(ok(d, ['clone', '--branch', 'v1', url, c], env)).toContain("checked out tag 'v1' on a detached HEAD");
      expect(snapshot(c)).toEqual(files);
      expect(ok(c, ['fsck'])).toMatch(/0 problem/);
      expect(ok(c, ['status'])).toMatch(/detached/i);
      // A plain clone of a registry that holds only tags says so; the tag checks out the same.
      const c2 = path.join(d, 'c2');
      expect(ok(d, ['clone', url, c2], env)).toContain('the remote has no branches, only tags: v1');
      ok(c2, ['checkout', '--detach', 'v1']);
      expect(snapshot(c2)).toEqual(files);

      // The same commit again: nothing sent, nothing recorded.
      const again = json<Published>(a, ['publish', 'HEAD', '--to', url, '--tag', 'v1'], env);
      expect(again).toMatchObject({ status: 'up-to-date', objects: 0, bytes: 0 });
      expect(ok(a, ['publish', 'HEAD', '--to', url, '--tag', 'v1'], env)).toContain('nothing to publish');

      // Another commit under the same tag: refused without --force, and the tag stays.
      const before = await storedObjects(path.join(a, '.coral'));
      writeModel(path.join(a, 'model.safetensors'), family(1));
      const ft = commit(a, 'fine-tune');
      const added = [...(await storedObjects(path.join(a, '.coral')))].filter(([id]) => !before.has(id));
      const refused = coral(a, ['publish', 'HEAD', '--to', url, '--tag', 'v1'], env);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('CORAL_ALREADY_EXISTS');
      expect(fs.readFileSync(tagFile, 'utf8').trim()).toBe(base);
      // With --force it moves, and only the fine-tune's objects go up.
      const forced = json<Published>(a, ['publish', 'HEAD', '--to', url, '--tag', 'v1', '--force'], env);
      expect(forced).toMatchObject({ status: 'forced', commit: ft, objects: added.length });
      expect(forced.objectBytes).toBe(added.reduce((n, [, size]) => n + size, 0));
      expect(fs.readFileSync(tagFile, 'utf8').trim()).toBe(ft);

      // Default tag names: a local tag's own name, else --name, else published-<hex>.
      ok(a, ['tag', 'v2']);
      expect(json<Published>(a, ['publish', 'v2', '--to', url], env).tag).toBe('v2');
      expect(json<Published>(a, ['publish', 'HEAD~1', '--to', url, '--name', 'llama-base'], env).tag).toBe(
        'llama-base',
      );
      expect(json<Published>(a, ['publish', 'HEAD~1', '--to', url], env).tag).toBe(`published-${base.slice(0, 12)}`);

      // A read token cannot publish; the token of a configured remote is used for its URL.
      writeModel(path.join(a, 'model.safetensors'), family(2));
      commit(a, 'fine-tune 2');
      const denied = coral(a, ['publish', 'HEAD', '--to', url, '--tag', 'v3'], { CORAL_TOKEN: read });
      expect(denied.code).toBe(10);
      expect(denied.stderr).toContain('CORAL_PERMISSION_DENIED');
      expect(fs.existsSync(path.join(root, 'models', 'refs', 'tags', 'v3'))).toBe(false);
      ok(a, ['remote', 'add', 'registry', url]);
      ok(a, ['config', 'remote.registry.token', write]);
      expect(json<Published>(a, ['publish', 'HEAD', '--to', url, '--tag', 'v3'], { CORAL_TOKEN: '' }).status).toBe(
        'new',
      );
      expect(
        json<Published>(a, ['publish', 'HEAD', '--to', 'registry', '--tag', 'v3'], { CORAL_TOKEN: '' }),
      ).toMatchObject({ status: 'up-to-date' });

      // The local record: one line per publish that created or moved a tag.
      const log = json<Array<{ format: string; destination: string; tag?: string; commit: string }>>(a, [
        'publish',
        '--list',
      ]);
      expect(log.map((l) => [l.format, l.destination, l.tag])).toEqual([
        ['coral', url, 'v1'],
        ['coral', url, 'v1'],
        ['coral', url, 'v2'],
        ['coral', url, 'llama-base'],
        ['coral', url, `published-${base.slice(0, 12)}`],
        ['coral', url, 'v3'],
      ]);
      expect(ok(a, ['publish', '--list'])).toContain(`${url} tag v1`);
    });
  });
});

describe('coral ingest into a coral serve child process', () => {
  it('a write token commits, an http clone is byte-exact; a read token is refused and nothing moves', async () => {
    const { d, root, write, read } = servedRoot();
    ok(d, ['init', '--bare', path.join(root, 'runs')]);
    await withServer(root, async (s) => {
      const url = `${s.url}/runs`;
      const file = path.join(d, 'step-100.safetensors');
      writeModel(file, family(1, 5));
      const r = json<{ commit: string; duplicate: boolean; path: string }>(
        d,
        ['ingest', url, file, '--path', 'ckpt/model.safetensors', '-m', 'step 100', '--step', '100'],
        { CORAL_TOKEN: write },
      );
      expect(r).toMatchObject({ duplicate: false, path: 'ckpt/model.safetensors' });
      const head = path.join(root, 'runs', 'refs', 'heads', 'main');
      expect(fs.readFileSync(head, 'utf8').trim()).toBe(r.commit);

      const c = path.join(d, 'c');
      ok(d, ['clone', url, c], { CORAL_TOKEN: read });
      expect(sha256(path.join(c, 'ckpt', 'model.safetensors'))).toBe(sha256(file));
      expect(ok(c, ['fsck'])).toMatch(/0 problem/);

      const other = path.join(d, 'step-200.safetensors');
      writeModel(other, family(2, 5));
      const denied = coral(d, ['ingest', url, other], { CORAL_TOKEN: read });
      expect(denied.code).toBe(10);
      expect(denied.stderr).toContain('CORAL_PERMISSION_DENIED');
      const none = coral(d, ['ingest', url, other], { CORAL_TOKEN: '' });
      expect(none.code).toBe(10);
      expect(none.stderr).toContain('CORAL_REMOTE_AUTH');
      expect(fs.readFileSync(head, 'utf8').trim()).toBe(r.commit);
    });
  });
});
