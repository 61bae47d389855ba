// #/r/<repo>/experiments : the ExperimentTracker's runs (docs/training.md): one metric over steps with every
// run overlaid (uPlot), a metric picker, and a table of parameters and last values for screen readers.
import { html } from 'htm/preact';
import { useMemo, useState } from 'preact/hooks';
import { api } from '../api';
import { LineChart } from '../charts';
import { laneColor } from '../colors';
import { num } from '../format';
import { Pending, useAsync } from '../hooks';

const paramText = (v: unknown): string => (v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v));

export function ExperimentsView(props: { repo: string }) {
  const { repo } = props;
  const s = useAsync(() => api.experiments(repo), [repo]);
  const runs = s.state === 'ok' ? s.value.runs : [];
  const metrics = useMemo(() => [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort(), [runs]);
  const [picked, setPicked] = useState<string | null>(null);
  const metric = picked !== null && metrics.includes(picked) ? picked : metrics.includes('loss') ? 'loss' : metrics[0];
  const series = useMemo(
    () => runs.filter((r) => r.metrics[metric]?.length).map((r) => ({ label: r.name, points: r.metrics[metric] })),
    [runs, metric],
  );
  const params = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  return html`<h1 tabindex="-1">Experiments in ${repo}</h1>
    <${Pending} s=${s} what="the experiment runs" />
    ${
      s.state === 'ok' &&
      runs.length === 0 &&
      html`<p>
        No experiment runs. Start one with <code>coral experiment start &lt;name&gt;</code> or the ExperimentTracker
        (docs/training.md).
      </p>`
    }
    ${
      runs.length > 0 &&
      html`<section aria-labelledby="chart-h">
          <h2 id="chart-h">${metric ?? 'Metrics'} over steps</h2>
          ${
            metrics.length > 1 &&
            html`<p>
              <label for="metric-pick">Metric </label>
              <select id="metric-pick" onChange=${(e: Event) => setPicked((e.target as HTMLSelectElement).value)}>
                ${metrics.map((m) => html`<option value=${m} selected=${m === metric}>${m}</option>`)}
              </select>
            </p>`
          }
          ${
            metric &&
            series.length > 0 &&
            html`<${LineChart}
              series=${series}
              xLabel="step"
              yLabel=${metric}
              label="${metric} over steps for ${series.map((x) => x.label).join(', ')}"
            />`
          }
        </section>
        <section aria-labelledby="runs-h">
          <h2 id="runs-h">Runs</h2>
          <table class="data" id="runs">
            <thead>
              <tr>
                <th scope="col">Run</th>
                ${params.map((p) => html`<th scope="col">${p}</th>`)}
                <th scope="col" class="num">Points</th>
                <th scope="col" class="num">Last ${metric}</th>
                <th scope="col" class="num">Min ${metric}</th>
              </tr>
            </thead>
            <tbody>
              ${runs.map((r, i) => {
                const pts = r.metrics[metric] ?? [];
                const last = pts.length ? pts[pts.length - 1][1] : null;
                const min = pts.length ? Math.min(...pts.map((p) => p[1])) : null;
                return html`<tr data-run=${r.name}>
                  <th scope="row">
                    <span class="swatch" style=${{ background: laneColor(i) }} aria-hidden="true"></span>${r.name}
                  </th>
                  ${params.map((p) => html`<td>${paramText(r.params[p])}</td>`)}
                  <td class="num">${pts.length}</td>
                  <td class="num">${num(last)}</td>
                  <td class="num">${num(min)}</td>
                </tr>`;
              })}
            </tbody>
          </table>
        </section>`
    }`;
}
