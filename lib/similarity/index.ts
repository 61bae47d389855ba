/**
 * Near-duplicate detection: SimHash fingerprints, exact cosine, an LSH index
 * and its persisted, multi-writer store. See docs/similarity.md.
 */
export * from './fingerprint';
export * from './lsh-index';
export { SimilarityStore, writeFileAtomic, type StoreOptions } from './index-file';
