/** What push, fetch, pull, clone and sync print about refs and transferred bytes. */
import type { RefUpdate } from '../index';
import type { Ctx } from './command';
import { humanBytes, print } from './output';
import { short } from './render';

/** `   abc1234..def5678  main -> main`, git's ref lines. */
export function printRefUpdates(ctx: Ctx, url: string, updates: readonly RefUpdate[], to: 'To' | 'From'): void {
  const shown = updates.filter((u) => u.status !== 'up-to-date');
  if (!shown.length) return;
  ctx.io.err(`${to} ${url}\n`);
  const name = (r: string) => r.replace(/^refs\/(heads|tags|remotes)\//, '');
  for (const u of updates) {
    const arrow = `${name(u.source)} -> ${name(u.ref)}`;
    switch (u.status) {
      case 'new':
        ctx.io.err(` * [new ${u.ref.startsWith('refs/tags/') ? 'tag' : 'branch'}]      ${arrow}\n`);
        break;
      case 'updated':
        ctx.io.err(`   ${short(u.old)}..${short(u.new)}  ${arrow}\n`);
        break;
      case 'forced':
        ctx.io.err(` + ${short(u.old)}...${short(u.new)} ${arrow} (forced update)\n`);
        break;
      case 'deleted':
        ctx.io.err(` - [deleted]         ${u.source ? '(none) -> ' : ''}${name(u.ref)}\n`);
        break;
      case 'rejected':
        ctx.io.err(` ! [rejected]        ${arrow} (${u.reason ?? 'rejected'})\n`);
        break;
      default:
        break;
    }
  }
}

/**
 * One line: objects and bytes moved, and, when files changed, the bytes moved against the size of those
 * files (what copying them whole would have moved).
 */
export function printTransfer(
  ctx: Ctx,
  verb: string,
  t: {
    objects: number;
    objectBytes: number;
    metas: number;
    metaBytes: number;
    filtered?: number;
    files?: number;
    fileBytes?: number;
  },
): void {
  const moved = t.objectBytes + t.metaBytes;
  print(
    ctx,
    `${verb} ${t.objects} object(s) (${humanBytes(t.objectBytes)}) and ${t.metas} commit/tree/tag object(s) (${humanBytes(t.metaBytes)})` +
      (t.files && t.fileBytes
        ? `: ${humanBytes(moved)} for ${t.files} changed file(s) of ${humanBytes(t.fileBytes)} (${((100 * moved) / t.fileBytes).toFixed(1)}%)`
        : '') +
      (t.filtered ? `; ${t.filtered} object(s) left on the remote by the filter` : ''),
  );
}
