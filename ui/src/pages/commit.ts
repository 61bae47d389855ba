// #/r/<repo>/commit/<rev> : one commit, its files and their tensors (dtype, shape, codec, delta base, chain
// depth, logical and stored size), lossy files and cast tensors marked. From stored attributes only.
import { html } from 'htm/preact';
import { api } from '../api';
import { bytes, firstLine, int, num, short, when } from '../format';
import { Pending, useAsync } from '../hooks';
import { href } from '../router';

export function CommitView(props: { repo: string; rev: string }) {
  const { repo, rev } = props;
  const s = useAsync(() => api.commit(repo, rev), [repo, rev]);
  const c = s.state === 'ok' ? s.value.commit : null;
  return html`<h1 tabindex="-1">${c ? firstLine(c.message) || '(no message)' : `Commit ${rev}`}</h1>
    <${Pending} s=${s} what="the commit" />
    ${
      s.state === 'ok' &&
      c &&
      html`<section aria-labelledby="commit-h">
          <h2 id="commit-h" class="sr-only">Commit</h2>
          <dl class="facts">
            <dt>Commit</dt>
            <dd><code id="commit-id">${c.id}</code></dd>
            <dt>Author</dt>
            <dd>${c.author}</dd>
            <dt>Date</dt>
            <dd><time datetime=${c.time}>${when(c.time)}</time></dd>
            <dt>${c.parents.length > 1 ? 'Parents' : 'Parent'}</dt>
            <dd>
              ${
                c.parents.length === 0
                  ? 'none (root commit)'
                  : c.parents.map(
                      (p, i) =>
                        html`${i > 0 ? ', ' : ''}<a href=${href.commit(repo, p)}><code>${short(p)}</code></a> (<a
                            href=${href.diff(repo, p, c.id)}
                            >diff</a
                          >)`,
                    )
              }
            </dd>
            ${
              c.refs.length > 0 &&
              html`<dt>Refs</dt>
                <dd>${c.refs.join(', ')}</dd>`
            }
            ${
              c.metrics &&
              html`<dt>Metrics</dt>
                <dd>${Object.entries(c.metrics).map(([k, v], i) => html`${i > 0 ? ', ' : ''}${k} ${num(v)}`)}</dd>`
            }
          </dl>
          ${c.message.trim().includes('\n') && html`<pre class="message">${c.message.trim()}</pre>`}
        </section>
        <section aria-labelledby="files-h">
          <h2 id="files-h">Files (${s.value.files.length})</h2>
          ${s.value.files.map(
            (f) =>
              html`<section class="file" aria-label=${f.path}>
                <h3>
                  <code>${f.path}</code>
                  ${
                    f.lossy &&
                    html`<span class="badge lossy" title="stored with a lossy codec: not byte-exact">lossy</span>`
                  }
                </h3>
                <p class="muted">
                  ${f.format}, ${bytes(f.size)}, ${f.tensors.length} tensors, sha256${' '}<code
                    >${f.sha256.slice(0, 16)}…</code
                  >
                </p>
                ${
                  f.tensors.length > 0 &&
                  html`<table class="data tensors">
                    <caption class="sr-only">
                      Tensors of ${f.path}
                    </caption>
                    <thead>
                      <tr>
                        <th scope="col">Tensor</th>
                        <th scope="col">dtype</th>
                        <th scope="col">Shape</th>
                        <th scope="col">Codec</th>
                        <th scope="col">Base</th>
                        <th scope="col" class="num">Chain</th>
                        <th scope="col" class="num">Logical</th>
                        <th scope="col" class="num">Stored</th>
                      </tr>
                    </thead>
                    <tbody>
                      ${f.tensors.map(
                        (t) =>
                          html`<tr data-tensor=${t.name}>
                            <th scope="row"><code>${t.name}</code></th>
                            <td>
                              ${t.dtype}${t.cast && html` <span class="badge lossy" title="cast to a narrower dtype">cast</span>`}
                            </td>
                            <td>[${t.shape.join(', ')}]</td>
                            <td>${t.codec ?? html`<span class="muted">not here</span>`}</td>
                            <td>${t.base ? html`<code title=${t.base}>${short(t.base)}</code>` : '—'}</td>
                            <td class="num">${t.chainDepth}</td>
                            <td class="num"><data value=${t.logicalSize}>${bytes(t.logicalSize)}</data></td>
                            <td class="num">
                              ${t.storedSize === null ? '—' : html`<data value=${t.storedSize}>${bytes(t.storedSize)}</data>`}
                            </td>
                          </tr>`,
                      )}
                    </tbody>
                  </table>`
                }
              </section>`,
          )}
          <p class="muted">${int(s.value.files.reduce((n, f) => n + f.tensors.length, 0))} tensors in all.</p>
        </section>`
    }`;
}
