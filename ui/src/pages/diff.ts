// #/r/<repo>/diff/<a>/<b> : the tensor-aware diff of two revisions as heatmaps (rows = layers, columns =
// parameter kinds), coloured with viridis by relative L2 change or fraction of elements changed; NaN/Inf,
// added and removed tensors carry a symbol as well as a colour. Each heatmap is an ARIA grid with one tab
// stop (roving tabindex): arrow keys, Home/End and PageUp/PageDown move, Enter or Space opens the tensor's
// histogram of changes (b − a), Escape closes it and returns focus to the cell.
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type DiffResult } from '../api';
import { Histogram } from '../charts';
import { css, textOn, viridis } from '../colors';
import { int, num, pct, short } from '../format';
import { domainMax, layoutGrids, METRIC_LABEL, type Cell, type Grid, type Metric } from '../heatmap';
import { Pending, useAsync } from '../hooks';
import { href } from '../router';

const NONFINITE = '⚠';
const ADDED = '+';
const REMOVED = '−';
const UNDEFINED = '?';

function cellValue(c: Cell, metric: Metric): number | null {
  const v = c.t[metric];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function describe(g: Grid, r: number, col: number, cell: Cell | null, metric: Metric): string {
  const where = g.rows[r] === '(no layer)' ? g.cols[col] : `${g.rows[r]} ${g.cols[col]}`;
  if (!cell) return `${where}: no tensor`;
  const t = cell.t;
  const parts = [t.name];
  if (t.status === 'added') parts.push('added in b');
  else if (t.status === 'removed') parts.push('removed in b');
  else {
    const v = cellValue(cell, metric);
    parts.push(`${METRIC_LABEL[metric]} ${v === null ? 'undefined' : metric === 'fracChanged' ? pct(v) : num(v)}`);
    if (t.status === 'unchanged') parts.push('unchanged');
    if (t.oldDtype !== undefined || t.oldShape !== undefined)
      parts.push(`was ${t.oldDtype ?? t.dtype} [${(t.oldShape ?? t.shape).join(', ')}]`);
  }
  if (t.nonFinite > 0) parts.push(`${int(t.nonFinite)} non-finite values (NaN or Inf)`);
  return parts.join(', ');
}

function Legend(props: { metric: Metric; max: number }) {
  const { metric, max } = props;
  const stops = Array.from({ length: 9 }, (_, i) => `${css(viridis(i / 8))} ${(i / 8) * 100}%`).join(', ');
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * max);
  return html`<div class="legend" aria-label="Colour legend">
    <p class="legend-title">${METRIC_LABEL[metric]}</p>
    <div class="legend-bar" style=${{ background: `linear-gradient(to right, ${stops})` }} aria-hidden="true"></div>
    <ol class="legend-ticks" aria-label="Scale from ${num(0)} to ${metric === 'fracChanged' ? pct(max) : num(max)}">
      ${ticks.map((v) => html`<li>${metric === 'fracChanged' ? pct(v) : num(v)}</li>`)}
    </ol>
    <ul class="legend-symbols">
      <li><span class="sym sym-nonfinite">${NONFINITE}</span> contains NaN or Inf</li>
      <li><span class="sym sym-grey">${ADDED}</span> added in b</li>
      <li><span class="sym sym-grey">${REMOVED}</span> removed in b</li>
      <li><span class="sym sym-grey">${UNDEFINED}</span> undefined (for example a zero tensor in a)</li>
    </ul>
  </div>`;
}

