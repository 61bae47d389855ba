// `coral serve --ui` behind tokens, in a real browser: the API answers 401, the app shows its token form, a
// refused token says so, a read token opens the served repository; the token stays in sessionStorage and goes
// out as `Authorization: Bearer` on every API call.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32, ok, tempDirs, tmpdir, weights, writeSafetensors } from '../helpers/cli';
import { startServe, type ServeProcess } from '../helpers/serve';
import { CHROMIUM, lowContrast, screenshot, UI_DIST } from './helpers';

const dirs = tempDirs({ needDist: true });
let server: ServeProcess;
let browser: Browser;
let read: string;

beforeAll(async () => {
  if (!fs.existsSync(UI_DIST)) throw new Error('ui/dist/ is missing: run `npm run build:ui` (npm test does it)');
  const d = tmpdir('coral-ui-auth-');
  dirs.push(d);
  const root = path.join(d, 'srv');
  fs.mkdirSync(root);
  const write = ok(root, ['serve', 'token', 'add', 'ci', '--scope', 'write', root]).trim();
  read = ok(root, ['serve', 'token', 'add', 'viewer', '--scope', 'read', root]).trim();
  server = await startServe([root, '--ui']);
  const work = path.join(d, 'work');
  fs.mkdirSync(work);
  ok(work, ['init']);
  writeSafetensors(path.join(work, 'model.safetensors'), {
    'model.layers.0.mlp.weight': { dtype: 'F32', shape: [16, 16], data: f32(weights(256, 7)) },
  });
  ok(work, ['add', 'model.safetensors']);
  ok(work, ['commit', '-m', 'served base']);
  ok(work, ['remote', 'add', 'origin', `${server.url}/hub`]);
  ok(work, ['push', '-u', 'origin', 'main'], { CORAL_TOKEN: write });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.stop('SIGTERM');
});

describe('coral serve --ui (headless Chromium)', () => {
  it('asks for a token on 401, refuses a wrong one, opens the repository with a read token', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.setDefaultTimeout(20_000);
    const auth: Array<string | undefined> = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/')) auth.push(r.headers().authorization);
    });
    await page.goto(`${server.url}/ui/`);
    await page.waitForSelector('h1:has-text("Access token")');
    expect(await page.getByLabel('Token', { exact: true }).getAttribute('type')).toBe('password');
    const contrast = await lowContrast(page);
    expect(contrast.bad).toEqual([]);
    expect(contrast.checked).toBeGreaterThan(5);
    await screenshot(page, 'token');

    await page.getByLabel('Token', { exact: true }).fill('not-a-token');
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.waitForSelector('[role="alert"]:has-text("refused")');

    // Enter on the field itself: the app moves focus to the page heading after each render that
    // changes its auth state, and under load that can land after the fill (page.keyboard would then
    // press Enter on the heading).
    await page.getByLabel('Token', { exact: true }).fill(read);
    await page.getByLabel('Token', { exact: true }).press('Enter');
    await page.waitForURL(/#\/r\/hub$/);
    await page.waitForSelector('.commit-row');
    expect(await page.getByRole('link', { name: 'served base', exact: true }).count()).toBe(1);
    expect(await page.evaluate(() => sessionStorage.getItem('coral-ui-token'))).toBe(read);
    expect(auth[0]).toBeUndefined();
    expect(auth.at(-1)).toBe(`Bearer ${read}`);
    // A reload keeps the token (same tab session): straight to the page, no form.
    await page.reload();
    await page.waitForSelector('.commit-row');
    expect(await page.locator('#token-input').count()).toBe(0);
    await page.close();
  });
});
