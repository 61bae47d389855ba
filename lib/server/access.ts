/**
 * Who may do what on a `coral serve` server: bearer tokens with a `read` or `write` scope, optionally
 * limited to some repositories, and anonymous read switched on per repository. Everything lives in one
 * shared file, `.coral-serve/tokens.json` beside the repositories (shared-file.ts), so every server
 * process over one root or bucket sees the same tokens:
 * ```
 * { "version": 1,
 *   "tokens": [{ "name": "ci", "hash": "<sha256 hex of the token>", "scope": "write",
 *                "repos": ["llama"] | null, "created": "2026-12-02T23:00:00.000Z" }],
 *   "anonymousRead": ["public-model"] }
 * ```
 * A token is `coral_` + 43 base64url characters (32 random bytes); only its sha256 is stored, and
 * `addToken` returns the token itself once. A server re-checks the file's version on every request
 * (a directory: one stat) or at most every `tokenCacheMs` (a bucket: one HEAD), so a revocation takes
 * effect at once on a directory and within that interval on a bucket.
 *
 * @example
 * const { token } = await addToken({ root: '/srv/coral' }, 'ci', { scope: 'write', repos: ['llama'] });
 * await revokeToken({ root: '/srv/coral' }, 'ci');
 */
import * as crypto from 'node:crypto';
import {
  AlreadyExistsError,
  CorruptObjectError,
  PermissionDeniedError,
  RefNotFoundError,
  RemoteAuthError,
  invalidParameter,
} from '../errors';
import { REPO_NAME_RE } from '../remote/http-wire';
import { sharedFile, type ServeLocation, type SharedFile } from './shared-file';
import type { Scope } from './types';

export const TOKENS_FILE = 'tokens.json';

/** A token as `listTokens` shows it (no secret). */
export interface TokenInfo {
  name: string;
  scope: Scope;
  /** Repositories it may use; null for all. */
  repos: string[] | null;
  created: string;
}

interface TokenRecord extends TokenInfo {
  hash: string;
}

interface AccessDoc {
  version: 1;
  tokens: TokenRecord[];
  anonymousRead: string[];
}

const TOKEN_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

function emptyDoc(): AccessDoc {
  return { version: 1, tokens: [], anonymousRead: [] };
}

function parseDoc(text: string, where: string): AccessDoc {
  let v: Partial<AccessDoc>;
  try {
    v = JSON.parse(text) as Partial<AccessDoc>;
  } catch (e) {
    throw new CorruptObjectError(`${where} is not valid JSON: ${(e as Error).message}`, { path: where });
  }
  if (!v || typeof v !== 'object' || !Array.isArray(v.tokens))
    throw new CorruptObjectError(`${where} is not a coral serve token file`, { path: where });
  return {
    version: 1,
    tokens: v.tokens.filter(
      (t) =>
        t && typeof t.hash === 'string' && typeof t.name === 'string' && (t.scope === 'read' || t.scope === 'write'),
    ),
    anonymousRead: Array.isArray(v.anonymousRead) ? v.anonymousRead.filter((x) => typeof x === 'string') : [],
  };
}

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Read-modify-write of the token file by compare-and-swap (retried when another writer got there first). */
async function edit<T>(loc: ServeLocation, fn: (doc: AccessDoc) => T): Promise<T> {
  const f = await sharedFile(loc, TOKENS_FILE);
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await f.read();
      const doc = cur ? parseDoc(cur.text, f.where) : emptyDoc();
      const out = fn(doc);
      if (await f.write(JSON.stringify(doc, null, 2) + '\n', cur?.version ?? null)) return out;
    }
    throw new AlreadyExistsError(`${f.where} kept changing; try again`);
  } finally {
    f.close();
  }
}

async function readDoc(loc: ServeLocation): Promise<AccessDoc> {
  const f = await sharedFile(loc, TOKENS_FILE);
  try {
    const cur = await f.read();
    return cur ? parseDoc(cur.text, f.where) : emptyDoc();
  } finally {
    f.close();
  }
}

function checkRepos(repos: unknown): string[] | null {
  if (repos === undefined || repos === null) return null;
  if (!Array.isArray(repos) || repos.length === 0 || !repos.every((r) => typeof r === 'string' && REPO_NAME_RE.test(r)))
    throw invalidParameter('repos', 'non-empty array of repository names', repos);
  return [...new Set(repos as string[])].sort();
}

/**
 * Creates token `name` with `scope` (limited to `repos` when given) and returns it: the only time the
 * token is shown. AlreadyExistsError when a token of that name exists.
 */
