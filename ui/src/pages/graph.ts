// #/r/<repo> : the commit graph (lanes computed client-side from the paged commit list, merges drawn to both
// parents, "Load more" fetches the next page), branch and tag labels, and the metrics of tagged commits.
import { html } from 'htm/preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type CommitInfo } from '../api';
import { laneColor } from '../colors';
import { firstLine, num, short, when } from '../format';
import { Pending, useAsync } from '../hooks';
import { layoutLanes, type Row } from '../lanes';
import { href } from '../router';

const PAGE = 100;
const LANE_W = 14;
const ROW_H = 32;

function LaneCell(props: { row: Row; width: number; merge: boolean }) {
  const { row, width, merge } = props;
  const x = (lane: number) => LANE_W / 2 + lane * LANE_W;
  const mid = ROW_H / 2;
  const w = Math.max(1, width) * LANE_W;
  return html`<svg class="lanes" width=${w} height=${ROW_H} viewBox="0 0 ${w} ${ROW_H}" aria-hidden="true">
    ${row.top.map(
      (s) =>
        html`<line x1=${x(s.from)} y1="0" x2=${x(s.to)} y2=${mid} stroke=${laneColor(s.color)} stroke-width="2" />`,
    )}
    ${row.bottom.map(
      (s) =>
        html`<line
          x1=${x(s.from)}
          y1=${mid}
          x2=${x(s.to)}
          y2=${ROW_H}
          stroke=${laneColor(s.color)}
          stroke-width="2"
        />`,
    )}
    <circle
      cx=${x(row.lane)}
      cy=${mid}
      r=${merge ? 6 : 5}
      fill=${merge ? '#fff' : laneColor(row.lane)}
      stroke=${laneColor(row.lane)}
      stroke-width="2"
    />
  </svg>`;
}

function RefBadges(props: { refs: string[] }) {
  return html`${props.refs.map((r) => {
    const tag = r.startsWith('tag: ');
    return html`<span class=${tag ? 'badge tag' : 'badge branch'}
      ><span class="sr-only">${tag ? 'tag' : 'branch'} </span>${tag ? r.slice(5) : r}</span
    >`;
  })}`;
}

function Metrics(props: { metrics: Record<string, number> | null }) {
  if (!props.metrics) return null;
  const entries = Object.entries(props.metrics);
  if (entries.length === 0) return null;
  return html`<span class="metrics"
    >${entries.map(([k, v]) => html`<span class="metric">${k} ${num(v)}</span>`)}</span
  >`;
}

