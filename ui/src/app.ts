// The app shell: banner with the repository's navigation, the routed page in <main>, and the token form that
// replaces the page when the API answers 401 (coral serve --ui). Focus moves to the page heading on navigation
// so keyboard and screen-reader users start at the top of the new page.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { AuthRequiredError, getToken, onAuthRequired, setToken } from './api';
import { CommitView } from './pages/commit';
import { DiffView } from './pages/diff';
import { ExperimentsView } from './pages/experiments';
import { GraphView } from './pages/graph';
import { ReposView } from './pages/repos';
import { StorageView } from './pages/storage';
import { href, parseHash, type Route } from './router';

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function TokenForm(props: { refused: boolean; onToken: () => void }) {
  const [value, setValue] = useState('');
  const submit = (e: Event) => {
    e.preventDefault();
    if (!value.trim()) return;
    setToken(value.trim());
    props.onToken();
  };
  return html`<section class="token" aria-labelledby="token-h">
    <h1 id="token-h" tabindex="-1">Access token</h1>
    <p>This server needs a token with read access (<code>coral serve token add … --scope read</code>).</p>
    ${props.refused && html`<p role="alert" class="error">The server refused that token.</p>`}
    <form onSubmit=${submit}>
      <label for="token-input">Token</label>
      <input
        id="token-input"
        type="password"
        autocomplete="off"
        value=${value}
        onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Use token</button>
    </form>
    <p class="muted">It is kept in this tab's session storage only.</p>
  </section>`;
}

const NAV: Array<{ page: Route['page']; label: string; to: (repo: string) => string }> = [
  { page: 'graph', label: 'History', to: href.graph },
  { page: 'diff', label: 'Diff', to: (r) => href.diff(r) },
  { page: 'storage', label: 'Storage', to: href.storage },
  { page: 'experiments', label: 'Experiments', to: href.experiments },
];

function Page(props: { route: Route }) {
  const r = props.route;
  switch (r.page) {
    case 'repos':
      return html`<${ReposView} />`;
    case 'graph':
      return html`<${GraphView} repo=${r.repo} />`;
    case 'commit':
      return html`<${CommitView} repo=${r.repo} rev=${r.rev} />`;
    case 'diff':
      return html`<${DiffView} repo=${r.repo} a=${r.a} b=${r.b} />`;
    case 'storage':
      return html`<${StorageView} repo=${r.repo} />`;
    case 'experiments':
      return html`<${ExperimentsView} repo=${r.repo} />`;
    default:
      return html`<h1 tabindex="-1">Not found</h1>
        <p>No page at <code>${r.hash}</code>. <a href="#/">Repositories</a></p>`;
  }
}

export function App() {
  const route = useRoute();
  const [auth, setAuth] = useState<AuthRequiredError | null>(null);
  const [generation, setGeneration] = useState(0);
  useEffect(() => onAuthRequired((e) => setAuth(e)), []);
  const key = `${location.hash}|${generation}`;
  useEffect(() => {
    document.querySelector<HTMLElement>('main h1')?.focus({ preventScroll: true });
  }, [route, auth]);
  const repo = 'repo' in route ? route.repo : null;
  return html`<header class="banner">
      <a class="brand" href="#/">coral</a>
      ${
        repo &&
        html`<nav aria-label="Repository">
          <span class="repo-name" title="repository">${repo}</span>
          <ul>
            ${NAV.map(
              (n) =>
                html`<li>
                  <a href=${n.to(repo)} aria-current=${route.page === n.page ? 'page' : undefined}>${n.label}</a>
                </li>`,
            )}
          </ul>
        </nav>`
      }
      ${
        getToken() &&
        html`<button
          type="button"
          class="link"
          onClick=${() => {
            setToken(null);
            setGeneration(generation + 1);
          }}
        >
          Forget token
        </button>`
      }
    </header>
    <main id="main">
      ${
        auth
          ? html`<${TokenForm}
              refused=${auth.hadToken}
              onToken=${() => {
                setAuth(null);
                setGeneration(generation + 1);
              }}
            />`
          : html`<${Page} key=${key} route=${route} />`
      }
    </main>`;
}
