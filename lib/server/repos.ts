/**
 * The repositories a server serves: `<root>/<name>` (a bare repository, or an ordinary one whose
 * `.coral/` is served) or the bare repository at `s3://<bucket>/<prefix>/<name>`, opened through
 * `openRemote` (lib/remote/open.ts) and kept open while they are used. A name is one path segment of
 * `[A-Za-z0-9._-]` not starting with a dot (REPO_NAME_RE): no `..`, no nesting, and never the
 * server's own `.coral-serve/`.
 *
 * The names `ui` and `api` are reserved (RESERVED_REPO_NAMES): the web UI's pages and API live there.
 *
 * An open path repository holds a writer session, so `coral gc` there waits for it: a repository no
 * request has used for `idleMs` is closed again (and reopened on the next request).
 *
 * `coral ui` serves one repository under one name (`single`): every other name is unknown.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CoralError, InvalidArgumentError, RemoteNotFoundError } from '../errors';
import { CORAL_DIR } from '../layout';
import { BARE_MARKER } from '../remote/file';
import { REPO_NAME_RE } from '../remote/http-wire';
import { openRemote } from '../remote/open';
import type { RemoteRepo } from '../remote/transport';
import { checkLocation, type ServeLocation } from './shared-file';

interface Entry {
  repo: Promise<RemoteRepo>;
  lastUsed: number;
}

/** Names no served repository may take: the web UI's pages (`/ui/`) and API (`/api/`). */
export const RESERVED_REPO_NAMES: ReadonlySet<string> = new Set(['ui', 'api']);

export function checkRepoName(name: unknown): string {
  if (typeof name !== 'string' || !REPO_NAME_RE.test(name))
    throw new InvalidArgumentError(
      `${JSON.stringify(name)} is not a repository name (letters, digits, . _ -, not starting with a dot)`,
      { name },
    );
  if (RESERVED_REPO_NAMES.has(name))
    throw new InvalidArgumentError(`'${name}' is reserved (the web UI's /${name}/) and cannot name a repository`, {
      name,
      reserved: true,
    });
  return name;
}

/** Is `dir` a repository directory (bare, or an ordinary one with `.coral/`)? */
async function isRepoDir(dir: string): Promise<boolean> {
  const exists = (p: string) =>
    fsp.stat(p).then(
      () => true,
      () => false,
    );
  return (
    ((await exists(path.join(dir, BARE_MARKER))) && (await exists(path.join(dir, 'HEAD')))) ||
    exists(path.join(dir, CORAL_DIR, 'HEAD'))
  );
}

export class RepoSet {
  private open = new Map<string, Entry>();
  /** Requests under way per repository name. */
  private users = new Map<string, number>();
  private readonly where: ReturnType<typeof checkLocation>;
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly loc: ServeLocation,
    private readonly idleMs = 60_000,
    /** Serve only this repository (a path), under this name. */
    private readonly single: { name: string; path: string } | null = null,
  ) {
    this.where = checkLocation(loc);
    if (idleMs > 0) {
      this.sweeper = setInterval(() => void this.sweep(), Math.max(1000, idleMs / 2));
      this.sweeper.unref();
    }
  }

  /** Where repository `name` lives (a path or an s3:// URL). */
  urlOf(name: string): string {
    checkRepoName(name);
    if (this.single) {
      if (name !== this.single.name) throw new RemoteNotFoundError(`no repository named '${name}' here`, { name });
      return this.single.path;
    }
    return 'root' in this.where ? path.join(this.where.root, name) : `${this.where.url.replace(/\/$/, '')}/${name}`;
  }

  /** The names of the repositories served (sorted; valid names only, reserved ones left out). */
  async list(): Promise<string[]> {
    if (this.single) return [this.single.name];
    const ok = (n: string) => REPO_NAME_RE.test(n) && !RESERVED_REPO_NAMES.has(n);
    if ('root' in this.where) {
      const root = this.where.root;
      const names = (await fsp.readdir(root, { withFileTypes: true }))
        .filter((d) => (d.isDirectory() || d.isSymbolicLink()) && ok(d.name))
        .map((d) => d.name);
      const out: string[] = [];
      for (const n of names) if (await isRepoDir(path.join(root, n))) out.push(n);
      return out.sort();
    }
    const { listS3Repos } = await import('./shared-s3');
    return (await listS3Repos(this.where.bucket, this.where.prefix, this.where.url, this.loc.endpoint))
      .filter(ok)
      .sort();
  }

  /** A description of what is served, for messages. */
  get description(): string {
    if (this.single) return this.single.path;
    return 'root' in this.where ? this.where.root : this.where.url;
  }

  /** Opens (or returns the open) repository `name`; `create` makes an empty bare one when missing. */
  get(name: string, create = false): Promise<RemoteRepo> {
    const url = this.urlOf(name);
    let e = this.open.get(name);
    if (!e) {
      // Clients learn the repository's name, never where the server keeps it.
      const repo = openRemote(url, { ...(this.loc.endpoint ? { endpoint: this.loc.endpoint } : {}), create }).catch(
        (e: unknown) => {
          if (e instanceof CoralError && e.code === RemoteNotFoundError.code)
            throw new RemoteNotFoundError(`no repository named '${name}' here`, { name });
          throw e;
        },
      );
      e = { repo, lastUsed: Date.now() };
      this.open.set(name, e);
      const entry = e;
      repo.catch(() => {
        if (this.open.get(name) === entry) this.open.delete(name);
      });
    }
    e.lastUsed = Date.now();
    return e.repo;
  }

  /** Marks `name` in use by a request (an in-use repository is never closed by the idle sweep). */
  acquire(name: string): void {
    this.users.set(name, (this.users.get(name) ?? 0) + 1);
  }

  release(name: string): void {
    const n = (this.users.get(name) ?? 1) - 1;
    if (n > 0) this.users.set(name, n);
    else this.users.delete(name);
    const e = this.open.get(name);
    if (e) e.lastUsed = Date.now();
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [name, e] of this.open) {
      if (this.users.has(name) || now - e.lastUsed < this.idleMs) continue;
      this.open.delete(name);
      await e.repo.then((r) => r.close()).catch(() => undefined);
    }
  }

  async closeAll(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((e) => e.repo.then((r) => r.close()).catch(() => undefined)));
  }
}
