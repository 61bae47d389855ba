/**
 * The public face of `coral serve` (lib/index.ts re-exports it). The application itself (fastify,
 * prom-client) is loaded on first use, so importing coral stays fast for everything else.
 *
 * @example
 * const server = await startServer({ root: '/srv/coral', port: 8470 });
 * console.log(server.url);
 * await server.close();
 */
import type { CoralServer, ServerOptions } from './app';

export type { CoralServer, ServerOptions } from './app';
export type { RouteModule, ServerDeps, ServerLimits, Scope } from './types';
export type { ServeLocation } from './shared-file';
export { addToken, listTokens, revokeToken, setAnonymousRead, type TokenInfo } from './access';
export { readServeConfig, setServeConfig } from './settings';
export { errorReply, errorFromBody, type ErrorBody } from './http-errors';

/** Builds the `coral serve` application over a root directory or an S3 prefix (not yet listening). */
export async function buildServer(opts: ServerOptions = {}): Promise<CoralServer> {
  const app = await import('./app');
  return app.buildServer(opts);
}

/** Builds the application and starts listening (default 127.0.0.1 on a free port); `server.url` says where. */
export async function startServer(opts: ServerOptions & { host?: string; port?: number } = {}): Promise<CoralServer> {
  const app = await import('./app');
  return app.startServer(opts);
}