function TaggedMetrics(props: {
  repo: string;
  tags: Array<{ name: string; id: string }>;
  loaded: CommitInfo[];
  /** The first page is in: fetch only the tags it does not hold, and never compete with it for the server. */
  ready: boolean;
}) {
  const { repo, tags, loaded, ready } = props;
  const byId = useMemo(() => new Map(loaded.map((c) => [c.id, c])), [loaded]);
  const missing = tags.filter((t) => !byId.has(t.id)).map((t) => t.name);
  // Tags whose commit is not among the loaded pages: one commit each (metrics come from stored metadata),
  // fetched once per tag and kept while the page lives, after the first page (the rows come first).
  const fetched = useRef(new Map<string, CommitInfo>());
  const [, setFetchedCount] = useState(0);
  const [fetchError, setFetchError] = useState<Error | null>(null);
  useEffect(() => {
    const need = missing.filter((n) => !fetched.current.has(n));
    if (!ready || need.length === 0) return;
    let live = true;
    Promise.all(
      need.map(async (name) => [name, (await api.commits(repo, { rev: name, limit: 1 })).commits[0]] as const),
    )
      .then((got) => {
        for (const [name, c] of got) if (c) fetched.current.set(name, c);
        if (live) setFetchedCount(fetched.current.size);
      })
      .catch((e: unknown) => live && setFetchError(e instanceof Error ? e : new Error(String(e))));
    return () => {
      live = false;
    };
  }, [repo, ready, missing.join('\0')]);
  if (tags.length === 0) return html`<p class="muted">No tags.</p>`;
  const commitOf = (t: { name: string; id: string }) => byId.get(t.id) ?? fetched.current.get(t.name);
  const names = [...new Set(tags.flatMap((t) => Object.keys(commitOf(t)?.metrics ?? {})))].sort();
  return html`${fetchError && html`<p role="alert" class="error">Could not load a tagged commit: ${fetchError.message}</p>`}
    <table class="data" id="tag-metrics">
      <caption>
        Metrics of tagged commits
      </caption>
      <thead>
        <tr>
          <th scope="col">Tag</th>
          <th scope="col">Commit</th>
          ${names.map((n) => html`<th scope="col" class="num">${n}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${tags.map((t) => {
          const c = commitOf(t);
          return html`<tr>
            <th scope="row">${t.name}</th>
            <td>
              <a href=${href.commit(repo, t.id)}><code>${short(t.id)}</code></a> ${c ? firstLine(c.message) : ''}
            </td>
            ${names.map((n) => html`<td class="num">${num(c?.metrics?.[n])}</td>`)}
          </tr>`;
        })}
      </tbody>
    </table>`;
}

export function GraphView(props: { repo: string }) {
  const { repo } = props;
  const refs = useAsync(() => api.refs(repo), [repo]);
  const [commits, setCommits] = useState<CommitInfo[]>([]);
  const [next, setNext] = useState<string | null | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  const loadPage = async (cursor?: string) => {
    setBusy(true);
    try {
      const page = await api.commits(repo, { limit: PAGE, cursor });
      setCommits((prev) => (cursor ? [...prev, ...page.commits] : page.commits));
      setNext(page.next);
      setError(null);
    } catch (e) {
      setError(e as Error);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void loadPage();
  }, [repo]);
  const layout = useMemo(() => layoutLanes(commits), [commits]);
  return html`<h1 tabindex="-1">History of ${repo}</h1>
    <${Pending} s=${refs} what="the branches and tags" />
    ${
      refs.state === 'ok' &&
      html`<section aria-labelledby="refs-h">
        <h2 id="refs-h">Branches and tags</h2>
        <p>
          ${refs.value.branches.map(
            (b) =>
              html`<a class="badge branch" href=${href.commit(repo, b.name)}
                ><span class="sr-only">branch </span>${b.name}${refs.value.head === b.name ? ' (HEAD)' : ''}</a
              > `,
          )}
          ${refs.value.tags.map(
            (t) =>
              html`<a class="badge tag" href=${href.commit(repo, t.name)}
                ><span class="sr-only">tag </span>${t.name}</a
              > `,
          )}
        </p>
      </section>`
    }
    <section aria-labelledby="graph-h">
      <h2 id="graph-h">Commits</h2>
      ${error && html`<p role="alert" class="error">Could not load the commits: ${error.message}</p>`}
      ${next === undefined && !error && html`<p role="status" class="muted">Loading the commits…</p>`}
      ${next !== undefined && commits.length === 0 && html`<p>No commits yet.</p>`}
      <ol class="graph" aria-label="Commits, newest first">
        ${commits.map((c, i) => {
          const row = layout.rows[i];
          const merge = c.parents.length > 1;
          return html`<li class="commit-row" data-id=${c.id}>
            <${LaneCell} row=${row} width=${layout.lanes} merge=${merge} />
            <a class="msg" href=${href.commit(repo, c.id)}>${firstLine(c.message) || '(no message)'}</a>
            ${
              merge &&
              html`<span class="merge-of"
                >merge
                of${' '}${c.parents.map(
                  (p, k) => html`${k > 0 ? ' and ' : ''}<a href=${href.commit(repo, p)}><code>${short(p)}</code></a>`,
                )}</span
              >`
            }
            <${RefBadges} refs=${c.refs} />
            <${Metrics} metrics=${c.metrics} />
            <span class="meta"><code>${short(c.id)}</code> ${c.author} · ${when(c.time)}</span>
            ${
              c.parents[0] &&
              html`<a
                class="diff-link"
                href=${href.diff(repo, c.parents[0], c.id)}
                aria-label="Diff of ${short(c.id)} with its first parent"
                >diff</a
              >`
            }
          </li>`;
        })}
      </ol>
      ${
        next &&
        html`<button type="button" id="load-more" disabled=${busy} onClick=${() => void loadPage(next)}>
          ${busy ? 'Loading…' : `Load ${PAGE} more`}
        </button>`
      }
      ${next === null && commits.length > 0 && html`<p class="muted">${commits.length} commits, all loaded.</p>`}
    </section>
    ${
      refs.state === 'ok' &&
      html`<section aria-labelledby="tags-h">
        <h2 id="tags-h">Tagged commits</h2>
        <${TaggedMetrics} repo=${repo} tags=${refs.value.tags} loaded=${commits} ready=${next !== undefined} />
      </section>`
    }`;
}
