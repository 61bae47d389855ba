// uPlot charts as Preact components: a histogram (bars) and a line chart of several series. Each chart is
// created once per data change and destroyed on unmount; the canvas is aria-hidden and the component takes an
// accessible name and a text summary, since a canvas says nothing to a screen reader.
import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { laneColor } from './colors';

function useUplot(make: (el: HTMLElement, width: number) => uPlot, deps: unknown[]) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const width = Math.max(320, Math.min(900, el.clientWidth || 640));
    const plot = make(el, width);
    plot.root.querySelector('canvas')?.setAttribute('aria-hidden', 'true');
    return () => plot.destroy();
  }, deps);
  return ref;
}

const axis = { stroke: '#1b1f24', grid: { stroke: '#d0d7de', width: 1 }, ticks: { stroke: '#d0d7de' } };

export function Histogram(props: { edges: number[]; counts: number[]; label: string }) {
  const { edges, counts, label } = props;
  const ref = useUplot(
    (el, width) => {
      const centers = counts.map((_, i) => (edges[i] + edges[i + 1]) / 2);
      const opts: uPlot.Options = {
        width,
        height: 260,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false, range: [edges[0], edges[edges.length - 1]] } },
        axes: [
          { ...axis, label: 'b − a' },
          { ...axis, label: 'elements' },
        ],
        series: [
          {},
          {
            label: 'elements',
            fill: 'rgba(33, 144, 141, 0.75)',
            stroke: 'rgb(33, 144, 141)',
            paths: uPlot.paths.bars!({ size: [1, Infinity], align: 0 }),
            points: { show: false },
          },
        ],
      };
      return new uPlot(opts, [centers, counts], el);
    },
    [edges, counts],
  );
  return html`<figure class="chart" aria-label=${label}>
    <div ref=${ref} data-chart="histogram"></div>
  </figure>`;
}

export interface LineSeries {
  label: string;
  points: Array<[number, number]>;
}

export function LineChart(props: { series: LineSeries[]; xLabel: string; yLabel: string; label: string }) {
  const { series, xLabel, yLabel, label } = props;
  const ref = useUplot(
    (el, width) => {
      // uPlot wants one x array: the union of steps, with null where a run has no point (gaps are spanned).
      const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
      const index = new Map(xs.map((x, i) => [x, i]));
      const ys = series.map((s) => {
        const col: Array<number | null> = xs.map(() => null);
        for (const [x, y] of s.points) col[index.get(x)!] = y;
        return col;
      });
      const opts: uPlot.Options = {
        width,
        height: 320,
        scales: { x: { time: false } },
        axes: [
          { ...axis, label: xLabel },
          { ...axis, label: yLabel },
        ],
        series: [
          { label: xLabel },
          ...series.map((s, i) => ({
            label: s.label,
            stroke: laneColor(i),
            width: 2,
            spanGaps: true,
            points: { show: s.points.length < 60 },
          })),
        ],
      };
      return new uPlot(opts, [xs, ...ys] as uPlot.AlignedData, el);
    },
    [series, xLabel, yLabel],
  );
  return html`<figure class="chart" aria-label=${label}>
    <div ref=${ref} data-chart="lines"></div>
  </figure>`;
}
