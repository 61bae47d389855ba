// The RemoteRepo conformance suite (lib/remote/transport.ts): every transport (path, S3, HTTP) runs these
// tests through a factory that makes an empty remote. They hold to the contract only: refs by
// compare-and-swap (create, update, delete, conflicts, a second client), meta objects (put, get, has,
// verification), and tensor objects through the ObjectStore API.
import { describe, expect, it } from 'vitest';
import { ChecksumMismatchError, CorruptObjectError, ObjectNotFoundError, RefConflictError } from '../../lib/errors';
import { encodeCommit, encodeTree, fileTable, sha256Hex } from '../../lib/models';
import type { RemoteRepo } from '../../lib/remote/transport';

export interface RemoteHarness {
  /** An empty remote repository. */
  remote: RemoteRepo;
  /** A second, independent client of the same remote (another process would see the same). */
  another: () => Promise<RemoteRepo>;
  /** Damages the stored bytes of tensor object `id` (reads must fail verification). */
  corruptObject?: (id: string) => Promise<void>;
  /** Damages the stored bytes of meta object `id`. */
  corruptMeta?: (id: string) => Promise<void>;
  cleanup: () => Promise<void>;
}

const sig = { name: 'Conformance', email: 'c@example.com', timestamp: 1_700_000_000, tzOffset: 0 };

