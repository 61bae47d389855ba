/**
 * The web UI's routes (docs/ui.md): the read-only JSON API under `/api` over the data layer (view.ts) and
 * the built pages under `/ui/` (`ui/dist/`, Vite base `/ui/`). Registered by `coral serve --ui` (every
 * repository the server hosts, behind its bearer-token auth: read scope) and by `coral ui` (the one
 * repository it stands in, on loopback, no token). Every API route checks read access to its repository
 * through `deps.authorize` before touching it.
 *
 * When the pages are not built (`npm run build:ui` not run), `/ui/` answers 503 with a text saying so and
 * the API keeps working.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CoralError, RemoteAuthError, invalidParameter } from '../../errors';
import { PACKAGE_ROOT } from '../../native';
import type { RouteModule, ServerDeps } from '../types';
import { DEFAULT_PAGE, RepoView, UiCache } from './view';

/** Where the built pages are: CORAL_UI_DIST, else `<package>/ui/dist`. */
export function defaultUiDist(): string {
  const env = process.env.CORAL_UI_DIST;
  return env ? path.resolve(env) : path.join(PACKAGE_ROOT, 'ui', 'dist');
}

export interface UiRouteOptions {
  /** The built pages (index.html + assets/); default `defaultUiDist()`. */
  dist?: string;
}

type Named = FastifyRequest<{ Params: { name: string }; Querystring: Record<string, string | string[] | undefined> }>;

/** One query parameter as a string (undefined when absent); repeated parameters are refused. */
function param(req: Named, key: string, required: true): string;
function param(req: Named, key: string, required?: false): string | undefined;
function param(req: Named, key: string, required = false): string | undefined {
  const v = req.query[key];
  if (Array.isArray(v)) throw invalidParameter(key, 'one value', v);
  if (v === undefined || v === '') {
    if (required) throw invalidParameter(key, 'a value', v);
    return undefined;
  }
  return v;
}

function intParam(req: Named, key: string, dflt: number): number {
  const v = param(req, key);
  if (v === undefined) return dflt;
  if (!/^\d{1,9}$/.test(v)) throw invalidParameter(key, 'positive integer', v);
  return Number(v);
}

/** The routes of the web UI as a RouteModule. */
export function uiRoutes(opts: UiRouteOptions = {}): RouteModule {
  const dist = opts.dist ?? defaultUiDist();
  return async (app: FastifyInstance, deps: ServerDeps) => {
    const caches = new Map<string, UiCache>();
    const cacheOf = (name: string) => {
      let c = caches.get(name);
      if (c) caches.delete(name);
      else c = new UiCache();
      caches.set(name, c);
      while (caches.size > 16) caches.delete(caches.keys().next().value!);
      return c;
    };
    const view = async (req: Named): Promise<RepoView> => {
      const { name } = req.params;
      await deps.authorize(req, name, 'read');
      return new RepoView(await deps.openRepo(name), cacheOf(name));
    };

    app.get('/api/repos', async (req) => {
      const out: Array<{ name: string }> = [];
      let refusal: CoralError | null = null;
      for (const name of (await deps.listRepos?.()) ?? []) {
        try {
          await deps.authorize(req, name, 'read');
          out.push({ name });
        } catch (e) {
          if (!(e instanceof CoralError)) throw e;
          if (e instanceof RemoteAuthError) refusal ??= e;
        }
      }
      // Nothing readable without (a valid) token: say so, so the page asks for one.
      if (!out.length && refusal) throw refusal;
      return { repos: out };
    });
    app.get('/api/r/:name/refs', async (req: Named) => (await view(req)).refs());
    app.get('/api/r/:name/commits', async (req: Named) => {
      const v = await view(req);
      return v.commits({
        limit: intParam(req, 'limit', DEFAULT_PAGE),
        cursor: param(req, 'cursor'),
        rev: param(req, 'rev'),
      });
    });
    app.get('/api/r/:name/commit/:rev', async (req: FastifyRequest<{ Params: { name: string; rev: string } }>) => {
      const v = await view(req as unknown as Named);
      return v.commit(req.params.rev);
    });
    app.get('/api/r/:name/diff', async (req: Named) => {
      const v = await view(req);
      return v.diff(param(req, 'a', true), param(req, 'b', true));
    });
    app.get('/api/r/:name/diff/tensor', async (req: Named) => {
      const v = await view(req);
      return v.histogram(
        param(req, 'a', true),
        param(req, 'b', true),
        param(req, 'path', true),
        param(req, 'name', true),
        intParam(req, 'bins', 64),
      );
    });
    app.get('/api/r/:name/storage', async (req: Named) => (await view(req)).storage());
    app.get('/api/r/:name/experiments', async (req: Named) => (await view(req)).experiments());

    app.get('/', async (_req, reply: FastifyReply) => reply.redirect('/ui/'));
    app.get('/ui', async (_req, reply: FastifyReply) => reply.redirect('/ui/'));
    if (fs.existsSync(path.join(dist, 'index.html'))) {
      const statics = (await import('@fastify/static')).default;
      await app.register(statics, { root: dist, prefix: '/ui/', index: ['index.html'], wildcard: true });
    } else {
      const missing = async (_req: FastifyRequest, reply: FastifyReply) =>
        reply
          .status(503)
          .type('text/plain; charset=utf-8')
          .send(
            `The coral web UI is not built: ${dist} has no index.html.\n` +
              'Build it with `npm run build:ui` in the coral-native package (or point CORAL_UI_DIST at a build).\n' +
              'The JSON API under /api works without it.\n',
          );
      app.get('/ui/', missing);
      app.get('/ui/*', missing);
    }
  };
}
