// Pure parts of the git extension: the pointer format and .gitattributes pattern handling.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAttributesLine, quotePattern, rootPattern } from '../../lib/git/install';
import { escapeField, formatPointer, parsePointer, unescapeField, type Storage } from '../../lib/git/pointer';
import type { FileEntry } from '../../lib/models/tree';
import { coralOk, git, gitEnv, initRepo, type GitEnv } from './helpers';

const id = (c: string) => c.repeat(32);
const sha = 'ab'.repeat(32);

function entry(): FileEntry {
  return {
    format: 'pytorch',
    size: 1000,
    sha256: sha,
    skeleton: id('a'),
    segments: [
      { offset: 100, length: 64, object: id('b'), dtype: 'F32', shape: [4, 4] },
      { offset: 200, length: 400, object: id('c'), dtype: 'U8', shape: [400] },
    ],
    // Two views of the first storage (a name with a space and a percent sign), none of the second.
    tensors: [
      { name: 'enc.w 100%', dtype: 'F32', shape: [4, 4], segment: 0, elementOffset: 0, strides: null },
      { name: 'enc.wT', dtype: 'F32', shape: [4, 4], segment: 0, elementOffset: 0, strides: [1, 4] },
    ],
    metadata: { note: 'a b' },
  };
}

const storage = new Map<string, Storage>([
  [id('a'), { kind: 'whole', codec: 'ZSTD', base: null }],
  [id('b'), { kind: 'delta', codec: 'DELTA_ORDERED', base: id('d') }],
  [id('c'), { kind: 'sparse', codec: 'SPARSE_UPDATE', base: id('e') }],
]);

describe('pointer format', () => {
  it('round-trips views, escaped names, metadata and storage; the text is deterministic', () => {
    const text = formatPointer(entry(), storage);
    expect(text.split('\n')[0]).toBe('coral-pointer 1');
    expect(text).toContain(`group enc.w%20100%25 F32 [4,4] ${id('b')} delta:DELTA_ORDERED@${id('d')} 100 64\n`);
    expect(text).toContain('views 2\n');
    expect(text).toContain('view enc.wT F32 [4,4] 0 0 [1,4]\n');
    const back = parsePointer(text);
    expect(back.entry).toEqual(entry());
    expect(back.groups).toEqual(['enc.w 100%', '#1']);
    expect(formatPointer(back.entry, back.storage)).toBe(text);
  });

  it('rejects malformed pointers with CORAL_CORRUPT_OBJECT', () => {
    const text = formatPointer(entry(), storage);
    for (const bad of [
      text.replace('coral-pointer 1', 'coral-pointer 2'),
      text.replace(/^size .*$/m, 'size -1'),
      text.replace(/^group (\S+) F32/m, 'group $1 F99'),
      text.replace(' 100 64\n', ' 100 65\n'),
      text + 'bogus line\n',
      text.slice(0, -1),
    ])
      expect(() => parsePointer(bad)).toThrow(expect.objectContaining({ code: 'CORAL_CORRUPT_OBJECT' }));
  });

  it('escapes every whitespace and control character', () => {
    for (const s of ['', 'a b', 'tab\there', 'nl\nx', '%41', 'ünïcödé', 'x\x7f']) {
      // eslint-disable-next-line no-control-regex
      expect(escapeField(s)).not.toMatch(/[\s\x00-\x1f\x7f]/);
      expect(unescapeField(escapeField(s))).toBe(s);
    }
  });
});

describe('.gitattributes patterns', () => {
  it('rewrites subdirectory patterns for the top level as git would match them', () => {
    expect(rootPattern('*.pt', '')).toBe('*.pt');
    expect(rootPattern('*.pt', 'models')).toBe('/models/**/*.pt');
    expect(rootPattern('ckpt/*.pt', 'models')).toBe('/models/ckpt/*.pt');
    expect(rootPattern('/a.pt', 'models')).toBe('/models/a.pt');
    expect(() => rootPattern('!x', '')).toThrow(expect.objectContaining({ code: 'CORAL_INVALID_ARGUMENT' }));
  });

  it('quotes patterns with spaces and parses them back', () => {
    const q = quotePattern('my model/*.pt');
    expect(q).toBe('"my model/*.pt"');
    expect(parseAttributesLine(`${q} filter=coral -text`)).toEqual({
      pattern: 'my model/*.pt',
      attrs: ['filter=coral', '-text'],
    });
    expect(parseAttributesLine('# comment')).toBeNull();
  });
});

describe('coral git track / untrack', () => {
  const envs: GitEnv[] = [];
  afterAll(() => {
    for (const e of envs) fs.rmSync(e.root, { recursive: true, force: true });
  });

  it('edits the top-level .gitattributes, and git applies the filter to what the pattern names', () => {
    const e = gitEnv();
    envs.push(e);
    const dir = initRepo(e, 'repo', []);
    fs.mkdirSync(path.join(dir, 'models', 'deep'), { recursive: true });
    coralOk(e, path.join(dir, 'models'), 'git', 'track', '*.bin');
    coralOk(e, dir, 'git', 'track', 'my ckpt.pt');
    const attrs = fs.readFileSync(path.join(dir, '.gitattributes'), 'utf8');
    expect(attrs).toContain('/models/**/*.bin filter=coral diff=coral merge=coral -text\n');
    expect(attrs).toContain('"my ckpt.pt" filter=coral');
    const check = (p: string) => git(e, dir, 'check-attr', 'filter', '--', p).trim().split(': ').pop();
    expect(check('models/deep/x.bin')).toBe('coral');
    expect(check('other/x.bin')).toBe('unspecified');
    expect(check('my ckpt.pt')).toBe('coral');
    expect(coralOk(e, dir, 'git', 'track')).toContain('/models/**/*.bin');
    coralOk(e, path.join(dir, 'models'), 'git', 'untrack', '*.bin');
    expect(check('models/deep/x.bin')).toBe('unspecified');
    expect(check('my ckpt.pt')).toBe('coral');
  });
});
