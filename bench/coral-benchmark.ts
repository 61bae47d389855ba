/**
 * The Coral-style storage benchmark: two small models (a CNN of 23,946
 * parameters and an MLP of 567,434), each with five noisy variants (Gaussian
 * noise of sigma 0.001, 0.01, 0.05, 0.05, 0.05 added to every weight) and three
 * exact copies, written as real `.pth` files by Debian's torch (seeded) and
 * committed one file per commit (each variant is a new file, so only the
 * similarity index can find its base).
 *
 * Reports naive `.pth` bytes / repository bytes, where repository bytes are
 * what `coral stats` counts: the packs (.h5 + .idx) plus the meta objects
 * (commits, trees). The breakdown separates object payload, HDF5 overhead,
 * pack indexes and meta. Every file of every commit is checked byte-exact.
 *
 *   npx tsx bench/coral-benchmark.ts [--quick]
 */
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Repository } from '../lib/repository';
import { argFlag, emitJson, header, median, table } from './lib/harness';

const GEN = `
import torch, sys, os, torch.nn as nn
out = sys.argv[1]
torch.manual_seed(0)
class CNN(nn.Module):
    def __init__(s):
        super().__init__()
        s.conv1 = nn.Conv2d(1, 16, 3); s.conv2 = nn.Conv2d(16, 32, 3); s.conv3 = nn.Conv2d(32, 64, 3); s.fc = nn.Linear(64, 10)
class MLP(nn.Module):
    def __init__(s):
        super().__init__()
        s.fc1 = nn.Linear(784, 512); s.fc2 = nn.Linear(512, 256); s.fc3 = nn.Linear(256, 128); s.fc4 = nn.Linear(128, 10)
for name, M in [('cnn', CNN), ('mlp', MLP)]:
    base = M().state_dict()
    torch.save(base, os.path.join(out, f'{name}_base.pth'))
    g = torch.Generator().manual_seed(1 if name == 'cnn' else 2)
    for i, s in enumerate([0.001, 0.01, 0.05, 0.05, 0.05]):
        v = {k: t + torch.randn(t.shape, generator=g) * s for k, t in base.items()}
        torch.save(v, os.path.join(out, f'{name}_noisy{i+1}.pth'))
    for i in range(3):
        torch.save(base, os.path.join(out, f'{name}_copy{i+1}.pth'))
`;

export const ORDER = ['base', 'noisy1', 'noisy2', 'noisy3', 'noisy4', 'noisy5', 'copy1', 'copy2', 'copy3'];

const sha = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

async function dirBytes(d: string, filter: (f: string) => boolean = () => true): Promise<number> {
  let n = 0;
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) n += await dirBytes(p, filter);
    else if (filter(e.name)) n += fs.statSync(p).size;
  }
  return n;
}

export interface RunResult {
  naive: number;
  stored: number;
  ratio: number;
  payload: number;
  h5Overhead: number;
  idx: number;
  meta: number;
  /** Every byte under .coral/ (packs, indexes, meta, staging index, refs, reflogs, config, similarity index). */
  coralDir: number;
  packs: number;
  objects: number;
  deltas: number;
  seconds: number;
  exact: boolean;
}

export async function run(
  src: string,
  files: string[],
  config: Record<string, unknown>,
  verify = true,
): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-cbench-repo-'));
  try {
    const repo = await Repository.init(dir);
    for (const [k, v] of Object.entries(config)) await repo.config.set(k, v as never);
    let naive = 0;
    const commits: Array<{ id: string; file: string; sha: string }> = [];
    let seconds = 0;
    for (const f of files) {
      const dst = path.join(dir, f);
      fs.copyFileSync(path.join(src, f), dst);
      naive += fs.statSync(dst).size;
      const t0 = process.hrtime.bigint();
      await repo.add([dst]);
      const id = await repo.commit({ message: f });
      seconds += Number(process.hrtime.bigint() - t0) / 1e9;
      commits.push({ id, file: f, sha: sha(fs.readFileSync(dst)) });
    }
    const s = await repo.stats();
    let payload = 0;
    for await (const a of repo.store.list()) payload += a.storedSize;
    const h5 = await dirBytes(repo.layout.packs, (f) => f.endsWith('.h5'));
    const idx = await dirBytes(repo.layout.packs, (f) => f.endsWith('.idx'));
    const meta = await dirBytes(repo.layout.meta);
    const coralDir = await dirBytes(repo.layout.coral);
    let exact = true;
    if (verify) {
      const fresh = await Repository.open(dir);
      for (const c of commits) {
        const out = path.join(dir, 'verify.out');
        await fresh.exportFile(c.id, c.file, out);
        if (sha(fs.readFileSync(out)) !== c.sha) exact = false;
      }
      await fresh.close();
    }
    await repo.close();
    return {
      naive,
      stored: s.storedBytes,
      ratio: naive / s.storedBytes,
      payload,
      h5Overhead: h5 - payload,
      idx,
      meta,
      coralDir,
      packs: fs.readdirSync(repo.layout.packs).filter((f) => f.endsWith('.h5')).length,
      objects: s.objects,
      deltas: s.deltaObjects,
      seconds,
      exact,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const quick = argFlag('quick');
  header('coral-benchmark: CNN 23,946 + MLP 567,434 params, 5 noisy variants + 3 copies each, one .pth per commit');
  const src = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-cbench-files-'));
  try {
    const r = spawnSync('/usr/bin/python3', ['-c', GEN, src], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`torch generator failed: ${r.stderr}`);
    const files = ['cnn', 'mlp'].flatMap((m) => ORDER.map((v) => `${m}_${v}.pth`));
    const contenders: Record<string, Record<string, unknown>> = {
      'exact dedup only': { 'similarity.enabled': false, 'core.deltaAgainstParent': false },
      'parent deltas (no index)': { 'similarity.enabled': false },
      'similarity (default)': {},
    };
    const runs = quick ? 1 : 3;
    await run(src, files, {}, false); // warm-up (JIT, page cache), discarded
    const rows: Array<Record<string, string | number>> = [];
    const json: Record<string, unknown> = {};
    for (const [name, cfg] of Object.entries(contenders)) {
      const rs: RunResult[] = [];
      for (let i = 0; i < runs; i++) rs.push(await run(src, files, cfg, i === 0));
      const r0 = rs[0];
      const sec = median(rs.map((x) => x.seconds));
      rows.push({
        contender: name,
        naive: r0.naive,
        stored: r0.stored,
        ratio: r0.ratio,
        '.coral bytes': r0.coralDir,
        'ratio .coral': r0.naive / r0.coralDir,
        'ratio w/o meta': r0.naive / (r0.stored - r0.meta),
        'payload ratio': r0.naive / r0.payload,
        payload: r0.payload,
        'h5 ovh': r0.h5Overhead,
        idx: r0.idx,
        meta: r0.meta,
        packs: r0.packs,
        objects: r0.objects,
        deltas: r0.deltas,
        'ingest s': sec,
        'MB/s': r0.naive / sec / 1e6,
        exact: String(r0.exact),
      });
      json[name] = { ...r0, seconds: sec };
    }
    table(rows);
    const on = json['similarity (default)'] as RunResult;
    const off = json['parent deltas (no index)'] as RunResult;
    console.log(`throughput similarity on / off: ${(off.seconds / on.seconds).toFixed(3)}`);
    emitJson('coral-benchmark', { runs, contenders: json, throughputOnOff: off.seconds / on.seconds });
  } finally {
    fs.rmSync(src, { recursive: true, force: true });
  }
}

if (require.main === module)
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
