/**
 * Line plots of metrics against step: one layout (scales, ticks, legend)
 * rendered either as SVG text or into an RGBA raster for PNG (lib/train/png.ts).
 * Headless, offline, no dependency.
 *
 * @example
 * const p = renderPlot([{ label: 'run-a', points: [[0, 1], [10, 0.5]] }], { xLabel: 'step', yLabel: 'loss' });
 * fs.writeFileSync('runs.svg', p.svg());
 * fs.writeFileSync('runs.png', encodePng(p.raster()));
 */
import { invalidParameter } from '../errors';
import { Raster, textWidth, type Rgb } from './png';

export interface PlotSeries {
  label: string;
  /** (x, y) points; sorted by x when drawn. Non-finite values are skipped. */
  points: Array<[number, number]>;
}

export interface PlotOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Logarithmic y axis (only positive values are drawn). */
  logY?: boolean;
}

/** Ten distinguishable line colours (Tableau 10). */
export const PALETTE: Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

const hex = (c: Rgb) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Tick values at 1, 2 or 5 times a power of ten, about `n` of them over [lo, hi]. */
export function niceTicks(lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

/** Short tick text: up to 4 significant digits, exponent form for very large or small values. */
export function tickText(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

interface Layout {
  width: number;
  height: number;
  left: number;
  top: number;
  plotW: number;
  plotH: number;
  xTicks: number[];
  yTicks: number[];
  x: (v: number) => number;
  y: (v: number) => number;
  series: Array<{ label: string; color: Rgb; points: Array<[number, number]> }>;
  opts: PlotOptions;
}

function layout(series: PlotSeries[], opts: PlotOptions): Layout {
  if (!Array.isArray(series)) throw invalidParameter('series', 'array of {label, points}', series);
  const width = opts.width ?? 800;
  const height = opts.height ?? 480;
  if (!Number.isInteger(width) || width < 200 || width > 8000)
    throw invalidParameter('width', 'integer 200..8000', width);
  if (!Number.isInteger(height) || height < 150 || height > 8000)
    throw invalidParameter('height', 'integer 150..8000', height);
  const ty = (v: number) => (opts.logY ? Math.log10(v) : v);
  const clean = series.map((s, i) => ({
    label: String(s.label),
    color: PALETTE[i % PALETTE.length],
    points: s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0))
      .sort((a, b) => a[0] - b[0]),
  }));
  const all = clean.flatMap((s) => s.points);
  let [x0, x1] = all.length ? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))] : [0, 1];
  let [y0, y1] = all.length ? [Math.min(...all.map((p) => ty(p[1]))), Math.max(...all.map((p) => ty(p[1])))] : [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.1, y1 + Math.abs(y1 || 1) * 0.1];
  const pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const legendW = Math.min(260, Math.max(80, ...clean.map((s) => textWidth(s.label, 2) + 40)));
  const left = 90;
  const top = 50;
  const plotW = width - left - legendW - 30;
  const plotH = height - top - 70;
  const xTicks = niceTicks(x0, x1);
  const yTicks = niceTicks(y0, y1, 6);
  return {
    width,
    height,
    left,
    top,
    plotW,
    plotH,
    xTicks,
    yTicks: opts.logY ? yTicks.map((t) => 10 ** t) : yTicks,
    x: (v) => left + ((v - x0) / (x1 - x0)) * plotW,
    y: (v) => top + plotH - ((ty(v) - y0) / (y1 - y0)) * plotH,
    series: clean,
    opts,
  };
}

const AXIS: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];

/** A laid-out plot, drawable as SVG or as a raster. */
export interface RenderedPlot {
  svg(): string;
  raster(): Raster;
}