function Heatmap(props: { grid: Grid; metric: Metric; max: number; onOpen: (cell: Cell, el: HTMLElement) => void }) {
  const { grid, metric, max, onOpen } = props;
  const [active, setActive] = useState<[number, number]>([0, 0]);
  const table = useRef<HTMLTableElement>(null);
  const nr = grid.rows.length;
  const nc = grid.cols.length;
  // Focus moves at once (the cells are all in the DOM); the tabindex follows through onFocus → setActive.
  const move = (r: number, c: number) => {
    const rr = Math.max(0, Math.min(nr - 1, r));
    const cc = Math.max(0, Math.min(nc - 1, c));
    table.current?.querySelector<HTMLElement>(`[data-r="${rr}"][data-c="${cc}"]`)?.focus();
    setActive([rr, cc]);
  };
  const onKey = (e: KeyboardEvent) => {
    const [r, c] = active;
    const ctrl = e.ctrlKey || e.metaKey;
    switch (e.key) {
      case 'ArrowRight':
        move(r, c + 1);
        break;
      case 'ArrowLeft':
        move(r, c - 1);
        break;
      case 'ArrowDown':
        move(r + 1, c);
        break;
      case 'ArrowUp':
        move(r - 1, c);
        break;
      case 'Home':
        move(ctrl ? 0 : r, 0);
        break;
      case 'End':
        move(ctrl ? nr - 1 : r, nc - 1);
        break;
      case 'PageDown':
        move(r + 5, c);
        break;
      case 'PageUp':
        move(r - 5, c);
        break;
      case 'Enter':
      case ' ': {
        const cell = grid.cells[r][c];
        if (cell) onOpen(cell, e.target as HTMLElement);
        break;
      }
      default:
        return;
    }
    e.preventDefault();
  };
  return html`<div class="heatmap-wrap">
    <table
      ref=${table}
      class="heatmap"
      role="grid"
      id=${grid.id}
      aria-label="${grid.title}, ${METRIC_LABEL[metric]}"
      aria-rowcount=${nr + 1}
      aria-colcount=${nc + 1}
      onKeyDown=${onKey}
    >
      <thead>
        <tr role="row">
          <th role="columnheader" scope="col" class="corner"><span class="sr-only">Layer</span></th>
          ${grid.cols.map(
            (k) => html`<th role="columnheader" scope="col" class="kind"><span title=${k}>${k}</span></th>`,
          )}
        </tr>
      </thead>
      <tbody>
        ${grid.rows.map(
          (row, r) =>
            html`<tr role="row">
              <th role="rowheader" scope="row" class="layer">${row}</th>
              ${grid.cols.map((_, c) => {
                const cell = grid.cells[r][c];
                const label = describe(grid, r, c, cell, metric);
                const isActive = active[0] === r && active[1] === c;
                let bg = '#f6f8fa';
                let sym = '';
                let cls = 'cell empty';
                if (cell) {
                  const v = cellValue(cell, metric);
                  cls = 'cell';
                  if (cell.t.status === 'added') {
                    bg = '#d0d7de';
                    sym = ADDED;
                  } else if (cell.t.status === 'removed') {
                    bg = '#d0d7de';
                    sym = REMOVED;
                  } else if (v === null) {
                    bg = '#d0d7de';
                    sym = UNDEFINED;
                  } else bg = css(viridis(v / max));
                  if (cell.t.nonFinite > 0) {
                    sym = NONFINITE;
                    cls += ' nonfinite';
                  }
                }
                const rgb = bg.startsWith('rgb') ? (bg.match(/\d+/g)!.map(Number) as [number, number, number]) : null;
                return html`<td
                  role="gridcell"
                  class=${cls}
                  tabindex=${isActive ? 0 : -1}
                  data-r=${r}
                  data-c=${c}
                  data-tensor=${cell?.t.name}
                  data-value=${cell ? (cellValue(cell, metric) ?? '') : undefined}
                  data-nonfinite=${cell ? cell.t.nonFinite : undefined}
                  aria-label=${label}
                  title=${label}
                  style=${{ background: bg, color: rgb ? textOn(rgb) : '#1b1f24' }}
                  onClick=${(e: MouseEvent) => {
                    setActive([r, c]);
                    if (cell) onOpen(cell, e.currentTarget as HTMLElement);
                  }}
                  onFocus=${() => (isActive ? undefined : setActive([r, c]))}
                >
                  <span aria-hidden="true">${sym}</span>
                </td>`;
              })}
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function HistogramPanel(props: { repo: string; a: string; b: string; cell: Cell; onClose: () => void }) {
  const { repo, a, b, cell, onClose } = props;
  const t = cell.t;
  const both = t.status === 'modified' || t.status === 'unchanged';
  const s = useAsync(
    () => (both ? api.tensorDiff(repo, a, b, cell.path, t.name) : Promise.resolve(null)),
    [repo, a, b, cell.path, t.name],
  );
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [t.name, cell.path]);
  return html`<section
    class="histogram"
    id="histogram"
    aria-labelledby="hist-h"
    onKeyDown=${(e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onClose();
      }
    }}
  >
    <h2 id="hist-h" ref=${heading} tabindex="-1">Changes of <code>${t.name}</code></h2>
    <p class="muted"><code>${cell.path}</code> · ${t.dtype} [${t.shape.join(', ')}] · ${t.status}</p>
    ${!both && html`<p>The tensor is ${t.status} in b: there is no element-wise change to show.</p>`}
    ${both && html`<${Pending} s=${s} what="the histogram" />`}
    ${
      s.state === 'ok' &&
      s.value &&
      html`<dl class="facts" id="hist-stats">
          <dt>Changed</dt>
          <dd>${int(s.value.changed)} of ${int(s.value.total)} elements</dd>
          <dt>Relative L2</dt>
          <dd>${num(s.value.relL2)}</dd>
          <dt>Max |b − a|</dt>
          <dd>${num(s.value.maxAbs)}</dd>
          <dt>Non-finite</dt>
          <dd>${s.value.nonFinite > 0 ? html`<strong>${NONFINITE} ${int(s.value.nonFinite)}</strong>` : '0'}</dd>
        </dl>
        <${Histogram}
          edges=${s.value.bins.edges}
          counts=${s.value.bins.counts}
          label="Histogram of b − a for ${t.name}: ${s.value.bins.counts.length} bins from ${num(s.value.bins.edges[0])} to ${num(s.value.bins.edges[s.value.bins.edges.length - 1])}"
        />`
    }
    <button type="button" onClick=${onClose}>Close histogram</button>
  </section>`;
}