/** Canonical meta bytes: an empty tree and a commit of it (`n` varies the commit). */
export function metaFixture(n: number): { tree: Uint8Array; commit: Uint8Array; treeId: string; commitId: string } {
  const tree = encodeTree({ files: fileTable() });
  const treeId = sha256Hex(tree);
  const commit = encodeCommit({
    tree: treeId,
    parents: [],
    author: sig,
    committer: sig,
    message: `conformance ${n}`,
    metadata: {},
  });
  return { tree, commit, treeId, commitId: sha256Hex(commit) };
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * Writes fixture `n`'s tree and commit to `remote` and returns the commit id. The contract has the caller make
 * what a ref reaches durable before moving the ref; a server (coral serve) enforces it.
 */
export async function putCommit(remote: RemoteRepo, n: number): Promise<string> {
  const m = metaFixture(n);
  await remote.meta.put(m.tree);
  await remote.meta.put(m.commit);
  return m.commitId;
}

export function runRemoteSuite(name: string, make: () => Promise<RemoteHarness>): void {
  const withRemote = (fn: (h: RemoteHarness) => Promise<void>) => async () => {
    const h = await make();
    try {
      await fn(h);
    } finally {
      await h.remote.close();
      await h.cleanup();
    }
  };

  describe(`RemoteRepo conformance: ${name}`, () => {
    it(
      'starts empty, with a transport name and a URL',
      withRemote(async ({ remote }) => {
        expect((await remote.listRefs()).size).toBe(0);
        expect(typeof remote.url).toBe('string');
        expect(['file', 's3', 'http']).toContain(remote.transport);
        const head = await remote.headBranch();
        expect(head === null || typeof head === 'string').toBe(true);
      }),
    );

    it(
      'creates, updates and deletes refs by compare-and-swap',
      withRemote(async ({ remote }) => {
        const a = await putCommit(remote, 1);
        const b = await putCommit(remote, 2);
        await remote.updateRef('refs/heads/main', null, a);
        let refs = await remote.listRefs();
        expect(refs.get('refs/heads/main')?.id).toBe(a);
        const tokenA = refs.get('refs/heads/main')!.token;
        // Creating what exists is a conflict; so is updating from a stale token.
        await expect(remote.updateRef('refs/heads/main', null, b)).rejects.toMatchObject({
          code: RefConflictError.code,
        });
        await remote.updateRef('refs/heads/main', tokenA, b);
        refs = await remote.listRefs();
        expect(refs.get('refs/heads/main')?.id).toBe(b);
        await expect(remote.updateRef('refs/heads/main', tokenA, a)).rejects.toMatchObject({
          code: RefConflictError.code,
        });
        expect((await remote.listRefs()).get('refs/heads/main')?.id).toBe(b);
        // Delete: a stale token is refused, the current one works.
        await expect(remote.updateRef('refs/heads/main', tokenA, null)).rejects.toMatchObject({
          code: RefConflictError.code,
        });
        await remote.updateRef('refs/heads/main', refs.get('refs/heads/main')!.token, null);
        expect((await remote.listRefs()).has('refs/heads/main')).toBe(false);
        // Tags and nested branch names.
        await remote.updateRef('refs/tags/v1', null, a);
        await remote.updateRef('refs/heads/team/exp', null, b);
        refs = await remote.listRefs();
        expect([...refs.keys()].sort()).toEqual(['refs/heads/team/exp', 'refs/tags/v1']);
      }),
    );

    it(
      'lets exactly one of two clients win a race on the same ref',
      withRemote(async ({ remote, another }) => {
        const other = await another();
        try {
          const a = await putCommit(remote, 3);
          const b = await putCommit(remote, 4);
          const results = await Promise.allSettled([
            remote.updateRef('refs/heads/race', null, a),
            other.updateRef('refs/heads/race', null, b),
          ]);
          const won = results.filter((r) => r.status === 'fulfilled');
          const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
          expect(won.length).toBe(1);
          expect(lost.length).toBe(1);
          expect((lost[0].reason as { code?: string }).code).toBe(RefConflictError.code);
          const winner = results[0].status === 'fulfilled' ? a : b;
          expect((await other.listRefs()).get('refs/heads/race')?.id).toBe(winner);
          expect((await remote.listRefs()).get('refs/heads/race')?.id).toBe(winner);
        } finally {
          await other.close();
        }
      }),
    );

    it(
      'stores meta objects by their sha256 and verifies them on read',
      withRemote(async ({ remote, another, corruptMeta }) => {
        const m = metaFixture(5);
        expect(await remote.meta.has(m.treeId)).toBe(false);
        await expect(remote.meta.get(m.treeId)).rejects.toMatchObject({ code: ObjectNotFoundError.code });
        expect(await remote.meta.put(m.tree)).toBe(m.treeId);
        expect(await remote.meta.put(m.commit)).toBe(m.commitId);
        expect(await remote.meta.put(m.commit)).toBe(m.commitId); // idempotent
        expect(await remote.meta.has(m.commitId)).toBe(true);
        expect(Buffer.from(await remote.meta.get(m.commitId)).equals(Buffer.from(m.commit))).toBe(true);
        const other = await another();
        try {
          expect(Buffer.from(await other.meta.get(m.treeId)).equals(Buffer.from(m.tree))).toBe(true);
        } finally {
          await other.close();
        }
        if (corruptMeta) {
          await corruptMeta(m.commitId);
          await expect(remote.meta.get(m.commitId)).rejects.toMatchObject({ code: CorruptObjectError.code });
        }
      }),
    );

    it(
      'holds tensor objects through the ObjectStore API: one transaction, one pack, verified reads',
      withRemote(async ({ remote, another, corruptObject }) => {
        const a = bytes(5000, 1);
        const b = bytes(100_000, 2);
        const tx = remote.objects.beginWrite();
        expect(await tx.put('obj-a', a, { codec: 'raw', dtype: 'U8', shape: [5000], rawSize: 5000 })).toBe(true);
        expect(
          await tx.put('obj-b', b, {
            codec: 'raw',
            dtype: 'U8',
            shape: [100_000],
            rawSize: 100_000,
            extra: { depth: '0' },
          }),
        ).toBe(true);
        const info = await tx.commit();
        expect(info?.objects).toBe(2);
        expect(await remote.objects.has('obj-a')).toBe(true);
        const got = await remote.objects.get('obj-b');
        expect(Buffer.from(got.bytes).equals(Buffer.from(b))).toBe(true);
        expect(got.attrs.storedSize).toBe(100_000);
        expect(got.attrs.extra.depth).toBe('0');
        const other = await another();
        try {
          await other.objects.refresh();
          expect(await other.objects.has('obj-a')).toBe(true);
          expect((await other.objects.stat('obj-a')).rawSize).toBe(5000);
          // Writing an id the remote holds is a no-op.
          const tx2 = other.objects.beginWrite();
          expect(await tx2.put('obj-a', a, { codec: 'raw', dtype: 'U8', shape: [5000], rawSize: 5000 })).toBe(false);
          expect(await tx2.commit()).toBeNull();
        } finally {
          await other.close();
        }
        await expect(remote.objects.get('no-such-object')).rejects.toMatchObject({ code: ObjectNotFoundError.code });
        if (corruptObject) {
          await corruptObject('obj-b');
          // Read by a fresh client: both objects are below the default smallObjectMax (1 MiB), and a client
          // may keep the bytes of a pack's small objects it has already fetched (S3ObjectStore's windows).
          const fresh = await another();
          try {
            const err = await fresh.objects.get('obj-b').then(
              () => null,
              (e: unknown) => e as { code?: string },
            );
            expect([ChecksumMismatchError.code, CorruptObjectError.code]).toContain(err?.code);
          } finally {
            await fresh.close();
          }
        }
      }),
    );
  });
}
