/**
 * `init`: creates `.coral/` in a directory (created if missing) with an
 * unborn branch. Built in a temp directory and renamed into place, so a crash
 * never leaves a half-initialised repository.
 *
 * @example
 * const worktree = await init('/data/ckpts', { branch: 'main' });
 * const ctx = await openContext(worktree);
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { DEFAULT_CONFIG } from '../context';
import { AlreadyExistsError } from '../errors';
import { CORAL_DIR, RepoLayout } from '../layout';
import { checkShortRefName } from '../models';
import { writeFileAtomic } from '../util/fsutil';

/** Creates the repository; returns its worktree (absolute). */
export async function init(dir: string, opts: { branch?: string } = {}): Promise<string> {
  const worktree = path.resolve(dir);
  const layout = new RepoLayout(worktree);
  if (fs.existsSync(layout.coral))
    throw new AlreadyExistsError(`${layout.coral} already exists`, { path: layout.coral });
  const branch = checkShortRefName(opts.branch ?? 'main');
  await fsp.mkdir(worktree, { recursive: true });
  const staging = path.join(worktree, `${CORAL_DIR}.init-${process.pid}`);
  await fsp.rm(staging, { recursive: true, force: true });
  for (const d of ['refs/heads', 'refs/tags', 'objects/packs', 'objects/meta', 'tmp', 'sessions', 'logs'])
    await fsp.mkdir(path.join(staging, d), { recursive: true });
  await writeFileAtomic(path.join(staging, 'HEAD'), `ref: refs/heads/${branch}\n`);
  await writeFileAtomic(path.join(staging, 'config'), JSON.stringify(DEFAULT_CONFIG, null, 2) + '\n');
  await fsp.rename(staging, layout.coral);
  return worktree;
}
