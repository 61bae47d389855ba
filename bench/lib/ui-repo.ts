/**
 * A repository shaped like a long fine-tune for the web UI's bench and tests: one safetensors file of
 * `tensors` small F32 tensors named like a transformer (`model.layers.<i>.<kind>`), `commits` commits on
 * main, each rewriting `changed` tensors and storing a `loss` metric, a tag every 100 commits and a side
 * branch from the middle. Seeded: the same arguments build the same history (ids aside: times are real).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { withWriter } from '../../lib/context';
import { encodeCommit, type Tree } from '../../lib/models';
import { canonicalJson } from '../../lib/models/canonical';
import { Repository } from '../../lib/repository';
import { tensor } from '../../lib/tensor/tensor';

export const KINDS = [
  'self_attn.q_proj.weight',
  'self_attn.k_proj.weight',
  'self_attn.v_proj.weight',
  'self_attn.o_proj.weight',
  'mlp.up_proj.weight',
  'mlp.down_proj.weight',
  'mlp.gate_proj.weight',
  'input_layernorm.weight',
  'post_attention_layernorm.weight',
  'mlp.bias',
];

export function tensorNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `model.layers.${Math.floor(i / KINDS.length)}.${KINDS[i % KINDS.length]}`);
}

/** A safetensors file of F32 tensors (name → values). */
export function safetensorsBytes(tensors: Array<[string, Float32Array]>): Buffer {
  const hdr: Record<string, unknown> = {};
  let off = 0;
  for (const [name, w] of tensors) {
    hdr[name] = { dtype: 'F32', shape: [w.length], data_offsets: [off, off + w.byteLength] };
    off += w.byteLength;
  }
  let h = Buffer.from(JSON.stringify(hdr));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, ...tensors.map(([, w]) => Buffer.from(w.buffer, w.byteOffset, w.byteLength))]);
}

export interface UiRepoOptions {
  commits: number;
  tensors: number;
  /** Tensors rewritten per commit (default 5). */
  changed?: number;
  /** Elements per tensor (default 16). */
  elements?: number;
  /**
   * After the first commit (a real `add`), write each commit through the library's lower layers: the
   * changed tensors through the object writer (deduplicated, delta-encoded against their previous
   * version), the tree with the new segment ids and the file's sha256, the commit, then the ref. The
   * repository is as `add` + `commit` would make it, except that the staging index and the file on
   * disk stay at the first commit. Default false (every commit through `add`).
   */
  fast?: boolean;
}

/** Builds the repository in `dir` (created); returns the ids of main's commits, oldest first. */
export async function buildUiRepo(dir: string, opts: UiRepoOptions): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const repo = await Repository.init(dir);
  const names = tensorNames(opts.tensors);
  const el = opts.elements ?? 16;
  const changed = opts.changed ?? 5;
  let x = 12345;
  const rnd = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
  const values = names.map(() => Float32Array.from({ length: el }, () => rnd() - 0.5));
  const file = path.join(dir, 'model.safetensors');
  const ids: string[] = [];
  const t0 = 1_700_000_000;
  const bytes = () => safetensorsBytes(names.map((n, i) => [n, values[i]]));
  const step = (c: number) => {
    const out: number[] = [];
    if (c > 0)
      for (let k = 0; k < changed; k++) {
        const i = (c * 7 + k * 13) % names.length;
        const v = values[i];
        for (let j = 0; j < v.length; j++) v[j] += (rnd() - 0.5) * 1e-4;
        out.push(i);
      }
    return out;
  };
  const sig = (c: number) => ({ name: 'bench', email: 'bench@example.com', timestamp: t0 + c * 60, tzOffset: 0 });
  const after = async (c: number) => {
    if (c % 100 === 99) await repo.createTag(`v${(c + 1) / 100}`, ids[c]);
    if (c === Math.floor(opts.commits / 2)) await repo.createBranch('side', ids[c]);
  };
  try {
    fs.writeFileSync(file, bytes());
    await repo.add([file]);
    ids.push(await repo.commit({ message: 'step 0', author: sig(0), metadata: { metrics: { loss: 2 } } }));
    await after(0);
    let tree: Tree = structuredClone(await repo.treeOf(ids[0]));
    const entry = () => tree.files['model.safetensors'];
    const BATCH = opts.fast ? 50 : 1;
    for (let c = 1; c < opts.commits; c += BATCH) {
      const last = Math.min(opts.commits, c + BATCH);
      if (!opts.fast) {
        step(c);
        fs.writeFileSync(file, bytes());
        await repo.add([file]);
        ids.push(
          await repo.commit({
            message: `step ${c}`,
            author: sig(c),
            metadata: { metrics: { loss: 2 / (1 + c / 50) } },
          }),
        );
        await after(c);
        continue;
      }
      // Objects of a batch of commits in one writer session (one pack), then the trees, commits and refs.
      const trees: Tree[] = [];
      await withWriter(repo, 'bench', async (w) => {
        for (let k = c; k < last; k++) {
          const e = entry();
          for (const i of step(k)) {
            const s = e.segments[e.tensors[i].segment];
            s.object = (await w.put(tensor('F32', [el], values[i]), { id: s.object })).id;
          }
          e.sha256 = createHash('sha256').update(bytes()).digest('hex');
          trees.push(tree);
          tree = structuredClone(tree);
        }
      });
      for (let k = c; k < last; k++) {
        // The tree as encodeTree writes it, without validating again what changed only in ids and sha256.
        const t = trees[k - c];
        const treeId = await repo.meta.put(Buffer.from(canonicalJson({ type: 'tree', v: 1, files: t.files })));
        ids.push(
          await repo.meta.put(
            encodeCommit({
              tree: treeId,
              parents: [ids[k - 1]],
              author: sig(k),
              committer: sig(k),
              message: `step ${k}\n`,
              metadata: { metrics: { loss: 2 / (1 + k / 50) } },
            }),
          ),
        );
      }
      await repo.refs.updateRef('refs/heads/main', ids[last - 1], {
        expectedOld: ids[c - 1],
        message: `bench: steps ${c}..${last - 1}`,
      });
      for (let k = c; k < last; k++) await after(k);
    }
  } finally {
    await repo.close();
  }
  return ids;
}