function Pickers(props: { repo: string; a: string; b: string }) {
  const { repo } = props;
  const [a, setA] = useState(props.a);
  const [b, setB] = useState(props.b);
  const refs = useAsync(() => api.refs(repo), [repo]);
  const recent = useAsync(() => api.commits(repo, { limit: 50 }), [repo]);
  const options = [
    ...(refs.state === 'ok'
      ? [
          ...refs.value.branches.map((x) => ({ v: x.name, l: 'branch' })),
          ...refs.value.tags.map((x) => ({ v: x.name, l: 'tag' })),
        ]
      : []),
    ...(recent.state === 'ok' ? recent.value.commits.map((c) => ({ v: c.id, l: c.message.split('\n')[0] })) : []),
  ];
  return html`<form
    class="pickers"
    aria-label="Revisions to compare"
    onSubmit=${(e: Event) => {
      e.preventDefault();
      if (a.trim() && b.trim()) location.hash = href.diff(repo, a.trim(), b.trim());
    }}
  >
    <datalist id="revs">${options.map((o) => html`<option value=${o.v}>${o.l}</option>`)}</datalist>
    <label for="rev-a">From (a)</label>
    <input id="rev-a" list="revs" value=${a} onInput=${(e: Event) => setA((e.target as HTMLInputElement).value)} />
    <label for="rev-b">To (b)</label>
    <input id="rev-b" list="revs" value=${b} onInput=${(e: Event) => setB((e.target as HTMLInputElement).value)} />
    <button type="submit">Compare</button>
    <button
      type="button"
      onClick=${() => {
        setA(b);
        setB(a);
      }}
    >
      Swap
    </button>
  </form>`;
}

