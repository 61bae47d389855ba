/**
 * Paths inside a repository's `.coral/` directory. One place names them all.
 */
import * as path from 'node:path';

export const CORAL_DIR = '.coral';
export const REPO_FORMAT_VERSION = 1;

export class RepoLayout {
  readonly coral: string;
  /**
   * @param worktree the directory holding `.coral/`
   * @param coral the repository directory itself when it is not `<worktree>/.coral` (a bare repository)
   */
  constructor(
    readonly worktree: string,
    coral?: string,
  ) {
    this.coral = coral ?? path.join(worktree, CORAL_DIR);
  }
  get head(): string {
    return path.join(this.coral, 'HEAD');
  }
  get config(): string {
    return path.join(this.coral, 'config');
  }
  get index(): string {
    return path.join(this.coral, 'index');
  }
  get objects(): string {
    return path.join(this.coral, 'objects');
  }
  get packs(): string {
    return path.join(this.coral, 'objects', 'packs');
  }
  get meta(): string {
    return path.join(this.coral, 'objects', 'meta');
  }
  get tmp(): string {
    return path.join(this.coral, 'tmp');
  }
  get sessions(): string {
    return path.join(this.coral, 'sessions');
  }
  get gcLock(): string {
    return path.join(this.coral, 'gc.lock');
  }
  get mergeState(): string {
    return path.join(this.coral, 'MERGE_STATE');
  }
  get simindex(): string {
    return path.join(this.coral, 'simindex');
  }
  /** The cast-id index (lib/similarity/cast-index.ts). */
  get castindex(): string {
    return path.join(this.coral, 'castindex');
  }
  get logs(): string {
    return path.join(this.coral, 'logs');
  }
}
