/**
 * fsck of HEAD and the refs: what the object walk cannot see. Every ref must be
 * a regular file inside `.coral` naming an object of the right type (a branch
 * names a commit; a tag a commit or an annotated tag), and HEAD must be a file
 * naming a branch that is not a directory, or a commit.
 *
 * A symbolic link is followed by every reader, so one that leads outside
 * `.coral` makes coral read (and, on update, write) a file it does not own.
 * `listRefs` skips links; this walk lists them so fsck can name them.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { decodeMeta } from '../models/meta';
import type { MetaStore } from '../odb/meta-store';

const HEX64 = /^[0-9a-f]{64}$/;

/** A finding (the 'ref' kind of reach.ts FsckProblem; declared here so neither file imports the other). */
export interface RefProblem {
  kind: 'ref';
  id: string;
  message: string;
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function realpathOrNull(p: string): Promise<string | null> {
  return fsp.realpath(p).catch(() => null);
}

/** The meta type an id names ('commit', 'tree', 'tag'), or null when missing/unreadable. */
async function typeOf(meta: MetaStore, id: string): Promise<string | null> {
  try {
    return decodeMeta(await meta.get(id)).type;
  } catch {
    return null;
  }
}

function wantTypes(ref: string): string[] {
  return ref.startsWith('refs/heads/') ? ['commit'] : ['commit', 'tag'];
}

/** Problems of HEAD and of every file or link under `.coral/refs`. */
export async function checkRefs(coralDir: string, meta: MetaStore): Promise<RefProblem[]> {
  const problems: RefProblem[] = [];
  const root = (await realpathOrNull(coralDir)) ?? coralDir;
  const checkTarget = async (name: string, id: string) => {
    if (!(await meta.has(id))) {
      problems.push({ kind: 'ref', id: name, message: `points at missing ${id}` });
      return;
    }
    const t = await typeOf(meta, id);
    const want = wantTypes(name);
    if (t !== null && !want.includes(t))
      problems.push({ kind: 'ref', id: name, message: `points at a ${t} (${id}), not a ${want.join(' or ')}` });
  };

  const walk = async (rel: string): Promise<void> => {
    const dir = path.join(coralDir, ...rel.split('/'));
    let ents: fs.Dirent[];
    try {
      ents = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const ent of ents) {
      const name = `${rel}/${ent.name}`;
      const p = path.join(dir, ent.name);
      if (ent.name.includes('~') || ent.name.endsWith('.lock')) continue; // lock helpers (lib/refs/lock.ts)
      if (ent.isSymbolicLink()) {
        const target = await fsp.readlink(p).catch(() => '?');
        const real = await realpathOrNull(p);
        if (real === null || !inside(root, real))
          problems.push({ kind: 'ref', id: name, message: `is a symbolic link to ${target}, outside ${coralDir}` });
        else
          problems.push({
            kind: 'ref',
            id: name,
            message: `is a symbolic link (to ${target}); refs must be regular files`,
          });
        continue;
      }
      if (ent.isDirectory()) {
        await walk(name);
        continue;
      }
      if (!ent.isFile()) {
        problems.push({ kind: 'ref', id: name, message: 'is not a regular file' });
        continue;
      }
      const text = await fsp.readFile(p, 'utf8').catch(() => '');
      const id = text.replace(/\n$/, '');
      if (!HEX64.test(id)) problems.push({ kind: 'ref', id: name, message: 'does not contain an object id' });
      else await checkTarget(name, id);
    }
  };
  await walk('refs');

  const head = path.join(coralDir, 'HEAD');
  const st = await fsp.lstat(head).catch(() => null);
  if (!st) {
    problems.push({ kind: 'ref', id: 'HEAD', message: 'is missing' });
  } else if (st.isSymbolicLink()) {
    problems.push({
      kind: 'ref',
      id: 'HEAD',
      message: `is a symbolic link (to ${await fsp.readlink(head).catch(() => '?')}); HEAD must be a regular file`,
    });
  } else if (st.isDirectory()) {
    problems.push({ kind: 'ref', id: 'HEAD', message: 'is a directory, not a file' });
  } else {
    const text = await fsp.readFile(head, 'utf8').catch(() => '');
    const sym = /^ref: (\S+)\n?$/.exec(text);
    const id = /^([0-9a-f]{64})\n?$/.exec(text);
    if (sym) {
      const target = path.join(coralDir, ...sym[1].split('/'));
      const tst = await fsp.lstat(target).catch(() => null);
      if (!sym[1].startsWith('refs/heads/'))
        problems.push({ kind: 'ref', id: 'HEAD', message: `points at ${sym[1]}, which is not a branch` });
      else if (tst?.isDirectory())
        problems.push({ kind: 'ref', id: 'HEAD', message: `points at ${sym[1]}, which is a directory` });
      // A file or link there is checked by the walk above; none at all is an unborn branch.
    } else if (id) {
      const t = await typeOf(meta, id[1]);
      if (t === null) problems.push({ kind: 'ref', id: 'HEAD', message: `points at missing ${id[1]}` });
      else if (t !== 'commit')
        problems.push({ kind: 'ref', id: 'HEAD', message: `points at a ${t} (${id[1]}), not a commit` });
    } else {
      problems.push({ kind: 'ref', id: 'HEAD', message: "is neither 'ref: refs/heads/…' nor a commit id" });
    }
  }
  return problems;
}
