/** `coral ingest <http(s)://host:port/name> <file> [--branch b] [--path p] [-m msg] [--step n] [--metric k=v]... [--json]`. */
import * as path from 'node:path';
import { CoralClient, invalidParameter } from '../../index';
import { UsageError, messageFlag, parsePairs, type Command } from '../command';
import { Progress, humanBytes, print, printJson } from '../output';
import { short } from '../render';

/** `http://host:port/prefix/name` → the server's base URL and the repository name (the last component). */
function splitUrl(url: string): { base: string; name: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidParameter('url', 'http(s)://<host:port>/<name>', url);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw invalidParameter('url', 'http(s)://<host:port>/<name>', url);
  const parts = u.pathname.split('/').filter(Boolean);
  const name = parts.pop();
  if (!name) throw invalidParameter('url', 'http(s)://<host:port>/<name> (a repository name at the end)', url);
  u.pathname = `/${parts.map((p) => `${p}/`).join('')}`;
  u.search = '';
  return { base: u.toString(), name: decodeURIComponent(name) };
}

export const ingestCommand: Command = {
  summary: 'Upload a checkpoint to a coral server, which stores and commits it',
  usage:
    'coral ingest <http(s)://host:port/name> <file> [--branch <b>] [--path <p>] [-m <msg>] [--step <n>] [--metric <k>=<v>]... [--json]',
  maxArgs: 2,
  options: {
    branch: { type: 'string', short: 'b' },
    path: { type: 'string' },
    message: { type: 'string', short: 'm', multiple: true },
    step: { type: 'string' },
    metric: { type: 'string', multiple: true },
    json: { type: 'boolean' },
  },
  async run(ctx) {
    const [url, file] = ctx.args;
    if (!url || !file) throw new UsageError('usage: coral ingest <http(s)://host:port/name> <file>');
    const { base, name } = splitUrl(url);
    let step: number | undefined;
    if (ctx.flags.step !== undefined) {
      step = Number(ctx.flags.step);
      if (!Number.isSafeInteger(step)) throw invalidParameter('--step', 'integer', ctx.flags.step);
    }
    const metrics = parsePairs(ctx.flags.metric as string[] | undefined, '--metric') as Record<
      string,
      number | string | boolean
    >;
    const abs = path.resolve(ctx.cwd, file);
    const progress = new Progress(ctx.io, 'Uploading');
    const client = new CoralClient({ url: base });
    const r = await client.ingest(name, abs, {
      path: (ctx.flags.path as string | undefined) ?? path.basename(abs),
      ...(ctx.flags.branch !== undefined ? { branch: ctx.flags.branch as string } : {}),
      ...(messageFlag(ctx.flags.message) !== undefined ? { message: messageFlag(ctx.flags.message) } : {}),
      ...(step !== undefined ? { step } : {}),
      ...(Object.keys(metrics).length ? { metrics } : {}),
      onProgress: (p) => progress.update(p.sent, p.total ?? p.sent),
    });
    progress.done();
    if (ctx.flags.json) return printJson(ctx, r);
    const o = r.objects;
    print(
      ctx,
      r.duplicate
        ? `[${r.branch} ${short(r.commit)}] ${r.path}: already committed by an earlier attempt of this upload`
        : `[${r.branch} ${short(r.commit)}] ${r.path}: ${o.new} new objects (${o.delta} delta), ${o.deduplicated} deduplicated; ` +
            `${humanBytes(r.bytes.received)} received, ${humanBytes(r.bytes.stored)} stored`,
    );
  },
};