function Summary(props: { diff: DiffResult }) {
  const counts = { modified: 0, added: 0, removed: 0, unchanged: 0 };
  let nonFinite = 0;
  for (const f of props.diff.files)
    for (const t of f.tensors) {
      counts[t.status]++;
      if (t.nonFinite > 0) nonFinite++;
    }
  const text = `${int(counts.modified)} modified, ${int(counts.added)} added, ${int(counts.removed)} removed, ${int(counts.unchanged)} unchanged tensors`;
  return html`<p id="diff-summary">
    ${text}${nonFinite > 0 && html`; <strong>${NONFINITE} ${int(nonFinite)} with NaN or Inf</strong>`}.
  </p>`;
}

function DiffBody(props: { repo: string; a: string; b: string }) {
  const { repo, a, b } = props;
  const s = useAsync(() => api.diff(repo, a, b), [repo, a, b]);
  const [metric, setMetric] = useState<Metric>('relL2');
  const [open, setOpen] = useState<{ cell: Cell; from: HTMLElement } | null>(null);
  const grids = useMemo(() => (s.state === 'ok' ? layoutGrids(s.value) : []), [s]);
  const max = useMemo(() => domainMax(grids, metric), [grids, metric]);
  if (s.state !== 'ok') return html`<${Pending} s=${s} what="the diff" />`;
  const d = s.value;
  return html`<p>
      <a href=${href.commit(repo, d.a)}><code>${short(d.a)}</code></a
      >${' → '}<a href=${href.commit(repo, d.b)}><code>${short(d.b)}</code></a>
    </p>
    <${Summary} diff=${d} />
    <fieldset class="toggle">
      <legend>Colour by</legend>
      ${(['relL2', 'fracChanged'] as Metric[]).map(
        (m) =>
          html`<label
            ><input type="radio" name="metric" value=${m} checked=${metric === m} onChange=${() => setMetric(m)} />
            ${METRIC_LABEL[m]}</label
          >`,
      )}
    </fieldset>
    <${Legend} metric=${metric} max=${max} />
    ${grids.length === 0 && html`<p>Neither revision holds tensors.</p>`}
    ${grids.map(
      (g) =>
        html`<section aria-label=${g.title}>
          <h2>${g.title}</h2>
          <${Heatmap}
            grid=${g}
            metric=${metric}
            max=${max}
            onOpen=${(cell: Cell, from: HTMLElement) => setOpen({ cell, from })}
          />
        </section>`,
    )}
    ${
      open &&
      html`<${HistogramPanel}
        repo=${repo}
        a=${d.a}
        b=${d.b}
        cell=${open.cell}
        onClose=${() => {
          const from = open.from;
          setOpen(null);
          from.focus();
        }}
      />`
    }`;
}

export function DiffView(props: { repo: string; a: string | null; b: string | null }) {
  const { repo, a, b } = props;
  // Without revisions: HEAD against its first parent, when there is one.
  const suggestion = useAsync(async () => {
    if (a !== null && b !== null) return null;
    const refs = await api.refs(repo);
    const tip = b ?? refs.head ?? refs.headId;
    if (!tip) return null;
    const c = await api.commit(repo, tip);
    return { a: a ?? c.commit.parents[0] ?? c.commit.id, b: tip };
  }, [repo, a, b]);
  useEffect(() => {
    if (suggestion.state === 'ok' && suggestion.value)
      location.replace(href.diff(repo, suggestion.value.a, suggestion.value.b));
  }, [suggestion]);
  return html`<h1 tabindex="-1">Diff${a && b ? html` <code>${a}</code> → <code>${b}</code>` : ''}</h1>
    ${
      a !== null && b !== null
        ? html`<${Pickers} repo=${repo} a=${a} b=${b} /><${DiffBody} repo=${repo} a=${a} b=${b} />`
        : html`<${Pending} s=${suggestion} what="the revisions" />
            ${suggestion.state === 'ok' && !suggestion.value && html`<p>The repository has no commits yet.</p>`}`
    }`;
}
