// Shared pieces of the web UI's browser tests (issue #20): a small repository built with the real CLI, the real
// `coral ui` server as a child process, Debian's Chromium through playwright-core, and a WCAG contrast check
// run inside the page.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { ExperimentTracker, Repository } from '../../lib/index';
import { f32, ok, perturb, ROOT, weights, writeSafetensors } from '../helpers/cli';
import { startCoralServer, type ServeProcess } from '../helpers/serve';

export const CHROMIUM = '/usr/bin/chromium';
export const SHOTS = path.join(ROOT, 'test-output', 'ui');
export const UI_DIST = path.join(ROOT, 'ui', 'dist', 'index.html');

export const LAYERS = 4;
export const KINDS = [
  'input_layernorm.weight',
  'mlp.up_proj.weight',
  'self_attn.k_proj.weight',
  'self_attn.q_proj.weight',
];
export const NAN_TENSOR = 'model.layers.1.mlp.up_proj.weight';
export const LOSSY_FILE = 'adapter.safetensors';
/** Points of the `long` run: one commit each, enough to need the graph's "Load more". */
export const LONG_STEPS = 110;

type Model = Map<string, { shape: number[]; data: Float32Array }>;

function baseModel(): Model {
  const m: Model = new Map();
  let seed = 1;
  for (let l = 0; l < LAYERS; l++)
    for (const k of KINDS) {
      const shape = k.startsWith('input_layernorm') ? [32] : [32, 32];
      m.set(`model.layers.${l}.${k}`, {
        shape,
        data: weights(
          shape.reduce((a, b) => a * b, 1),
          seed++,
        ),
      });
    }
  m.set('model.embed_tokens.weight', { shape: [64, 32], data: weights(64 * 32, seed++) });
  m.set('lm_head.weight', { shape: [64, 32], data: weights(64 * 32, seed) });
  return m;
}

function write(file: string, m: Model): void {
  const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [k, v] of m) out[k] = { dtype: 'F32', shape: v.shape, data: f32(v.data) };
  writeSafetensors(file, out);
}

function edit(m: Model, name: string, fn: (a: Float32Array) => Float32Array): void {
  const t = m.get(name)!;
  m.set(name, { shape: t.shape, data: fn(t.data) });
}

/**
 * The test repository: `base model` (tag v1) on main; branch `ft` fine-tunes layers 2–3; main meanwhile changes
 * layer 0 and puts NaN/Inf into layer 1's mlp.up_proj; main merges ft (a merge commit with both parents, tag
 * v2); an adapter added with a lossy codec; two experiment runs (exp/lr-small, exp/lr-large) log a loss over four steps; tag `best` marks the
 * last logged step of exp/lr-small (a commit carrying metrics). A third run, `long`, logs LONG_STEPS points
 * one commit each (through the library, to stay quick), so the history is longer than the graph's first page.
 */
