// The JSON API of docs/ui.md (UI-API contract): typed fetchers, the bearer token kept in sessionStorage, and the
// 401 → token form hand-off. Every page goes through `get`, so a served repository behind auth asks once.

export interface CommitInfo {
  id: string;
  parents: string[];
  message: string;
  author: string;
  time: string;
  refs: string[];
  metrics: Record<string, number> | null;
}

export interface Refs {
  head: string | null;
  headId: string | null;
  branches: Array<{ name: string; id: string }>;
  tags: Array<{ name: string; id: string }>;
}

export interface CommitPage {
  commits: CommitInfo[];
  next: string | null;
}

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  id: string;
  /** null when the object is not in this repository (a partial clone). */
  codec: string | null;
  base: string | null;
  chainDepth: number;
  cast: boolean;
  logicalSize: number;
  /** null when the object is not in this repository. */
  storedSize: number | null;
}

export interface FileInfo {
  path: string;
  format: string;
  size: number;
  sha256: string;
  lossy: boolean;
  tensors: TensorInfo[];
}

export interface CommitDetail {
  commit: CommitInfo;
  files: FileInfo[];
}

export type ChangeStatus = 'added' | 'removed' | 'modified' | 'unchanged';

export interface TensorChange {
  name: string;
  status: ChangeStatus;
  dtype: string;
  shape: number[];
  layer: string | null;
  kind: string;
  relL2: number | null;
  fracChanged: number | null;
  maxAbs: number | null;
  nonFinite: number;
  /** Set when dtype or shape changed (no element-wise metrics then). */
  oldDtype?: string;
  oldShape?: number[];
}

export interface DiffResult {
  a: string;
  b: string;
  files: Array<{ path: string; status: ChangeStatus; tensors: TensorChange[] }>;
}

export interface TensorHistogram {
  name: string;
  dtype: string;
  shape: number[];
  bins: { edges: number[]; counts: number[] };
  changed: number;
  total: number;
  nonFinite: number;
  relL2: number | null;
  maxAbs: number | null;
}

export interface Storage {
  logical: number;
  stored: number;
  objects: number;
  byCodec: Array<{ codec: string; objects: number; logical: number; stored: number }>;
  byFile: Array<{ path: string; logical: number; stored: number }>;
  byCommit: Array<{ id: string; message: string; newStored: number }>;
  chainDepths: Array<{ depth: number; objects: number }>;
}

export interface ExperimentRun {
  name: string;
  status?: string;
  id?: string;
  params: Record<string, unknown>;
  metrics: Record<string, Array<[number, number]>>;
}

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
  refs: (repo: string) => get<Refs>(`/r/${enc(repo)}/refs`),
  commits: (repo: string, opts: { limit?: number; cursor?: string; rev?: string } = {}) =>
    get<CommitPage>(`/r/${enc(repo)}/commits`, opts),
  commit: (repo: string, rev: string) => get<CommitDetail>(`/r/${enc(repo)}/commit/${enc(rev)}`),
  diff: (repo: string, a: string, b: string) => get<DiffResult>(`/r/${enc(repo)}/diff`, { a, b }),
  tensorDiff: (repo: string, a: string, b: string, path: string, name: string, bins = 64) =>
    get<TensorHistogram>(`/r/${enc(repo)}/diff/tensor`, { a, b, path, name, bins }),
  storage: (repo: string) => get<Storage>(`/r/${enc(repo)}/storage`),
  experiments: (repo: string) => get<{ runs: ExperimentRun[] }>(`/r/${enc(repo)}/experiments`),
};
