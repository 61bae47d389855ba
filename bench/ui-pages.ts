/**
 * The web UI's pages in Debian's headless Chromium (playwright-core) on a large history: the time from
 * navigation to the page's content on screen, against a baseline measured in the same run: the same page's
 * API requests made directly with fetch (so the ratio is what the browser adds: the bundle, rendering, the
 * lane layout, the heatmap).
 *
 * Workload: bench/lib/ui-repo.ts (the repository bench/ui.ts uses): `commits` commits (default 1000; --quick
 * 300) on one safetensors file of 500 tensors, a tag every 100 commits, a side branch.
 *
 * Pages (cold: a fresh server and a fresh browser context each run, nothing cached):
 *   shell:   #/nowhere                  the app with no data: the fixed cost every row includes
 *   graph:   #/r/bench                  until the first 100 commit rows show
 *   graph+tags:                         the same, until the metrics of every tagged commit show too
 *   commit:  #/r/bench/commit/main      until the 500 tensor rows show
 *   diff:    #/r/bench/diff/main~1/main until the 500 heatmap cells show
 *   storage: #/r/bench/storage          until the chain depth table shows
 * Target: every page under 1 s. Medians of `runs` runs.
 *
 *   node --import tsx bench/ui-pages.ts [--quick]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../lib/server/index';
import { argFlag, emitJson, header, median, table } from './lib/harness';
import { buildUiRepo } from './lib/ui-repo';

const quick = argFlag('quick');
const commits = quick ? 300 : 1000;
const tensors = 500;
const runs = quick ? 3 : 5;

interface PageSpec {
  hash: string;
  /** The API requests the page makes (the baseline fetches them in the same order). */
  api: string[];
  /** An expression evaluated in the page that holds once the content is on screen. */
  ready: string;
}

const PAGES: Record<string, PageSpec> = {
  // The app without data (an unknown route): the browser's fixed cost of a cold navigation, the bundle, the
  // first render. Subtract it from the other rows to see what each page's data and rendering add.
  shell: { hash: '#/nowhere', api: [], ready: "!!document.querySelector('main h1')" },
  graph: {
    hash: '#/r/bench',
    api: ['refs', 'commits?limit=100'],
    ready: "document.querySelectorAll('.commit-row').length >= 100",
  },
  // The same page until the table of tagged commits is complete too: tags outside the first page cost one
  // `commits?rev=<tag>&limit=1` request each (10 tags here, 9 of them outside the first page).
  'graph+tags': {
    hash: '#/r/bench',
    api: ['refs', 'commits?limit=100', ...Array.from({ length: 9 }, (_, i) => `commits?rev=v${i + 1}&limit=1`)],
    ready:
      "document.querySelectorAll('.commit-row').length >= 100 && document.querySelectorAll('#tag-metrics tbody tr').length > 0 && " +
      "[...document.querySelectorAll('#tag-metrics tbody td:nth-child(2)')].every((td) => td.textContent.trim().length > 11)",
  },
  commit: {
    hash: '#/r/bench/commit/main',
    api: ['commit/main'],
    ready: `document.querySelectorAll('table.tensors tbody tr').length >= ${tensors}`,
  },
  diff: {
    hash: '#/r/bench/diff/main~1/main',
    api: ['refs', 'commits?limit=50', 'diff?a=main~1&b=main'],
    ready: `document.querySelectorAll('table.heatmap td[data-tensor]').length >= ${tensors}`,
  },
  storage: { hash: '#/r/bench/storage', api: ['storage'], ready: "!!document.querySelector('#chain-depths tbody tr')" },
};

async function main(): Promise<void> {
  header(`web UI pages in headless Chromium: ${commits} commits x ${tensors} tensors, medians of ${runs} runs`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-bench-ui-pages-'));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  try {
    await buildUiRepo(dir, { commits, tensors, fast: true });
    const page: Record<string, number[]> = {};
    const api: Record<string, number[]> = {};
    for (let r = 0; r < runs + 1; r++) {
      for (const [name, spec] of Object.entries(PAGES)) {
        // Baseline: the page's requests with fetch, on a fresh server.
        let server = await startServer({ repository: dir, repositoryName: 'bench', ui: true });
        let t = process.hrtime.bigint();
        try {
          for (const q of spec.api) {
            const res = await fetch(`${server.url}/api/r/bench/${q}`);
            if (res.status !== 200) throw new Error(`${q}: HTTP ${res.status}`);
            await res.json();
          }
        } finally {
          await server.close();
        }
        const tApi = Number(process.hrtime.bigint() - t) / 1e9;
        // The page: a fresh server and browser context, from navigation to the content.
        server = await startServer({ repository: dir, repositoryName: 'bench', ui: true });
        const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        try {
          const p = await ctx.newPage();
          t = process.hrtime.bigint();
          await p.goto(`${server.url}/ui/${spec.hash}`);
          await p.waitForFunction(spec.ready, undefined, { timeout: 60_000, polling: 'raf' });
          const tPage = Number(process.hrtime.bigint() - t) / 1e9;
          if (r > 0) {
            (page[name] ??= []).push(tPage);
            (api[name] ??= []).push(tApi);
          }
        } finally {
          await ctx.close();
          await server.close();
        }
      }
    }
    const rows = Object.keys(PAGES).map((name) => ({
      page: name,
      'api ms (baseline)': median(api[name]) * 1000,
      'page ms': median(page[name]) * 1000,
      'page / api': name === 'shell' ? '-' : median(page[name]) / median(api[name]),
      'under 1 s': median(page[name]) < 1 ? 'yes' : 'NO',
    }));
    table(rows);
    emitJson('ui-pages', {
      commits,
      tensors,
      runs,
      pages: Object.fromEntries(
        Object.keys(PAGES).map((n) => [
          n,
          {
            apiMs: median(api[n]) * 1000,
            pageMs: median(page[n]) * 1000,
            ratio: n === 'shell' ? null : median(page[n]) / median(api[n]),
          },
        ]),
      ),
    });
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
