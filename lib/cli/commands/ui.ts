/**
 * `coral ui [--port <n>] [--host <loopback address>]`: serves the repository you stand in (a working
 * repository, found upward like every command, or a bare one) to a browser: the pages under `/ui/` and
 * their JSON API under `/api/` (docs/ui.md). Read-only and without tokens, so it listens on loopback only:
 * a --host that is not a loopback address is refused (use `coral serve --ui` behind tokens to share).
 *
 * Prints `coral ui: http://127.0.0.1:<port>/ui/` once it accepts connections and stops on SIGINT or
 * SIGTERM (exit 0).
 */
import * as net from 'node:net';
import { findWorktree, isBareRepository, startServer } from '../../index';
import { untilStopSignal, UsageError, type Command, type Ctx } from '../command';
import { print } from '../output';

/** Is `host` a loopback address or `localhost`? */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

function parsePort(v: unknown): number {
  if (v === undefined) return 0;
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) throw new UsageError(`--port takes 0..65535, not '${s}'`);
  return Number(s);
}

async function ui(ctx: Ctx): Promise<number> {
  const port = parsePort(ctx.flags.port);
  const host = (ctx.flags.host as string | undefined) ?? '127.0.0.1';
  if (!isLoopback(host))
    throw new UsageError(
      `coral ui listens on loopback only (it needs no token), not on '${host}'; ` +
        'to share a repository, use `coral serve --ui` with tokens',
    );
  const repository = isBareRepository(ctx.cwd) ? ctx.cwd : findWorktree(ctx.cwd);
  const server = await startServer({ repository, ui: true, host, port });
  print(ctx, `coral ui: ${server.url}/ui/`);
  await untilStopSignal();
  await server.close();
  return 0;
}

export const uiCommand: Command = {
  summary: 'Browse the repository in a web browser (history, tensors, diffs, storage) on loopback',
  usage: 'coral ui [--port <n>] [--host <loopback address>]',
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
  },
  maxArgs: 0,
  run: ui,
};
