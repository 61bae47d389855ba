/**
 * `coral serve [<root>] [--listen <host:port>] [--store s3://<bucket>/<prefix>] [--endpoint <url>] [--log <level>] [--ui]`
 * and its administration subcommands:
 * `coral serve token add <name> --scope read|write [--repo <name>]…`, `token list`, `token revoke <name>`,
 * `coral serve anonymous-read <repo> on|off`, `coral serve config [<key> [<value>]] [--unset]`.
 * Every subcommand takes the same `<root>` / `--root` / `--store` as the server.
 *
 * `--ui` adds the web UI (docs/ui.md): its JSON API under `/api/` and the pages under `/ui/`, behind the
 * same tokens (read scope).
 *
 * The server prints `listening on <url>` on stdout once it accepts connections, and stops gracefully
 * on SIGTERM or SIGINT (exit 0).
 */
import {
  addToken,
  listTokens,
  readServeConfig,
  revokeToken,
  setAnonymousRead,
  setServeConfig,
  startServer,
  type ServeLocation,
} from '../../index';
import { JSON_OPT, untilStopSignal, UsageError, type Command, type Ctx } from '../command';
import { print, printJson } from '../output';
import * as path from 'node:path';

const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug'] as const;

function location(ctx: Ctx, positional: string | undefined): ServeLocation {
  const store = ctx.flags.store as string | undefined;
  const root = (ctx.flags.root as string | undefined) ?? positional;
  if (store !== undefined && root !== undefined) throw new UsageError('give a root directory or --store, not both');
  return {
    ...(store !== undefined ? { store } : { root: path.resolve(ctx.cwd, root ?? '.') }),
    ...(ctx.flags.endpoint ? { endpoint: ctx.flags.endpoint as string } : {}),
  };
}

function parseListen(v: string | undefined): { host: string; port: number } {
  if (v === undefined) return { host: '127.0.0.1', port: 8470 };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(v) ?? /^()()(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen takes <host>:<port> or <port>, not '${v}'`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

async function tokenSub(ctx: Ctx, args: string[]): Promise<void> {
  const [op, ...rest] = args;
  if (op === 'add') {
    const [name, root] = rest;
    const scope = ctx.flags.scope as string | undefined;
    if (!name || rest.length > 2 || (scope !== 'read' && scope !== 'write'))
      throw new UsageError('usage: coral serve token add <name> --scope read|write [--repo <name>]… [<root>]');
    const repos = ctx.flags.repo as string[] | undefined;
    const { token, info } = await addToken(location(ctx, root), name, { scope, repos: repos?.length ? repos : null });
    if (ctx.flags.json) return printJson(ctx, { ...info, token });
    print(ctx, token);
    ctx.io.err(
      `token '${name}' (${scope}${info.repos ? `, ${info.repos.join(', ')}` : ''}): shown once, store it now\n`,
    );
    return;
  }
  if (op === 'list') {
    if (rest.length > 1) throw new UsageError('usage: coral serve token list [<root>]');
    const r = await listTokens(location(ctx, rest[0]));
    if (ctx.flags.json) return printJson(ctx, r);
    for (const t of r.tokens) print(ctx, `${t.name}\t${t.scope}\t${t.repos ? t.repos.join(',') : '*'}\t${t.created}`);
    for (const a of r.anonymousRead) print(ctx, `(anonymous)\tread\t${a}`);
    return;
  }
  if (op === 'revoke') {
    const [name, root] = rest;
    if (!name || rest.length > 2) throw new UsageError('usage: coral serve token revoke <name> [<root>]');
    await revokeToken(location(ctx, root), name);
    return;
  }
  throw new UsageError(`unknown subcommand 'token ${op ?? ''}'; use token add|list|revoke`);
}

async function configSub(ctx: Ctx, args: string[]): Promise<void> {
  const [key, value, root] = args;
  if (key === undefined) {
    const all = await readServeConfig(location(ctx, undefined));
    if (ctx.flags.json) return printJson(ctx, all);
    for (const [k, v] of Object.entries(all)) print(ctx, `${k}=${JSON.stringify(v)}`);
    return;
  }
  if (ctx.flags.unset) {
    if (args.length > 2) throw new UsageError('usage: coral serve config --unset <key> [<root>]');
    await setServeConfig(location(ctx, value), key, null);
    return;
  }
  if (value === undefined) {
    const v = (await readServeConfig(location(ctx, root)))[key];
    if (v !== undefined) print(ctx, typeof v === 'string' ? v : JSON.stringify(v));
    return;
  }
  await setServeConfig(location(ctx, root), key, value);
}

async function serve(ctx: Ctx, root: string | undefined): Promise<number> {
  const listen = parseListen(ctx.flags.listen as string | undefined);
  const log = (ctx.flags.log as string | undefined) ?? 'silent';
  if (!(LOG_LEVELS as readonly string[]).includes(log))
    throw new UsageError(`--log takes one of ${LOG_LEVELS.join(', ')}, not '${log}'`);
  const server = await startServer({
    ...location(ctx, root),
    ...listen,
    logLevel: log as (typeof LOG_LEVELS)[number],
    ...(ctx.flags.ui ? { ui: true } : {}),
  });
  print(ctx, `listening on ${server.url}`);
  if (ctx.flags.ui) ctx.io.err(`coral serve: web UI at ${server.url}/ui/\n`);
  const access = await listTokens(location(ctx, root));
  if (access.tokens.length === 0 && access.anonymousRead.length === 0)
    ctx.io.err('coral serve: no tokens yet, so every request is refused; add one with `coral serve token add`\n');
  await untilStopSignal();
  ctx.io.err('coral serve: shutting down\n');
  await server.close();
  return 0;
}

export const serveCommand: Command = {
  summary: 'Serve repositories over HTTP (remote, ingestion); manage its tokens and settings',
  usage:
    'coral serve [<root>] [--listen <host:port>] [--store s3://<bucket>/<prefix>] [--endpoint <url>] [--log <level>] [--ui]\n' +
    '       coral serve token add <name> --scope read|write [--repo <name>]… | token list | token revoke <name>\n' +
    '       coral serve anonymous-read <repo> on|off\n' +
    '       coral serve config [<key> [<value>]] [--unset]\n' +
    '  (every form takes <root> or --root <dir>, or --store s3://… [--endpoint <url>])',
  options: {
    listen: { type: 'string' },
    store: { type: 'string' },
    root: { type: 'string' },
    endpoint: { type: 'string' },
    log: { type: 'string' },
    scope: { type: 'string' },
    repo: { type: 'string', multiple: true },
    unset: { type: 'boolean' },
    ui: { type: 'boolean' },
    ...JSON_OPT,
  },
  async run(ctx) {
    const [first, ...rest] = ctx.args;
    if (first === 'token') return tokenSub(ctx, rest);
    if (first === 'config') return configSub(ctx, rest);
    if (first === 'anonymous-read') {
      const [repo, onoff, root] = rest;
      if (!repo || (onoff !== 'on' && onoff !== 'off') || rest.length > 3)
        throw new UsageError('usage: coral serve anonymous-read <repo> on|off [<root>]');
      await setAnonymousRead(location(ctx, root), repo, onoff === 'on');
      return;
    }
    if (ctx.args.length > 1) throw new UsageError(`usage: ${serveCommand.usage}`);
    return serve(ctx, first);
  },
};
