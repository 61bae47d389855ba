/**
 * The contract between the `coral serve` application (lib/server/app.ts) and its route modules
 * (the HTTP remote's routes, direct ingestion, later the web UI). The app owns the listener, auth,
 * limits, metrics and the set of repositories it serves; a route module only registers routes and
 * reaches a repository, a scope check and the metrics registry through `ServerDeps`.
 *
 * Repositories are served as bare repositories (`RemoteRepo`, lib/remote/transport.ts): a directory
 * `<root>/<name>` or a bucket prefix `s3://<bucket>/<prefix>/<name>`. Refs move by compare-and-swap
 * there, so several server processes over one bucket never lose an update.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { RemoteRepo } from '../remote/transport';

/** What a request may do to a repository. */
export type Scope = 'read' | 'write';

/** Request and upload limits (config `serve.*`); exceeded ones are answered 413 or 400. */
export interface ServerLimits {
  /** Largest request body (an upload), bytes. */
  maxUploadBytes: number;
  /** Largest header block of a checkpoint format (safetensors JSON header, npy header), bytes. */
  maxHeaderBytes: number;
  /** Most tensors in one uploaded file. */
  maxTensors: number;
  /** Largest single tensor, bytes. */
  maxTensorBytes: number;
}

export interface ServerDeps {
  /**
   * The served repository `name` (validated: RemoteNotFoundError, an InvalidArgumentError for a name
   * that is not a plain repository name). The app caches open repositories; callers must not close them.
   * `create`: make an empty bare repository when there is none (the caller has checked write scope).
   */
  openRepo(name: string, opts?: { create?: boolean }): Promise<RemoteRepo>;
  /**
   * The names of the repositories served, whatever a request may read (check `authorize` per name).
   * Optional: route modules tested on their own may leave it out (then no repository is listed).
   */
  listRepos?(): Promise<string[]>;
  /** Resolves when the request may do `scope` on repository `name`; else RemoteAuthError (401 / 403). */
  authorize(req: FastifyRequest, name: string, scope: Scope): Promise<void>;
  readonly limits: ServerLimits;
  /** prom-client registry the app exposes at `GET /metrics`; modules register their own metrics on it. */
  readonly metrics: Registry;
  /** A directory for spooled uploads (removed on shutdown; each upload removes its own files). */
  readonly tmpDir: string;
  /** Aborted on graceful shutdown: long requests should stop cleanly, storing nothing half-done. */
  readonly shutdown: AbortSignal;
}

/** A route module: registers its routes on the app. */
export type RouteModule = (app: FastifyInstance, deps: ServerDeps) => void | Promise<void>;
