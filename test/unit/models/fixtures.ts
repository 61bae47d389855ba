// Shared builders for model tests (not a test file).
import type { Commit, FileEntry, Signature, TagObject, Tree } from '../../../lib/models';

export const SIG: Signature = {
  name: 'Ada Lovelace',
  email: 'ada@example.com',
  timestamp: 1_790_000_000,
  tzOffset: 60,
};
export const H = (c: string) => c.repeat(64).slice(0, 64);
export const CID = (c: string) => c.repeat(32).slice(0, 32);

export function commit(over: Partial<Commit> = {}): Commit {
  return { tree: H('a'), parents: [], author: SIG, committer: SIG, message: 'init', metadata: {}, ...over };
}

export function fileEntry(over: Partial<FileEntry> = {}): FileEntry {
  return {
    format: 'safetensors',
    size: 8 + 100 + 24 + 16,
    sha256: H('e'),
    skeleton: CID('5'),
    segments: [
      { offset: 108, length: 24, object: CID('1'), dtype: 'F32', shape: [2, 3] },
      { offset: 132, length: 16, object: CID('2'), dtype: 'F64', shape: [2] },
    ],
    tensors: [
      { name: 'w', dtype: 'F32', shape: [2, 3], segment: 0, elementOffset: 0, strides: null },
      { name: 'wT', dtype: 'F32', shape: [3, 2], segment: 0, elementOffset: 0, strides: [1, 3] },
      { name: 'b', dtype: 'F64', shape: [2], segment: 1, elementOffset: 0, strides: null },
    ],
    ...over,
  };
}

export function tree(files: Record<string, FileEntry> = { 'model.safetensors': fileEntry() }): Tree {
  return { files };
}

export function tag(over: Partial<TagObject> = {}): TagObject {
  return { object: H('c'), tag: 'v1.0', tagger: SIG, message: 'release', metadata: { acc: 0.91 }, ...over };
}
