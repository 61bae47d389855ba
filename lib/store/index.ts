/**
 * The object store layer: the ObjectStore contract, the local HDF5 pack
 * backend and the in-memory backend. See docs/store.md.
 */
import { LocalPackStore, type LocalPackStoreOptions } from './local';

export * from './object-store';
export { DEFAULT_SMALL_OBJECT_MAX, LocalPackStore, PACK_RE, type LocalPackStoreOptions } from './local';
export { MemoryStore } from './memory';
export { INDEX_FORMAT, encodeIndex, parseIndex } from './pack-index';

/** Opens the local pack store of a repository (`root` is the `.coral` directory). */
export function openLocalStore(root: string, opts?: LocalPackStoreOptions): Promise<LocalPackStore> {
  return LocalPackStore.open(root, opts);
}

/**
 * Regenerates a store's object index from its packs (`coral fsck --rebuild-index`).
 * False for a store that keeps no index (memory).
 */
export async function rebuildObjectIndex(ctx: { readonly store: object }): Promise<boolean> {
  const store = ctx.store as { rebuildIndex?: () => Promise<unknown> };
  if (!store.rebuildIndex) return false;
  await store.rebuildIndex();
  return true;
}
