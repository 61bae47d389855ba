// Hash routes of docs/ui.md: #/, #/r/<repo>, #/r/<repo>/commit/<rev>, #/r/<repo>/diff/<a>/<b>,
// #/r/<repo>/storage, #/r/<repo>/experiments. Each path segment is URL-encoded (revisions may hold '/').

export type Route =
  | { page: 'repos' }
  | { page: 'graph'; repo: string }
  | { page: 'commit'; repo: string; rev: string }
  | { page: 'diff'; repo: string; a: string | null; b: string | null }
  | { page: 'storage'; repo: string }
  | { page: 'experiments'; repo: string }
  | { page: 'notfound'; hash: string };

function dec(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, '');
  const parts = h.split('/').filter((p) => p !== '');
  if (parts.length === 0) return { page: 'repos' };
  if (parts[0] !== 'r' || parts.length < 2) return { page: 'notfound', hash };
  const repo = dec(parts[1]);
  const rest = parts.slice(2);
  if (rest.length === 0) return { page: 'graph', repo };
  switch (rest[0]) {
    case 'commit':
      if (rest.length === 2) return { page: 'commit', repo, rev: dec(rest[1]) };
      break;
    case 'diff':
      if (rest.length <= 3)
        return { page: 'diff', repo, a: rest[1] ? dec(rest[1]) : null, b: rest[2] ? dec(rest[2]) : null };
      break;
    case 'storage':
      if (rest.length === 1) return { page: 'storage', repo };
      break;
    case 'experiments':
      if (rest.length === 1) return { page: 'experiments', repo };
      break;
  }
  return { page: 'notfound', hash };
}

const enc = encodeURIComponent;

export const href = {
  repos: () => '#/',
  graph: (repo: string) => `#/r/${enc(repo)}`,
  commit: (repo: string, rev: string) => `#/r/${enc(repo)}/commit/${enc(rev)}`,
  diff: (repo: string, a?: string, b?: string) =>
    `#/r/${enc(repo)}/diff` + (a !== undefined ? `/${enc(a)}` : '') + (b !== undefined ? `/${enc(b)}` : ''),
  storage: (repo: string) => `#/r/${enc(repo)}/storage`,
  experiments: (repo: string) => `#/r/${enc(repo)}/experiments`,
};