export async function buildRepo(dir: string): Promise<void> {
  const file = path.join(dir, 'model.safetensors');
  ok(dir, ['init']);
  const base = baseModel();
  write(file, base);
  ok(dir, ['add', 'model.safetensors']);
  ok(dir, ['commit', '-m', 'base model']);
  ok(dir, ['tag', 'v1']);

  ok(dir, ['checkout', '-b', 'ft']);
  const ft = new Map(base);
  for (const l of [2, 3]) {
    edit(ft, `model.layers.${l}.self_attn.q_proj.weight`, (a) => perturb(a, 100 + l, 0.05, 0.5));
    edit(ft, `model.layers.${l}.mlp.up_proj.weight`, (a) => perturb(a, 200 + l, 0.2, 1));
  }
  write(file, ft);
  ok(dir, ['commit', '-a', '-m', 'fine-tune layers 2-3']);

  ok(dir, ['checkout', 'main']);
  const mainSide = new Map(base);
  edit(mainSide, 'model.layers.0.self_attn.q_proj.weight', (a) => perturb(a, 300, 0.1, 0.25));
  edit(mainSide, NAN_TENSOR, (a) => {
    const b = new Float32Array(a);
    b[5] = NaN;
    b[77] = Infinity;
    return b;
  });
  write(file, mainSide);
  ok(dir, ['commit', '-a', '-m', 'layer 0 update; NaN and Inf in layer 1']);
  ok(dir, ['merge', 'ft', '--no-ff', '-m', 'merge fine-tune']);
  ok(dir, ['tag', 'v2']);
  // An adapter stored with a lossy codec: the commit page marks the file.
  writeSafetensors(path.join(dir, 'adapter.safetensors'), {
    'adapter.layers.0.lora_A.weight': { dtype: 'F32', shape: [8, 32], data: f32(weights(256, 900)) },
    'adapter.layers.0.lora_B.weight': { dtype: 'F32', shape: [32, 8], data: f32(weights(256, 901)) },
  });
  ok(dir, ['add', '--lossy', 'QUANT_INT8', 'adapter.safetensors']);
  ok(dir, ['commit', '-m', 'adapter, int8']);

  for (const [run, lr, scale] of [
    ['lr-small', '0.0001', 1],
    ['lr-large', '0.01', 0.6],
  ] as const) {
    ok(dir, ['experiment', 'start', run, '--param', `lr=${lr}`]);
    for (let step = 0; step < 4; step++)
      ok(dir, ['experiment', 'log', run, '--step', String(step * 10), '--metric', `loss=${(scale * 2) / (step + 1)}`]);
    ok(dir, ['experiment', 'finish', run]);
  }
  ok(dir, ['tag', 'best', 'exp/lr-small~1']); // the last logged step (the tip records `finished`)

  const repo = await Repository.open(dir);
  try {
    const run = await new ExperimentTracker(repo).start('long', { params: { lr: '0.001' }, flushEvery: LONG_STEPS });
    for (let step = 0; step < LONG_STEPS; step++) {
      run.log(step, { loss: 3 / (step + 1) });
      await run.flush();
    }
    await run.finish();
  } finally {
    await repo.close();
  }
}

export type UiServer = ServeProcess;

/** Starts `coral <args>` (ui, or serve --ui) and resolves once it prints its http:// URL (30 s at most). */
export function startUi(cwd: string, args: string[], env: Record<string, string> = {}): Promise<UiServer> {
  return startCoralServer(args, {
    url: /(http:\/\/(?:127\.0\.0\.1|localhost|\[::1\]):\d+)/,
    cwd,
    env: { NO_COLOR: '1', ...env },
  });
}

/** GETs an API path as JSON (the numbers the pages must show). */
export async function apiGet(base: string, p: string, token?: string): Promise<any> {
  const res = await fetch(`${base}/api${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`GET ${p}: ${res.status} ${await res.text()}`);
  return res.json();
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Text whose contrast against its effective background is below WCAG AA (4.5:1; 3:1 for large text), as
 * `selector-ish: ratio` strings, and how many text elements were checked. Walks every visible element with its own text; the background is the first
 * opaque background-color up the tree (canvas text is uPlot's and not checked here).
 */
export function lowContrast(page: Page): Promise<{ checked: number; bad: string[] }> {
  return page.evaluate(() => {
    const parse = (c: string): number[] => (c.match(/[\d.]+/g) ?? []).map(Number);
    const lum = (rgb: number[]) => {
      const ch = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * ch(rgb[0]) + 0.7152 * ch(rgb[1]) + 0.0722 * ch(rgb[2]);
    };
    const bgOf = (el: Element | null): number[] => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const bad: string[] = [];
    let checked = 0;
    for (const el of Array.from(document.querySelectorAll('body *'))) {
      if (el.closest('svg, canvas, .uplot')) continue;
      const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent!.trim() !== '');
      if (!own || el.getClientRects().length === 0 || el.closest('.sr-only')) continue;
      const st = getComputedStyle(el);
      if (st.visibility === 'hidden' || st.display === 'none') continue;
      checked++;
      const fg = parse(st.color).slice(0, 3);
      const bg = bgOf(el);
      const [a, b] = [lum(fg), lum(bg)];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5))
        bad.push(
          `${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}": ${ratio.toFixed(2)}`,
        );
    }
    return { checked, bad };
  });
}
