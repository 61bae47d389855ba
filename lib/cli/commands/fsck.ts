/** `coral fsck [--rebuild-index] [--quick] [--json]`: verify every object and link. */
import { rebuildObjectIndex } from '../../index';
import { FsckFailedError, JSON_OPT, withRepo, type Command } from '../command';
import { paint, print, printJson } from '../output';

export const fsckCommand: Command = {
  summary: 'Verify every object (checksums, delta chains) and every link',
  usage: 'coral fsck [--rebuild-index] [--quick] [--json]',
  maxArgs: 0,
  options: { 'rebuild-index': { type: 'boolean' }, quick: { type: 'boolean' }, ...JSON_OPT },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      const text = !ctx.flags.json;
      if (ctx.flags['rebuild-index']) {
        const n = await repo.rebuildIndex({ ifDamaged: true });
        if (n !== null && text)
          print(ctx, `staging index was damaged: rebuilt from HEAD (${n} files; staged changes lost)`);
        await rebuildObjectIndex(repo);
        if (text) print(ctx, 'object index rebuilt from packs');
        const si = await repo.rebuildSimilarityIndex();
        if (text)
          print(
            ctx,
            `similarity index rebuilt: ${si.entries} entries (${si.fromAttributes} from attributes, ${si.decoded} decoded)` +
              (si.castIds !== undefined ? `; cast-id index: ${si.castIds} entries` : ''),
          );
      }
      const r = await repo.fsck({ full: !ctx.flags.quick });
      if (!text) printJson(ctx, r);
      else {
        for (const p of r.problems) print(ctx, `${paint(ctx.io, 'red', 'error')}: ${p.kind} ${p.id}: ${p.message}`);
        print(
          ctx,
          `fsck: ${r.commits} commits, ${r.trees} trees, ${r.objects} objects checked; ${r.problems.length} problem(s)`,
        );
        if (r.promisor)
          print(
            ctx,
            `partial clone: ${r.promised} object(s) promised by remote '${r.promisor}' (\`coral fetch --all-objects\` fetches them)`,
          );
      }
      if (!r.ok) throw new FsckFailedError(`repository has ${r.problems.length} problem(s)`);
    });
  },
};