export async function addToken(
  loc: ServeLocation,
  name: string,
  opts: { scope: Scope; repos?: string[] | null },
): Promise<{ token: string; info: TokenInfo }> {
  if (typeof name !== 'string' || !TOKEN_NAME_RE.test(name))
    throw invalidParameter('name', 'token name of letters, digits, . _ -', name);
  if (opts?.scope !== 'read' && opts?.scope !== 'write')
    throw invalidParameter('scope', '"read" or "write"', opts?.scope);
  const repos = checkRepos(opts.repos);
  const token = `coral_${crypto.randomBytes(32).toString('base64url')}`;
  const info: TokenInfo = { name, scope: opts.scope, repos, created: new Date().toISOString() };
  await edit(loc, (doc) => {
    if (doc.tokens.some((t) => t.name === name))
      throw new AlreadyExistsError(`a token named '${name}' exists; revoke it first`, { name });
    doc.tokens.push({ ...info, hash: hashToken(token) });
  });
  return { token, info };
}

/** Every token, without secrets, by name. */
export async function listTokens(loc: ServeLocation): Promise<{ tokens: TokenInfo[]; anonymousRead: string[] }> {
  const doc = await readDoc(loc);
  return {
    tokens: doc.tokens
      .map(({ name, scope, repos, created }) => ({ name, scope, repos, created }))
      .sort((a, b) => (a.name < b.name ? -1 : 1)),
    anonymousRead: [...doc.anonymousRead].sort(),
  };
}

/** Revokes token `name`; RefNotFoundError when there is none. */
export async function revokeToken(loc: ServeLocation, name: string): Promise<void> {
  await edit(loc, (doc) => {
    const before = doc.tokens.length;
    doc.tokens = doc.tokens.filter((t) => t.name !== name);
    if (doc.tokens.length === before) throw new RefNotFoundError(`no token named '${name}'`, { name });
  });
}

/** Switches anonymous read of repository `repo` on or off. */
export async function setAnonymousRead(loc: ServeLocation, repo: string, on: boolean): Promise<void> {
  if (typeof repo !== 'string' || !REPO_NAME_RE.test(repo)) throw invalidParameter('repo', 'repository name', repo);
  await edit(loc, (doc) => {
    const set = new Set(doc.anonymousRead);
    if (on) set.add(repo);
    else set.delete(repo);
    doc.anonymousRead = [...set].sort();
  });
}

/** The server's view of the token file: re-read when its version changes. */
export class AccessControl {
  private doc: AccessDoc = emptyDoc();
  private byHash = new Map<string, TokenRecord>();
  private version: string | null | undefined = undefined;
  private checkedAt = 0;
  private loading: Promise<void> | null = null;

  private constructor(
    private readonly file: SharedFile,
    /** How long a read version is trusted without looking again (0: every request). */
    private readonly cacheMs: number,
  ) {}

  static async open(loc: ServeLocation, cacheMs: number): Promise<AccessControl> {
    const a = new AccessControl(await sharedFile(loc, TOKENS_FILE), cacheMs);
    await a.refresh(true);
    return a;
  }

  private refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.checkedAt < this.cacheMs) return Promise.resolve();
    this.loading ??= (async () => {
      try {
        const v = await this.file.version();
        this.checkedAt = Date.now();
        if (v === this.version) return;
        const cur = await this.file.read();
        this.doc = cur ? parseDoc(cur.text, this.file.where) : emptyDoc();
        this.version = cur?.version ?? null;
        this.byHash = new Map(this.doc.tokens.map((t) => [t.hash, t]));
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /**
   * Resolves when `token` (null: none given) may do `scope` on repository `repo`: RemoteAuthError (401)
   * for a missing or unknown token, PermissionDeniedError (403) for a token without that right.
   */
  async check(token: string | null, repo: string, scope: Scope): Promise<void> {
    await this.refresh();
    if (token === null) {
      if (scope === 'read' && this.doc.anonymousRead.includes(repo)) return;
      throw new RemoteAuthError(`authentication required for ${scope} access to ${repo}: send a bearer token`, {
        repo,
      });
    }
    const rec = this.byHash.get(hashToken(token));
    if (!rec) throw new RemoteAuthError('the token is not valid (unknown or revoked)', { repo });
    if (rec.repos && !rec.repos.includes(repo))
      throw new PermissionDeniedError(`token '${rec.name}' may not use repository ${repo}`, { repo, token: rec.name });
    if (scope === 'write' && rec.scope !== 'write')
      throw new PermissionDeniedError(`token '${rec.name}' is read-only: writing to ${repo} needs a write token`, {
        repo,
        token: rec.name,
      });
  }

  close(): void {
    this.file.close();
  }
}
