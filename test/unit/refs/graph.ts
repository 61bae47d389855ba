// Builds commit graphs in a temp repository for revparse/ancestry tests (not a test file).
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeCommit, encodeTree, type Signature } from '../../../lib/models';
import { MetaStore } from '../../../lib/odb/meta-store';
import { RefStore } from '../../../lib/refs';

export interface Repo {
  root: string;
  meta: MetaStore;
  refs: RefStore;
  treeId: string;
  /** Commits `name` with parents (by name) at committer time `ts`. */
  commit(name: string, parents: string[], ts: number): Promise<string>;
  ids: Map<string, string>;
  names: Map<string, string>;
  cleanup(): Promise<void>;
}

export async function makeRepo(): Promise<Repo> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'coral-graph-'));
  const meta = new MetaStore(path.join(root, 'objects', 'meta'), path.join(root, 'tmp'));
  const refs = new RefStore(root);
  await refs.setHeadSymbolic('refs/heads/main');
  const treeId = await meta.put(encodeTree({ files: {} }));
  const ids = new Map<string, string>();
  const names = new Map<string, string>();
  return {
    root,
    meta,
    refs,
    treeId,
    ids,
    names,
    async commit(name, parents, ts) {
      const sig: Signature = { name: 'T', email: 't@x', timestamp: ts, tzOffset: 0 };
      const id = await meta.put(
        encodeCommit({
          tree: treeId,
          parents: parents.map((p) => ids.get(p)!),
          author: sig,
          committer: sig,
          message: name,
          metadata: {},
        }),
      );
      ids.set(name, id);
      names.set(id, name);
      return id;
    },
    cleanup: () => fsp.rm(root, { recursive: true, force: true }),
  };
}
