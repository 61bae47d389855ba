// ExperimentTracker and `coral experiment`: runs as exp/<name> branches with parameters and per-step
// metrics; list/show/compare (text and --json); plots (SVG and PNG) saved under test-output/.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  AlreadyExistsError,
  ExperimentTracker,
  InvalidArgumentError,
  RefNotFoundError,
  Repository,
  niceTicks,
} from '../../lib/index';
import { coral, ok, tmpdir, tempDirs, ROOT } from '../helpers/cli';

const dirs = tempDirs({ needDist: true });
const OUT = path.join(ROOT, 'test-output');

/** Decodes an 8-bit RGBA, non-interlaced PNG with filter 0 rows (what encodePng writes). */
function readPng(buf: Buffer): { width: number; height: number; px: (x: number, y: number) => number[] } {
  expect(buf.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect([data[8], data[9]]).toEqual([8, 6]);
    }
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe((width * 4 + 1) * height);
  return {
    width,
    height,
    px: (x, y) => [...raw.subarray(y * (width * 4 + 1) + 1 + x * 4, y * (width * 4 + 1) + 1 + x * 4 + 4)],
  };
}

describe('ExperimentTracker (library)', () => {
  it('records runs with params and metrics; lists, shows and compares them', async () => {
    const d = tmpdir('coral-exp-lib-');
    dirs.push(d);
    const repo = await Repository.init(d);
    try {
      const tracker = new ExperimentTracker(repo);
      for (const [name, lr] of [
        ['lr-small', 1e-4],
        ['lr-big', 1e-2],
      ] as const) {
        const run = await tracker.start(name, { params: { lr, batch: 32 } });
        for (let step = 0; step <= 100; step += 5)
          run.log(step, { loss: 2 * Math.exp(-step * lr * 20) + 0.1, acc: step / 100 });
        await run.finish();
      }
      await expect(tracker.start('lr-big')).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(tracker.show('nope')).rejects.toBeInstanceOf(RefNotFoundError);
      expect(() => tracker.run('x').log(-1, { loss: 1 })).toThrow(InvalidArgumentError);
      expect(() => tracker.run('x').log(1, { loss: NaN })).toThrow(InvalidArgumentError);
      const list = await tracker.list();
      expect(list.map((r) => [r.name, r.status, r.points, r.lastStep])).toEqual([
        ['lr-big', 'finished', 21, 100],
        ['lr-small', 'finished', 21, 100],
      ]);
      const show = await tracker.show('lr-small');
      expect(show.params).toEqual({ lr: 1e-4, batch: 32 });
      expect(show.series[2]).toEqual({ step: 10, metrics: { loss: 2 * Math.exp(-10 * 1e-4 * 20) + 0.1, acc: 0.1 } });
      const cmp = await tracker.compare(['lr-small', 'lr-big'], { metric: 'loss' });
      expect(cmp.differingParams).toEqual(['lr']);
      expect(cmp.runs[1].best).toBeLessThan(cmp.runs[0].best!);
      expect(cmp.runs[1].bestStep).toBe(100);
      // The runs are ordinary branches: `log --metric` reads them.
      expect((await repo.branches()).map((b) => b.name)).toEqual(['exp/lr-big', 'exp/lr-small']);
      const svg = (await tracker.plot(['lr-small', 'lr-big'], { metric: 'loss' })) as string;
      expect(svg).toMatch(/^<svg /);
      expect(svg.match(/<polyline class="series"/g)).toHaveLength(2);
      expect(svg).toContain('data-label="lr-small"');
      expect(svg).toMatch(/class="x-label"[^>]*>step</);
      expect(svg).toMatch(/class="y-label"[^>]*>loss</);
      expect(svg).toMatch(/<g class="legend">[\s\S]*lr-small[\s\S]*lr-big[\s\S]*<\/g>/);
    } finally {
      await repo.close();
    }
  });

  it('picks nice tick values', () => {
    expect(niceTicks(0, 100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(0.1, 2.1, 5)).toEqual([0.5, 1, 1.5, 2]);
  });
});

describe('coral experiment (CLI)', () => {
  it('start, log, list, show, compare --json and --plot runs.svg / runs.png', () => {
    const d = tmpdir('coral-exp-cli-');
    dirs.push(d);
    ok(d, ['init']);
    const runs: Array<[string, number]> = [
      ['adam', 0.05],
      ['sgd', 0.02],
      ['sgd-momentum', 0.035],
    ];
    for (const [name, rate] of runs) {
      expect(ok(d, ['experiment', 'start', name, '--param', `opt=${name}`, '--param', `rate=${rate}`])).toMatch(
        new RegExp(`started experiment ${name} on branch exp/${name}`),
      );
      for (let step = 0; step <= 200; step += 40)
        ok(d, [
          'experiment',
          'log',
          name,
          '--step',
          String(step),
          '--metric',
          `loss=${(Math.exp(-rate * step) + 0.05).toFixed(5)}`,
          '--metric',
          `acc=${(1 - Math.exp(-rate * step)).toFixed(4)}`,
        ]);
    }
    ok(d, ['experiment', 'finish', 'adam']);
    const list = ok(d, ['experiment', 'list']);
    expect(list).toMatch(/^adam\tfinished\t6 points\tstep 200\t/m);
    expect(list).toMatch(/^sgd\trunning\t6 points/m);
    const listJson = JSON.parse(ok(d, ['experiment', 'list', '--json']));
    expect(listJson.map((r: { name: string }) => r.name)).toEqual(['adam', 'sgd', 'sgd-momentum']);
    const show = ok(d, ['experiment', 'show', 'sgd', '--metric', 'loss']);
    expect(show).toMatch(/param\s+rate = 0\.02/);
    expect(show).toMatch(/^step\tloss$/m);
    expect(show).toMatch(/^200\t0\.06832$/m);
    const cmp = JSON.parse(
      ok(d, ['experiment', 'compare', 'adam', 'sgd', 'sgd-momentum', '--metric', 'loss', '--json']),
    );
    expect(cmp.metric).toBe('loss');
    expect(cmp.runs.map((r: { name: string; points: unknown[] }) => [r.name, r.points.length])).toEqual([
      ['adam', 6],
      ['sgd', 6],
      ['sgd-momentum', 6],
    ]);
    expect(cmp.differingParams).toEqual(['opt', 'rate']);
    fs.mkdirSync(OUT, { recursive: true });
    const svgFile = path.join(OUT, 'runs.svg');
    const pngFile = path.join(OUT, 'runs.png');
    const text = ok(d, ['experiment', 'compare', 'adam', 'sgd', 'sgd-momentum', '--metric', 'loss', '--plot', svgFile]);
    expect(text).toMatch(/^adam\t6\t/m);
    expect(text).toMatch(/plot written to/);
    const svg = fs.readFileSync(svgFile, 'utf8');
    expect(svg.match(/<polyline class="series"/g)).toHaveLength(3);
    for (const n of ['adam', 'sgd', 'sgd-momentum']) expect(svg).toContain(`data-label="${n}"`);
    ok(d, ['experiment', 'compare', 'adam', 'sgd', 'sgd-momentum', '--metric', 'loss', '--plot', pngFile]);
    const png = readPng(fs.readFileSync(pngFile));
    expect([png.width, png.height]).toEqual([800, 480]);
    // Lines in the three palette colours are drawn, on a white background.
    const seen = new Set<string>();
    for (let y = 0; y < png.height; y += 1) for (let x = 0; x < png.width; x += 1) seen.add(png.px(x, y).join(','));
    expect(seen.has('255,255,255,255')).toBe(true);
    for (const c of ['31,119,180,255', '255,127,14,255', '44,160,44,255']) expect(seen.has(c)).toBe(true);
    // Unknown subcommand and bad input are usage / argument errors.
    expect(coral(d, ['experiment', 'frobnicate']).code).toBe(2);
    expect(coral(d, ['experiment', 'log', 'sgd', '--step', 'x', '--metric', 'loss=1']).code).toBe(2);
    expect(coral(d, ['experiment', 'compare', 'adam', '--plot', 'x.gif']).code).toBe(2);
    // `coral log --metric` prints the metric beside each commit of a run.
    const log = ok(d, ['log', '--oneline', '--metric', 'loss', 'exp/sgd']);
    expect(log.split('\n')[0]).toMatch(/experiment sgd: step 200 {2}loss=0\.06832$/);
    expect(log.trim().split('\n').at(-1)).toMatch(/experiment sgd: start {2}loss=-$/);
    // `coral compare` shows a commit's metrics.
    expect(ok(d, ['compare', 'exp/sgd~3', 'exp/sgd'])).toMatch(/metric:loss\s+0\.2519\d*\s+0\.06832/);
  });
});
