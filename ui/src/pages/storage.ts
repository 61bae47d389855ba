// #/r/<repo>/storage : what the store spends: logical vs stored bytes, by codec, by file, by commit (bytes each
// commit introduced) and delta chain depths. Every number is the API's; exact byte counts sit in <data value>.
import { html } from 'htm/preact';
import { api } from '../api';
import { bytes, firstLine, int, short } from '../format';
import { Pending, useAsync } from '../hooks';
import { href } from '../router';

const B = (n: number) => html`<data value=${n} title="${int(n)} bytes">${bytes(n)}</data>`;
const ratio = (logical: number, stored: number) => (stored > 0 ? `${(logical / stored).toFixed(2)}×` : '—');

/** A bar proportional to `part / whole`, hidden from screen readers (the number is in the next cell). */
const Bar = (part: number, whole: number) =>
  html`<span class="bar" aria-hidden="true"
    ><span style=${{ width: `${whole > 0 ? Math.max(0.5, (part / whole) * 100) : 0}%` }}></span
  ></span>`;

export function StorageView(props: { repo: string }) {
  const { repo } = props;
  const s = useAsync(() => api.storage(repo), [repo]);
  if (s.state !== 'ok')
    return html`<h1 tabindex="-1">Storage of ${repo}</h1>
      <${Pending} s=${s} what="the storage breakdown" />`;
  const st = s.value;
  const maxCommit = Math.max(0, ...st.byCommit.map((c) => c.newStored));
  const maxDepth = Math.max(0, ...st.chainDepths.map((d) => d.objects));
  return html`<h1 tabindex="-1">Storage of ${repo}</h1>
    <section aria-labelledby="totals-h">
      <h2 id="totals-h">Totals</h2>
      <dl class="facts totals" id="storage-totals">
        <dt>Logical</dt>
        <dd id="total-logical">${B(st.logical)}</dd>
        <dt>Stored</dt>
        <dd id="total-stored">${B(st.stored)}</dd>
        <dt>Ratio</dt>
        <dd>${ratio(st.logical, st.stored)}</dd>
        <dt>Objects</dt>
        <dd id="total-objects">${int(st.objects)}</dd>
      </dl>
    </section>
    <section aria-labelledby="codec-h">
      <h2 id="codec-h">By codec</h2>
      <table class="data" id="by-codec">
        <thead>
          <tr>
            <th scope="col">Codec</th>
            <th scope="col" class="num">Objects</th>
            <th scope="col" class="num">Logical</th>
            <th scope="col" class="num">Stored</th>
            <th scope="col" class="num">Ratio</th>
            <th scope="col">Share of stored</th>
          </tr>
        </thead>
        <tbody>
          ${st.byCodec.map(
            (c) =>
              html`<tr data-codec=${c.codec}>
                <th scope="row">${c.codec}</th>
                <td class="num">${int(c.objects)}</td>
                <td class="num">${B(c.logical)}</td>
                <td class="num">${B(c.stored)}</td>
                <td class="num">${ratio(c.logical, c.stored)}</td>
                <td>${Bar(c.stored, st.stored)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </section>
    <section aria-labelledby="file-h">
      <h2 id="file-h">By file</h2>
      <table class="data" id="by-file">
        <thead>
          <tr>
            <th scope="col">File</th>
            <th scope="col" class="num">Logical</th>
            <th scope="col" class="num">Stored</th>
            <th scope="col" class="num">Ratio</th>
          </tr>
        </thead>
        <tbody>
          ${st.byFile.map(
            (f) =>
              html`<tr data-path=${f.path}>
                <th scope="row"><code>${f.path}</code></th>
                <td class="num">${B(f.logical)}</td>
                <td class="num">${B(f.stored)}</td>
                <td class="num">${ratio(f.logical, f.stored)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </section>
    <section aria-labelledby="commit-h">
      <h2 id="commit-h">By commit</h2>
      <p class="muted">Stored bytes each commit introduced, newest first.</p>
      <table class="data" id="by-commit">
        <thead>
          <tr>
            <th scope="col">Commit</th>
            <th scope="col" class="num">New stored</th>
            <th scope="col">Share</th>
          </tr>
        </thead>
        <tbody>
          ${st.byCommit.map(
            (c) =>
              html`<tr data-id=${c.id}>
                <th scope="row">
                  <a href=${href.commit(repo, c.id)}><code>${short(c.id)}</code></a> ${firstLine(c.message)}
                </th>
                <td class="num">${B(c.newStored)}</td>
                <td>${Bar(c.newStored, maxCommit)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </section>
    <section aria-labelledby="depth-h">
      <h2 id="depth-h">Delta chain depths</h2>
      <table class="data" id="chain-depths">
        <thead>
          <tr>
            <th scope="col">Depth</th>
            <th scope="col" class="num">Objects</th>
            <th scope="col">Share</th>
          </tr>
        </thead>
        <tbody>
          ${st.chainDepths.map(
            (d) =>
              html`<tr data-depth=${d.depth}>
                <th scope="row">${d.depth === 0 ? '0 (full)' : d.depth}</th>
                <td class="num">${int(d.objects)}</td>
                <td>${Bar(d.objects, maxDepth)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
}