export function renderPlot(series: PlotSeries[], opts: PlotOptions = {}): RenderedPlot {
  const L = layout(series, opts);
  const bottom = L.top + L.plotH;
  const right = L.left + L.plotW;
  const legendX = right + 20;
  return {
    svg() {
      const o: string[] = [];
      o.push(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}" viewBox="0 0 ${L.width} ${L.height}" font-family="sans-serif" font-size="12">`,
        `<rect width="100%" height="100%" fill="#ffffff"/>`,
      );
      if (opts.title)
        o.push(
          `<text x="${L.left + L.plotW / 2}" y="28" text-anchor="middle" font-size="16">${esc(opts.title)}</text>`,
        );
      for (const t of L.xTicks) {
        const x = L.x(t).toFixed(1);
        o.push(`<line x1="${x}" y1="${L.top}" x2="${x}" y2="${bottom}" stroke="${hex(GRID)}"/>`);
        o.push(`<text x="${x}" y="${bottom + 18}" text-anchor="middle">${tickText(t)}</text>`);
      }
      for (const t of L.yTicks) {
        const y = L.y(t).toFixed(1);
        o.push(`<line x1="${L.left}" y1="${y}" x2="${right}" y2="${y}" stroke="${hex(GRID)}"/>`);
        o.push(`<text x="${L.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${tickText(t)}</text>`);
      }
      o.push(
        `<path d="M${L.left},${L.top}V${bottom}H${right}" fill="none" stroke="${hex(AXIS)}" stroke-width="1.5"/>`,
        `<text class="x-label" x="${L.left + L.plotW / 2}" y="${L.height - 18}" text-anchor="middle" font-size="14">${esc(opts.xLabel ?? 'step')}</text>`,
        `<text class="y-label" x="22" y="${L.top + L.plotH / 2}" text-anchor="middle" font-size="14" transform="rotate(-90 22 ${L.top + L.plotH / 2})">${esc(opts.yLabel ?? '')}</text>`,
      );
      for (const s of L.series) {
        if (!s.points.length) continue;
        const pts = s.points.map(([x, y]) => `${L.x(x).toFixed(1)},${L.y(y).toFixed(1)}`).join(' ');
        o.push(
          `<polyline class="series" data-label="${esc(s.label)}" points="${pts}" fill="none" stroke="${hex(s.color)}" stroke-width="2"/>`,
        );
      }
      o.push(`<g class="legend">`);
      L.series.forEach((s, i) => {
        const y = L.top + 10 + i * 22;
        o.push(
          `<rect x="${legendX}" y="${y - 6}" width="18" height="4" fill="${hex(s.color)}"/>`,
          `<text x="${legendX + 26}" y="${y}" dominant-baseline="middle">${esc(s.label)}</text>`,
        );
      });
      o.push(`</g>`, `</svg>`, '');
      return o.join('\n');
    },
    raster() {
      const img = new Raster(L.width, L.height);
      const center = (s: string, cx: number, y: number, scale: number) =>
        img.text(Math.round(cx - textWidth(s, scale) / 2), y, s, AXIS, scale);
      if (opts.title) center(opts.title, L.left + L.plotW / 2, 14, 2);
      for (const t of L.xTicks) {
        const x = Math.round(L.x(t));
        img.line(x, L.top, x, bottom, GRID);
        img.line(x, bottom, x, bottom + 5, AXIS);
        center(tickText(t), x, bottom + 10, 1);
      }
      for (const t of L.yTicks) {
        const y = Math.round(L.y(t));
        img.line(L.left, y, right, y, GRID);
        img.line(L.left - 5, y, L.left, y, AXIS);
        const s = tickText(t);
        img.text(L.left - 9 - textWidth(s, 1), y - 3, s, AXIS, 1);
      }
      img.line(L.left, L.top, L.left, bottom, AXIS, 2);
      img.line(L.left, bottom, right, bottom, AXIS, 2);
      center(opts.xLabel ?? 'step', L.left + L.plotW / 2, L.height - 30, 2);
      const yl = opts.yLabel ?? '';
      img.text(14, Math.round(L.top + L.plotH / 2 + textWidth(yl, 2) / 2), yl, AXIS, 2, true);
      for (const s of L.series)
        for (let i = 1; i < s.points.length; i++) {
          const [a, b] = [s.points[i - 1], s.points[i]];
          img.line(L.x(a[0]), L.y(a[1]), L.x(b[0]), L.y(b[1]), s.color, 2);
        }
      L.series.forEach((s, i) => {
        const y = L.top + 10 + i * 22;
        img.fillRect(legendX, y - 2, 18, 4, s.color);
        img.text(legendX + 26, y - 7, s.label, AXIS, 2);
      });
      return img;
    },
  };
}
