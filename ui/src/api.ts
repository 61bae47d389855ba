// The JSON API of docs/ui.md (UI-API contract): typed fetchers, the bearer token kept in sessionStorage, and the
// 401 → token form hand-off. Every page goes through `get`, so a served repository behind auth asks once.

// The response bodies are declared once, beside the server code that builds them; the pages keep their names.
export type {
  UiCommit as CommitInfo,
  UiCommitDetail as CommitDetail,
  UiCommitPage as CommitPage,
  UiDiff as DiffResult,
  UiDiffTensor as TensorChange,
  UiFile as FileInfo,
  UiHistogram as TensorHistogram,
  UiRefs as Refs,
  UiRun as ExperimentRun,
  UiStatus as ChangeStatus,
  UiStorage as Storage,
  UiTensor as TensorInfo,
} from '../../lib/server/ui/contract';
import type {
  UiCommitDetail,
  UiCommitPage,
  UiDiff,
  UiHistogram,
  UiRefs,
  UiRun,
  UiStorage,
} from '../../lib/server/ui/contract';

const TOKEN_KEY = 'coral-ui-token';

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** The server answered 401: the app shows the token form (and says whether a stored token was refused). */
export class AuthRequiredError extends Error {
  constructor(readonly hadToken: boolean) {
    super(hadToken ? 'the access token was refused' : 'an access token is required');
  }
}

/** Any other non-2xx answer, with the server's `{ error: { code, message } }` when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Listener = (e: AuthRequiredError) => void;
const authListeners = new Set<Listener>();

/** Registers the app's 401 handler; returns the unsubscribe function. */
export function onAuthRequired(fn: Listener): () => void {
  authListeners.add(fn);
  return () => authListeners.delete(fn);
}

export async function get<T>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, String(v));
  const qs = q.toString();
  const token = getToken();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`/api${path}${qs ? `?${qs}` : ''}`, { headers });
  if (res.status === 401) {
    const e = new AuthRequiredError(token !== null);
    for (const l of authListeners) l(e);
    throw e;
  }
  if (!res.ok) {
    let code = `HTTP_${res.status}`;
    let message = res.statusText || `HTTP ${res.status}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      if (body.error?.code) code = body.error.code;
      if (body.error?.message) message = body.error.message;
    } catch {}
    throw new ApiError(res.status, code, message);
  }
  return (await res.json()) as T;
}

const enc = encodeURIComponent;

export const api = {
  repos: () => get<{ repos: Array<{ name: string }> }>('/repos'),
  refs: (repo: string) => get<UiRefs>(`/r/${enc(repo)}/refs`),
  commits: (repo: string, opts: { limit?: number; cursor?: string; rev?: string } = {}) =>
    get<UiCommitPage>(`/r/${enc(repo)}/commits`, opts),
  commit: (repo: string, rev: string) => get<UiCommitDetail>(`/r/${enc(repo)}/commit/${enc(rev)}`),
  diff: (repo: string, a: string, b: string) => get<UiDiff>(`/r/${enc(repo)}/diff`, { a, b }),
  tensorDiff: (repo: string, a: string, b: string, path: string, name: string, bins = 64) =>
    get<UiHistogram>(`/r/${enc(repo)}/diff/tensor`, { a, b, path, name, bins }),
  storage: (repo: string) => get<UiStorage>(`/r/${enc(repo)}/storage`),
  experiments: (repo: string) => get<{ runs: UiRun[] }>(`/r/${enc(repo)}/experiments`),
};
