// The path transport (lib/remote/file.ts) under the RemoteRepo conformance suite, over a bare repository
// and over the `.coral/` of an ordinary one, plus what only a path remote does.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RemoteNotFoundError, RemoteRejectedError, UnsupportedError } from '../../lib/errors';
import { init } from '../../lib/commands/init';
import { initBare, isBareRepository, openFileRemote } from '../../lib/remote/file';
import { openRemote } from '../../lib/remote/open';
import { MetaStore } from '../../lib/odb/meta-store';
import { LocalPackStore } from '../../lib/store/local';
import { metaFixture, runRemoteSuite, type RemoteHarness } from './conformance';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'coral-remote-file-'));
}

/** Flips one byte in the middle of the object's stored bytes in its pack. */
async function flipObjectByte(coral: string, id: string): Promise<void> {
  const store = await LocalPackStore.open(coral);
  try {
    const { bytes, attrs } = await store.get(id);
    const file = store.packPath(attrs.location!);
    const buf = fs.readFileSync(file);
    const at = buf.indexOf(Buffer.from(bytes.subarray(1000, 1064)));
    expect(at).toBeGreaterThan(0);
    buf[at + 7] ^= 0x40;
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, buf);
  } finally {
    await store.close();
  }
}

function harness(kind: 'bare' | 'worktree'): () => Promise<RemoteHarness> {
  return async () => {
    const dir = tmp();
    const repo = path.join(dir, kind === 'bare' ? 'r.coral' : 'work');
    if (kind === 'bare') await initBare(repo);
    else await init(repo, { branch: 'checked-out' }); // the suite moves main, which must not be checked out
    const coral = kind === 'bare' ? repo : path.join(repo, '.coral');
    const remote = await openRemote(repo);
    return {
      remote,
      another: () => openRemote(`file://${repo}`),
      corruptObject: (id) => flipObjectByte(coral, id),
      corruptMeta: async (id) => {
        const file = new MetaStore(path.join(coral, 'objects', 'meta'), path.join(coral, 'tmp')).pathOf(id);
        fs.chmodSync(file, 0o644);
        fs.writeFileSync(file, '{"type":"tree","v":1,"files":{"x":1}}');
      },
      cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
    };
  };
}

runRemoteSuite('path (bare repository)', harness('bare'));
runRemoteSuite('path (.coral of an ordinary repository)', harness('worktree'));

describe('path transport', () => {
  it('init --bare writes the marker; a missing path is RemoteNotFoundError unless create', async () => {
    const dir = tmp();
    try {
      const bare = await initBare(path.join(dir, 'b.coral'));
      expect(isBareRepository(bare)).toBe(true);
      expect(JSON.parse(fs.readFileSync(path.join(bare, 'coral-repo.json'), 'utf8'))).toEqual({
        format: 'coral-bare-1',
      });
      await expect(openRemote(path.join(dir, 'missing'))).rejects.toMatchObject({ code: RemoteNotFoundError.code });
      fs.mkdirSync(path.join(dir, 'full'));
      fs.writeFileSync(path.join(dir, 'full', 'x'), 'x');
      await expect(openRemote(path.join(dir, 'full'), { create: true })).rejects.toMatchObject({
        code: RemoteNotFoundError.code,
      });
      const created = await openRemote(path.join(dir, 'new'), { create: true });
      await created.close();
      expect(isBareRepository(path.join(dir, 'new'))).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to move the checked-out branch of a non-bare repository (git's denyCurrentBranch)", async () => {
    const dir = tmp();
    try {
      const work = await init(path.join(dir, 'w'));
      const remote = await openFileRemote(work);
      try {
        const { commitId } = metaFixture(9);
        await expect(remote.updateRef('refs/heads/main', null, commitId)).rejects.toMatchObject({
          code: RemoteRejectedError.code,
        });
        await remote.updateRef('refs/heads/other', null, commitId); // another branch is fine
        expect((await remote.listRefs()).get('refs/heads/other')?.id).toBe(commitId);
      } finally {
        await remote.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('http(s) remotes need a repository name; unknown schemes are invalid', async () => {
    // s3:// loads lib/remote/s3 on first use; a build without it says which module is missing.
    const s3 = await openRemote('s3://bucket/prefix').then(
      (r) => r.close().then(() => null),
      (e: unknown) => e as { code?: string; message: string },
    );
    if (s3 && s3.code === UnsupportedError.code) expect(s3.message).toContain('lib/remote/s3');
    await expect(openRemote('https://example.com/')).rejects.toMatchObject({ code: 'CORAL_INVALID_ARGUMENT' });
    await expect(openRemote('ftp://example.com/m')).rejects.toMatchObject({ code: 'CORAL_INVALID_ARGUMENT' });
  });
});
