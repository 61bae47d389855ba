// Issue #20's pages in a real browser: a repository built with the CLI (a base model, a fine-tune branch, a
// merge, tags, a tensor with NaN/Inf, two experiment runs), served by the real `coral ui` on a free loopback
// port, opened in Debian's headless Chromium through playwright-core. Each test checks the page's content
// against the API's answer, its keyboard use where it has some, text contrast, and saves a screenshot into
// test-output/ui/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDirs, tmpdir } from '../helpers/cli';
import {
  apiGet,
  buildRepo,
  CHROMIUM,
  KINDS,
  LAYERS,
  LOSSY_FILE,
  lowContrast,
  NAN_TENSOR,
  screenshot,
  SHOTS,
  startUi,
  UI_DIST,
  type UiServer,
} from './helpers';

const dirs = tempDirs({ needDist: true });
let server: UiServer;
let browser: Browser;
let repo: string;

beforeAll(async () => {
  if (!fs.existsSync(UI_DIST)) throw new Error('ui/dist/ is missing: run `npm run build:ui` (npm test does it)');
  const dir = tmpdir('coral-ui-');
  dirs.push(dir);
  await buildRepo(dir);
  server = await startUi(dir, ['ui', '--port', '0']);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  repo = (await apiGet(server.url, '/repos')).repos[0].name;
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function open(hash: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  (page as any).__errors = errors;
  await page.goto(`${server.url}/ui/${hash}`);
  return page;
}

async function done(page: Page, shot: string): Promise<void> {
  const contrast = await lowContrast(page);
  expect(contrast.bad).toEqual([]);
  expect(contrast.checked).toBeGreaterThan(5);
  expect((page as any).__errors).toEqual([]);
  await screenshot(page, shot);
  await page.close();
}

const enc = encodeURIComponent;

describe('coral ui pages (headless Chromium)', () => {
  it('the root goes straight to the only repository; the graph shows every commit, lanes, merges and tags', async () => {
    const page = await open('');
    await page.waitForURL(/#\/r\//);
    const api = await apiGet(server.url, `/r/${enc(repo)}/commits?limit=500`);
    expect(api.next).toBeNull();
    expect(api.commits.length).toBeGreaterThan(100); // the `long` run alone has LONG_STEPS + 2 commits
    const refs = await apiGet(server.url, `/r/${enc(repo)}/refs`);
    await page.waitForSelector('.commit-row');
    // The first page (100), then "Load more" until the cursor runs out: every commit once, in the API's order.
    await expect.poll(() => page.locator('.commit-row').count()).toBe(100);
    while ((await page.locator('#load-more').count()) > 0) {
      const n = await page.locator('.commit-row').count();
      await page.locator('#load-more').click();
      await expect.poll(() => page.locator('.commit-row').count()).toBeGreaterThan(n);
    }
    await page.waitForSelector(`text=${api.commits.length} commits, all loaded.`);
    const ids = await page.locator('.commit-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));
    expect(ids).toEqual(api.commits.map((c: any) => c.id));
    for (const m of ['base model', 'fine-tune layers 2-3', 'layer 0 update; NaN and Inf in layer 1', 'merge fine-tune'])
      await expect.poll(() => page.getByRole('link', { name: m, exact: true }).count()).toBe(1);

    // The merge row names both parents, and its node has an edge to each parent's lane.
    const merge = api.commits.find((c: any) => c.message.startsWith('merge fine-tune'));
    expect(merge.parents).toHaveLength(2);
    const row = page.locator(`.commit-row[data-id="${merge.id}"]`);
    await expect.poll(() => row.locator('.merge-of a').count()).toBe(2);
    expect(await row.locator('svg line').count()).toBeGreaterThanOrEqual(2);
    const lanesUsed = await page
      .locator('.commit-row svg circle')
      .evaluateAll((cs) => new Set(cs.map((c) => c.getAttribute('cx'))).size);
    expect(lanesUsed).toBeGreaterThanOrEqual(2);
    expect(await row.locator('.badge.tag').textContent()).toContain('v2');

    // Branches and tags, and the metrics of tagged commits (tag `best` is the tip of a run that logged loss).
    for (const b of refs.branches) await page.waitForSelector(`a.badge.branch:has-text("${b.name}")`);
    const best = refs.tags.find((t: any) => t.name === 'best');
    const bestCommit = api.commits.find((c: any) => c.id === best.id);
    expect(bestCommit.metrics.loss).toBeCloseTo(0.5, 12);
    const bestRow = page.locator('#tag-metrics tr', { has: page.locator('th', { hasText: /^best$/ }) });
    expect(await bestRow.locator('td.num').first().textContent()).toBe('0.5');
    expect(await page.locator('#tag-metrics tbody tr').count()).toBe(refs.tags.length);
    // A close-up for the docs: the last rows of the graph (the runs' roots, the adapter, the merge, the fork).
    const from = await page.locator('.commit-row').nth(-8).boundingBox();
    const to = await page.locator('.commit-row').last().boundingBox();
    const scrollY = await page.evaluate(() => window.scrollY); // boundingBox is relative to the viewport
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({
      path: path.join(SHOTS, 'graph-merge.png'),
      fullPage: true,
      clip: { x: 0, y: from!.y + scrollY - 4, width: 1100, height: to!.y + to!.height - from!.y + 8 },
    });
    await done(page, 'graph');
  });

  it('the API cursor pages through the commit list without gaps or repeats', async () => {
    const all = await apiGet(server.url, `/r/${enc(repo)}/commits?limit=500`);
    const first = await apiGet(server.url, `/r/${enc(repo)}/commits?limit=3`);
    expect(first.next).not.toBeNull();
    const second = await apiGet(server.url, `/r/${enc(repo)}/commits?limit=500&cursor=${enc(first.next)}`);
    expect([...first.commits, ...second.commits].map((c: any) => c.id)).toEqual(all.commits.map((c: any) => c.id));
  });

  it('the commit page lists files and tensors with dtype, shape, codec, base and sizes', async () => {
    const page = await open(`#/r/${enc(repo)}/commit/v2`);
    const api = await apiGet(server.url, `/r/${enc(repo)}/commit/v2`);
    await page.waitForSelector('table.tensors tbody tr');
    expect(await page.locator('h1').textContent()).toBe('merge fine-tune');
    expect(await page.locator('#commit-id').textContent()).toBe(api.commit.id);
    const tensors = api.files[0].tensors;
    expect(tensors).toHaveLength(LAYERS * KINDS.length + 2);
    expect(await page.locator('table.tensors tbody tr').count()).toBe(tensors.length);
    for (const t of tensors) {
      const cells = await page
        .locator(`table.tensors tr[data-tensor="${t.name}"] > *`)
        .evaluateAll((es) => es.map((e) => (e.querySelector('data')?.getAttribute('value') ?? e.textContent).trim()));
      expect(cells[0]).toBe(t.name);
      expect(cells[1]).toBe(t.dtype);
      expect(cells[2]).toBe(`[${t.shape.join(', ')}]`);
      expect(cells[3]).toBe(t.codec);
      expect(cells[4]).toBe(t.base ? t.base.slice(0, 10) : '—');
      expect(cells[5]).toBe(String(t.chainDepth));
      expect(cells[6]).toBe(String(t.logicalSize));
      expect(cells[7]).toBe(String(t.storedSize));
    }
    // The parents link to their commits and to the diff against each.
    expect(await page.locator('dd a[href*="/diff/"]').count()).toBe(2);
    expect(await page.locator('.badge.lossy').count()).toBe(0);
    await done(page, 'commit');
  });

  it('the commit page marks a file stored with a lossy codec', async () => {
    const page = await open(`#/r/${enc(repo)}/commit/main`);
    const api = await apiGet(server.url, `/r/${enc(repo)}/commit/main`);
    expect(api.files.find((f: any) => f.path === LOSSY_FILE).lossy).toBe(true);
    await page.waitForSelector('table.tensors tbody tr');
    const file = page.getByRole('region', { name: LOSSY_FILE });
    expect(await file.locator('h3 .badge.lossy').textContent()).toBe('lossy');
    expect(await page.locator('h3 .badge.lossy').count()).toBe(1);
    const codecs = await file.locator('tbody tr td:nth-child(4)').allTextContents();
    const lossyApi = api.files.find((f: any) => f.path === LOSSY_FILE).tensors.map((t: any) => t.codec);
    expect(codecs).toEqual(lossyApi);
    await done(page, 'commit-lossy');
  });

  it('the diff heatmap has a cell per tensor with the API values, flags NaN/Inf, toggles the metric', async () => {
    const page = await open(`#/r/${enc(repo)}/diff/v1/v2`);
    const api = await apiGet(server.url, `/r/${enc(repo)}/diff?a=v1&b=v2`);
    await page.waitForSelector('table.heatmap td[data-tensor]');
    const tensors = api.files.flatMap((f: any) => f.tensors);
    const cellOf = (name: string) => page.locator(`td[data-tensor="${name}"]`);
    expect(await page.locator('td[role="gridcell"][data-tensor]').count()).toBe(tensors.length);
    // Rows are layers, columns parameter kinds.
    const layered = page.locator('#all-layers');
    expect(await layered.locator('tbody tr').count()).toBe(LAYERS);
    expect(await layered.locator('th.kind').allTextContents()).toEqual(KINDS);
    const valueOf = (v: number | null) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : '');
    for (const t of tensors) {
      const cell = cellOf(t.name);
      expect(await cell.getAttribute('data-value')).toBe(valueOf(t.relL2));
      expect(await cell.getAttribute('aria-label')).toContain(t.name);
    }
    // Which tensors changed: layers 0–3 as built, everything else unchanged (relL2 0).
    const changed = tensors.filter((t: any) => t.status === 'modified').map((t: any) => t.name);
    expect(changed.sort()).toEqual(
      [
        'model.layers.0.self_attn.q_proj.weight',
        NAN_TENSOR,
        'model.layers.2.mlp.up_proj.weight',
        'model.layers.2.self_attn.q_proj.weight',
        'model.layers.3.mlp.up_proj.weight',
        'model.layers.3.self_attn.q_proj.weight',
      ].sort(),
    );
    // NaN/Inf: a symbol, a border and words, not only a colour.
    const nan = cellOf(NAN_TENSOR);
    const nanApi = tensors.find((t: any) => t.name === NAN_TENSOR);
    expect(nanApi.nonFinite).toBe(2);
    expect(await nan.getAttribute('class')).toContain('nonfinite');
    expect((await nan.textContent())!.trim()).toBe('⚠');
    expect(await nan.getAttribute('aria-label')).toContain('2 non-finite values');
    expect(await page.locator('#diff-summary').textContent()).toContain('1 with NaN or Inf');
    // Cells are coloured along viridis: the largest value is yellow-ish, zero is the dark purple end.
    const unchanged = cellOf('model.embed_tokens.weight');
    expect(await unchanged.evaluate((e) => getComputedStyle(e).backgroundColor)).toBe('rgb(68, 1, 84)');

    await page.getByLabel('fraction of elements changed').check();
    await expect
      .poll(() => cellOf('model.layers.2.mlp.up_proj.weight').getAttribute('data-value'))
      .toBe(valueOf(tensors.find((t: any) => t.name === 'model.layers.2.mlp.up_proj.weight').fracChanged));
    for (const t of tensors) expect(await cellOf(t.name).getAttribute('data-value')).toBe(valueOf(t.fracChanged));
    expect(await page.locator('.legend-ticks li').allTextContents()).toEqual([
      '0.00%',
      '25.0%',
      '50.0%',
      '75.0%',
      '100.0%',
    ]);
    await page.getByLabel('relative L2 change').check();
    await done(page, 'diff');
  });

  it('the heatmap is one tab stop; arrow keys move, Enter opens the histogram, Escape returns', async () => {
    const page = await open(`#/r/${enc(repo)}/diff/v1/v2`);
    await page.waitForSelector('table.heatmap td[data-tensor]');
    const focused = () =>
      page.evaluate(() => {
        const e = document.activeElement as HTMLElement;
        return {
          role: e.getAttribute('role'),
          r: e.dataset.r,
          c: e.dataset.c,
          tensor: e.dataset.tensor,
          grid: e.closest('table')?.id,
        };
      });
    // Tab from the page heading (where navigation leaves focus) until the grid takes it: bounded.
    await page.locator('h1').focus();
    let tabs = 0;
    while ((await focused()).role !== 'gridcell' && tabs < 40) {
      await page.keyboard.press('Tab');
      tabs++;
    }
    expect(await focused()).toMatchObject({ role: 'gridcell', r: '0', c: '0', grid: 'all-layers' });
    expect(await page.locator('#all-layers [tabindex="0"]').count()).toBe(1);
    await page.keyboard.press('ArrowRight');
    expect(await focused()).toMatchObject({ r: '0', c: '1' });
    await page.keyboard.press('ArrowDown');
    expect(await focused()).toMatchObject({ r: '1', c: '1', tensor: NAN_TENSOR });
    expect(await page.locator('#all-layers [tabindex="0"]').count()).toBe(1);
    await page.keyboard.press('End');
    expect(await focused()).toMatchObject({ r: '1', c: String(KINDS.length - 1) });
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowRight');
    // Tab leaves the grid in one step (to the next grid, of tensors outside layers).
    await page.keyboard.press('Tab');
    expect(await focused()).toMatchObject({ role: 'gridcell', grid: 'all-other' });
    await page.keyboard.press('Shift+Tab');
    expect(await focused()).toMatchObject({ r: '1', c: '1', tensor: NAN_TENSOR });

    await page.keyboard.press('Enter');
    await page.waitForSelector('#histogram canvas');
    const hist = await apiGet(
      server.url,
      `/r/${enc(repo)}/diff/tensor?a=v1&b=v2&path=model.safetensors&name=${enc(NAN_TENSOR)}&bins=64`,
    );
    expect(hist.nonFinite).toBe(2);
    const stats = await page.locator('#hist-stats').textContent();
    expect(stats).toContain(
      `${hist.changed.toLocaleString('en-US')} of ${hist.total.toLocaleString('en-US')} elements`,
    );
    expect(stats).toContain('⚠ 2');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('hist-h');
    await screenshot(page, 'diff-histogram');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#histogram', { state: 'detached' });
    expect(await focused()).toMatchObject({ tensor: NAN_TENSOR });

    // A click opens a cell too.
    await page.locator('td[data-tensor="model.layers.3.mlp.up_proj.weight"]').click();
    await page.waitForSelector('#histogram canvas');
    expect(await page.locator('#hist-h').textContent()).toContain('model.layers.3.mlp.up_proj.weight');
    await page.close();
  });

  it('the diff pickers compare any two revisions', async () => {
    const page = await open(`#/r/${enc(repo)}/diff`);
    // Without revisions: HEAD against its first parent.
    await page.waitForURL(/#\/r\/[^/]+\/diff\/[^/]+\/main$/);
    await page.waitForSelector('td[data-tensor="adapter.layers.0.lora_A.weight"]');
    expect((await page.locator('td[data-tensor="adapter.layers.0.lora_A.weight"]').textContent())!.trim()).toBe('+');
    await page.waitForSelector('#rev-a');
    await page.fill('#rev-a', 'v1');
    await page.fill('#rev-b', 'ft');
    await page.getByRole('button', { name: 'Compare' }).click();
    await page.waitForURL(/\/diff\/v1\/ft$/);
    await page.waitForSelector('table.heatmap td[data-tensor]');
    const api = await apiGet(server.url, `/r/${enc(repo)}/diff?a=v1&b=ft`);
    const modified = api.files[0].tensors.filter((t: any) => t.status === 'modified');
    expect(modified).toHaveLength(4);
    expect(await page.locator('#diff-summary').textContent()).toContain('4 modified');
    await page.close();
  });

  it('the storage page shows the API numbers: totals, by codec, by file, by commit, chain depths', async () => {
    const page = await open(`#/r/${enc(repo)}/storage`);
    const api = await apiGet(server.url, `/r/${enc(repo)}/storage`);
    await page.waitForSelector('#storage-totals');
    const val = (sel: string) => page.locator(sel).getAttribute('value');
    expect(await val('#total-logical data')).toBe(String(api.logical));
    expect(await val('#total-stored data')).toBe(String(api.stored));
    expect(await page.locator('#total-objects').textContent()).toBe(api.objects.toLocaleString('en-US'));
    expect(api.logical).toBeGreaterThan(0);
    for (const c of api.byCodec) {
      const row = page.locator(`#by-codec tr[data-codec="${c.codec}"]`);
      expect(await row.locator('data').evaluateAll((d) => d.map((x) => x.getAttribute('value')))).toEqual([
        String(c.logical),
        String(c.stored),
      ]);
    }
    for (const f of api.byFile)
      expect(
        await page
          .locator(`#by-file tr[data-path="${f.path}"] data`)
          .evaluateAll((d) => d.map((x) => x.getAttribute('value'))),
      ).toEqual([String(f.logical), String(f.stored)]);
    expect(await page.locator('#by-commit tbody tr').count()).toBe(api.byCommit.length);
    for (const c of api.byCommit) expect(await val(`#by-commit tr[data-id="${c.id}"] data`)).toBe(String(c.newStored));
    for (const d of api.chainDepths)
      expect(await page.locator(`#chain-depths tr[data-depth="${d.depth}"] td.num`).textContent()).toBe(
        d.objects.toLocaleString('en-US'),
      );
    await done(page, 'storage');
  });

  it('the experiments page overlays the runs and lists their parameters', async () => {
    const page = await open(`#/r/${enc(repo)}/experiments`);
    const api = await apiGet(server.url, `/r/${enc(repo)}/experiments`);
    expect(api.runs.map((r: any) => r.name).sort()).toEqual(['long', 'lr-large', 'lr-small']);
    await page.waitForSelector('#runs tbody tr');
    await page.waitForSelector('[data-chart="lines"] canvas');
    for (const r of api.runs) {
      const row = page.locator(`#runs tr[data-run="${r.name}"]`);
      const cells = await row.locator('td').allTextContents();
      expect(cells[0]).toBe(String(r.params.lr));
      expect(cells[1]).toBe(String(r.metrics.loss.length));
    }
    // uPlot's legend names each run: several runs overlaid on one chart.
    const legend = await page.locator('.u-legend .u-series').allTextContents();
    expect(legend.join(' ')).toContain('lr-small');
    expect(legend.join(' ')).toContain('lr-large');
    expect(legend.join(' ')).toContain('long');
    await done(page, 'experiments');
  });

  it('the keyboard reaches every page from the banner; unknown routes say so', async () => {
    const page = await open(`#/r/${enc(repo)}`);
    await page.waitForSelector('.commit-row');
    const nav = page.getByRole('navigation', { name: 'Repository' });
    await nav.getByRole('link', { name: 'Storage' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/storage$/);
    await page.waitForSelector('#storage-totals');
    expect(await nav.getByRole('link', { name: 'Storage' }).getAttribute('aria-current')).toBe('page');
    // Focus moved to the new page's heading.
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
    expect(await page.getByRole('main').count()).toBe(1);
    await page.goto(`${server.url}/ui/#/nowhere`);
    await page.waitForSelector('h1:has-text("Not found")');
    await page.goto(`${server.url}/ui/#/r/${enc(repo)}/commit/no-such-rev`);
    await page.waitForSelector('[role="alert"]');
    expect(await page.locator('[role="alert"]').textContent()).toMatch(/CORAL_/);
    await page.close();
  });
});
