// #/ : the served repositories; with exactly one (coral ui), straight to its history.
import { html } from 'htm/preact';
import { useEffect } from 'preact/hooks';
import { api } from '../api';
import { Pending, useAsync } from '../hooks';
import { href } from '../router';

export function ReposView() {
  const s = useAsync(() => api.repos(), []);
  const only = s.state === 'ok' && s.value.repos.length === 1 ? s.value.repos[0].name : null;
  useEffect(() => {
    if (only !== null) location.replace(href.graph(only));
  }, [only]);
  return html`<h1 tabindex="-1">Repositories</h1>
    <${Pending} s=${s} what="the repositories" />
    ${
      s.state === 'ok' &&
      (s.value.repos.length === 0
        ? html`<p>No repository is served here, or the token may read none.</p>`
        : html`<ul class="repos">
            ${s.value.repos.map((r) => html`<li><a href=${href.graph(r.name)}>${r.name}</a></li>`)}
          </ul>`)
    }`;
}
