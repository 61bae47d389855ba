/**
 * The web UI's API (lib/server/ui, docs/ui.md) on a large history: the requests each page makes, timed
 * through a real `coral ui`-style server (in this process, on a loopback socket) against a baseline of the
 * same run, `coral log -n 100` done in process (Repository.open + log of 100 commits).
 *
 * Workload: a repository of `commits` commits (default 1000; --quick 300) on one safetensors file of 500
 * small F32 tensors named like a transformer, 5 tensors changed per commit, a `loss` metric per commit, a
 * tag every 100 commits and a side branch (bench/lib/ui-repo.ts; commits after the first written through
 * the object writer and the meta store, as `add` + `commit` would write them).
 *
 * Pages and their requests (cold: a fresh server, nothing cached; warm: the same requests again):
 *   graph:   GET /api/r/<repo>/refs + /commits?limit=100   (every commit read for the topological order)
 *   commit:  GET /api/r/<repo>/commit/main                 (500 tensors' stored attributes)
 *   diff:    GET /api/r/<repo>/diff?a=main~1&b=main        (two adjacent commits, metrics of the changed tensors)
 *   storage: GET /api/r/<repo>/storage                     (every object's attributes, 200 commits' trees)
 * Target: every page under 1 s cold. Medians of `runs` runs.
 *
 *   node --import tsx bench/ui.ts [--quick]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Repository } from '../lib/repository';
import { startServer } from '../lib/server/index';
import { argFlag, emitJson, header, median, table } from './lib/harness';
import { buildUiRepo } from './lib/ui-repo';

const quick = argFlag('quick');
const commits = quick ? 300 : 1000;
const tensors = 500;
const runs = quick ? 3 : 5;

async function main(): Promise<void> {
  header(`web UI API: ${commits} commits x ${tensors} tensors, medians of ${runs} runs`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-ui-'));
  try {
    const t0 = process.hrtime.bigint();
    await buildUiRepo(dir, { commits, tensors, fast: true });
    console.log(`# built in ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s`);

    const pages: Record<string, string[]> = {
      graph: ['refs', 'commits?limit=100'],
      commit: ['commit/main'],
      diff: ['diff?a=main~1&b=main'],
      storage: ['storage'],
    };
    const cold: Record<string, number[]> = {};
    const warm: Record<string, number[]> = {};
    const base: number[] = [];
    for (let r = 0; r < runs + 1; r++) {
      // Baseline: `coral log -n 100` in process.
      let t = process.hrtime.bigint();
      const repo = await Repository.open(dir);
      const log = await repo.log({ limit: 100 });
      await repo.close();
      if (log.length !== 100) throw new Error(`log returned ${log.length} commits`);
      const tBase = Number(process.hrtime.bigint() - t) / 1e9;

      const server = await startServer({ repository: dir, repositoryName: 'bench', ui: true });
      try {
        const get = async (p: string) => {
          const res = await fetch(`${server.url}/api/r/bench/${p}`);
          if (res.status !== 200) throw new Error(`${p}: HTTP ${res.status} ${await res.text()}`);
          return res.json();
        };
        for (const pass of [cold, warm])
          for (const [page, reqs] of Object.entries(pages)) {
            t = process.hrtime.bigint();
            for (const q of reqs) await get(q);
            const s = Number(process.hrtime.bigint() - t) / 1e9;
            if (r > 0) (pass[page] ??= []).push(s); // the first run warms the JIT
          }
      } finally {
        await server.close();
      }
      if (r > 0) base.push(tBase);
    }
    const baseline = median(base);
    const rows = Object.keys(pages).map((page) => ({
      page,
      'cold ms': median(cold[page]) * 1000,
      'warm ms': median(warm[page]) * 1000,
      'cold / log -n 100': median(cold[page]) / baseline,
      'under 1 s': median(cold[page]) < 1 ? 'yes' : 'NO',
    }));
    console.log(`baseline (coral log -n 100, in process): ${(baseline * 1000).toFixed(1)} ms`);
    table(rows);
    emitJson('ui', {
      commits,
      tensors,
      runs,
      baselineLogMs: baseline * 1000,
      pages: Object.fromEntries(
        Object.keys(pages).map((p) => [
          p,
          { coldMs: median(cold[p]) * 1000, warmMs: median(warm[p]) * 1000, ratio: median(cold[p]) / baseline },
        ]),
      ),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
