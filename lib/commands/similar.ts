/**
 * `similar`: the stored checkpoints closest to a worktree file or a committed
 * `rev:path` (which base was this fine-tuned from?), and the rebuild of
 * `.coral/simindex/`. The engine is lib/ingest/similarity.ts; this binds it
 * to a repository context.
 *
 * @example
 * const { matches } = await similar(ctx, { path: 'finetuned.safetensors' });
 */
import { resolve, treeOf, type RepoContext } from '../context';
import {
  rebuildSimilarityIndex as rebuildIndexAt,
  similarCheckpoints,
  similaritySettings,
  type RebuildReport,
  type SimilarOptions,
  type SimilarReport,
  type SimilarSource,
  type SimilarTarget,
} from '../ingest/similarity';

/** The repository context as the similarity engine's narrow source. */
function source(ctx: RepoContext): SimilarSource {
  return {
    config: ctx.config,
    layout: ctx.layout,
    store: ctx.store,
    reader: ctx.reader,
    refs: ctx.refs,
    meta: ctx.meta,
    resolve: (rev) => resolve(ctx, rev),
    treeOf: (rev) => treeOf(ctx, rev),
  };
}

export function similar(ctx: RepoContext, target: SimilarTarget, opts?: SimilarOptions): Promise<SimilarReport> {
  return similarCheckpoints(source(ctx), target, opts);
}

/** Rebuilds `.coral/simindex/` (and `.coral/castindex/`, unless `similarity.castIds` is off) from the stored objects. */
export function rebuildSimilarityIndex(ctx: RepoContext): Promise<RebuildReport> {
  const castDir = ctx.config.getBool('similarity.castIds', true) ? ctx.layout.castindex : undefined;
  return rebuildIndexAt(ctx.layout.simindex, ctx, similaritySettings(ctx.config), castDir);
}
