import { describe, expect, it } from 'vitest';
import { CorruptObjectError, InvalidArgumentError } from '../../../lib/errors';
import { canonicalJson, decodeMeta, decodeTree, encodeTree, type FileEntry } from '../../../lib/models';
import { CID, fileEntry, H, tree } from './fixtures';

const storedTree = (files: unknown) => Buffer.from(canonicalJson({ type: 'tree', v: 1, files }));

describe('tree encoding', () => {
  it('round-trips and is independent of key order', () => {
    const t = tree({ 'b/model.safetensors': fileEntry(), 'a.npy': fileEntry({ format: 'npy', metadata: { k: 'v' } }) });
    const bytes = encodeTree(t);
    expect(decodeTree(bytes)).toEqual(t);
    expect(decodeMeta(bytes).type).toBe('tree');
    const swapped = tree({
      'a.npy': fileEntry({ format: 'npy', metadata: { k: 'v' } }),
      'b/model.safetensors': fileEntry(),
    });
    expect(encodeTree(swapped).equals(bytes)).toBe(true);
    expect(bytes.toString().startsWith('{"files":{"a.npy":')).toBe(true);
    expect(bytes.toString().endsWith('},"type":"tree","v":1}')).toBe(true);
  });

  it('accepts an empty tree, 0-d and zero-size tensors, 64-hex object ids', () => {
    const f = fileEntry({
      size: 20,
      segments: [
        { offset: 4, length: 4, object: H('1'), dtype: 'F32', shape: [] },
        { offset: 8, length: 0, object: CID('2'), dtype: 'F16', shape: [0, 5] },
        { offset: 8, length: 0, object: CID('3'), dtype: 'BOOL', shape: [0] },
      ],
      tensors: [
        { name: 'scalar', dtype: 'F32', shape: [], segment: 0, elementOffset: 0, strides: null },
        { name: 'empty', dtype: 'F16', shape: [0, 5], segment: 1, elementOffset: 0, strides: null },
      ],
    });
    expect(decodeTree(encodeTree(tree({ x: f })))).toEqual(tree({ x: f }));
    expect(decodeTree(encodeTree({ files: {} }))).toEqual({ files: {} });
  });

  it('keeps a file literally named __proto__ as data', () => {
    const t = decodeTree(storedTree(JSON.parse(`{"__proto__":${canonicalJson(fileEntry())}}`)));
    expect(Object.keys(t.files)).toEqual(['__proto__']);
    // The entry did not become the table's prototype; the table has none, so
    // names like "constructor" are absent unless a file has them.
    expect(Object.getPrototypeOf(t.files)).toBe(null);
    expect(t.files['constructor']).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(t.files, '__proto__')?.value.sha256).toBe(fileEntry().sha256);
  });

  const bad: Array<[string, string, (f: FileEntry) => void]> = [
    ['unsorted segments', 'segments', (f) => f.segments.reverse()],
    ['overlap', 'overlaps', (f) => (f.segments[1].offset = 120)],
    ['segment past end of file', 'past the file size', (f) => (f.size = 140)],
    ['segment length vs shape', 'does not match', (f) => (f.segments[0].shape = [2, 2])],
    ['unknown dtype', 'unknown dtype', (f) => (f.segments[0].dtype = 'F128')],
    ['tensor segment index', 'out of range', (f) => (f.tensors[0].segment = 2)],
    ['tensor outside segment', 'outside segment', (f) => (f.tensors[0].elementOffset = 1)],
    ['strided view outside segment', 'outside segment', (f) => (f.tensors[1].strides = [1, 4])],
    ['negative stride below 0', 'outside segment', (f) => (f.tensors[1].strides = [-1, 3])],
    ['strides rank', 'entries', (f) => (f.tensors[1].strides = [1])],
    ['duplicate tensor name', 'duplicate tensor', (f) => (f.tensors[1].name = 'w')],
    ['bad sha256', 'sha256', (f) => (f.sha256 = 'abc')],
    ['bad skeleton id', 'skeleton', (f) => (f.skeleton = 'z'.repeat(32))],
    ['negative offset', 'offset', (f) => (f.segments[0].offset = -1)],
    ['fractional size', 'size', (f) => (f.size = 1.5)],
    ['empty format', 'format', (f) => (f.format = '')],
    ['metadata not string', 'metadata', (f) => (f.metadata = { a: 1 as unknown as string })],
    ['extra field', 'unknown field', (f) => ((f as unknown as Record<string, unknown>).extra = 1)],
  ];
  it.each(bad)('rejects %s (encode: InvalidArgument, decode: CorruptObject)', (_n, msg, mutate) => {
    const f = structuredClone(fileEntry());
    mutate(f);
    expect(() => encodeTree(tree({ 'm.safetensors': f }))).toThrow(InvalidArgumentError);
    expect(() => encodeTree(tree({ 'm.safetensors': f }))).toThrow(msg);
    expect(() => decodeTree(storedTree({ 'm.safetensors': f }))).toThrow(CorruptObjectError);
  });

  it.each([
    ['/abs'],
    ['../escape'],
    ['a/../b'],
    ['./a'],
    ['a//b'],
    ['a/'],
    [''],
    ['a\\b'],
    ['.coral/config'],
    ['x/.CORAL/y'],
    ['nul\0'],
    ['new\nline'],
  ])('rejects path %j', (p) => {
    expect(() => encodeTree(tree({ [p]: fileEntry() }))).toThrow(InvalidArgumentError);
    expect(() => decodeTree(storedTree({ [p]: fileEntry() }))).toThrow(CorruptObjectError);
  });

  it('rejects a path that is both a file and a directory', () => {
    expect(() => encodeTree(tree({ a: fileEntry(), 'a/b': fileEntry() }))).toThrow(/both a file and a directory/);
    expect(() => decodeTree(storedTree({ 'x/a': fileEntry(), 'x/a/b/c': fileEntry() }))).toThrow(CorruptObjectError);
    expect(() => encodeTree(tree({ 'a.b': fileEntry(), 'a/b': fileEntry(), ab: fileEntry() }))).not.toThrow();
  });

  it('rejects the wrong type header', () => {
    expect(() => decodeTree(Buffer.from(canonicalJson({ type: 'commit', v: 1, files: {} })))).toThrow(
      CorruptObjectError,
    );
    expect(() => decodeMeta(Buffer.from(canonicalJson({ type: 'blob', v: 1 })))).toThrow(CorruptObjectError);
  });
});
