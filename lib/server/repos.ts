/**
 * The repositories a server serves: `<root>/<name>` (a bare repository, or an ordinary one whose
 * `.coral/` is served) or the bare repository at `s3://<bucket>/<prefix>/<name>`, opened through
 * `openRemote` (lib/remote/open.ts) and kept open while they are used. A name is one path segment of
 * `[A-Za-z0-9._-]` not starting with a dot (REPO_NAME_RE): no `..`, no nesting, and never the
 * server's own `.coral-serve/`.
 *
 * An open path repository holds a writer session, so `coral gc` there waits for it: a repository no
 * request has used for `idleMs` is closed again (and reopened on the next request).
 */
import * as path from 'node:path';
import { CoralError, InvalidArgumentError, RemoteNotFoundError } from '../errors';
import { REPO_NAME_RE } from '../remote/http-wire';
import { openRemote } from '../remote/open';
import type { RemoteRepo } from '../remote/transport';
import { checkLocation, type ServeLocation } from './shared-file';

interface Entry {
  repo: Promise<RemoteRepo>;
  lastUsed: number;
}

export function checkRepoName(name: unknown): string {
  if (typeof name !== 'string' || !REPO_NAME_RE.test(name))
    throw new InvalidArgumentError(
      `${JSON.stringify(name)} is not a repository name (letters, digits, . _ -, not starting with a dot)`,
      { name },
    );
  return name;
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
    return 'root' in this.where ? path.join(this.where.root, name) : `${this.where.url.replace(/\/$/, '')}/${name}`;
  }

  /** A description of what is served, for messages. */
  get description(): string {
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
