/**
 * CheckpointWatcher: commits the checkpoints a training process writes into
 * a folder, each new or changed file once it is complete (`coral watch`;
 * docs/pytorch.md).
 *
 * Complete means: its size, mtime and inode were the same on two consecutive
 * scans (a file renamed into place atomically, as `torch.save` to a temp name
 * + `os.replace` does, is complete on the scan after it appears; one written
 * in place is committed once it stops changing). Names that look temporary
 * (dot files, `*.tmp`, `*.part`, `*.partial`, `*~`) and sidecars (`*.json`)
 * are never committed. A sidecar `<name>.json` or `<stem>.json` next to a
 * checkpoint gives its metrics: a JSON object whose numbers (or the numbers of
 * its `metrics` object) become the commit's `metrics`, with `step` and `epoch`
 * recorded too, so `coral log --metric loss` shows them.
 *
 * Each commit is `add <file>` + `commit` on the current branch, like a user
 * would type; files whose stat still matches the index are not re-added.
 *
 * @example
 * const w = new CheckpointWatcher(repo, 'ckpts');
 * await w.run({ intervalMs: 1000, signal });          // until aborted
 * const committed = await w.scan();                  // or one pass at a time
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { invalidParameter } from '../errors';
import type { AddOptions, AddReport } from '../commands/add';
import type { CommitOptions } from '../commands/commit';

/** What the watcher needs from a repository (Repository satisfies it). */
export interface WatchRepo {
  worktree: string;
  listWorktree(dir?: string): Promise<string[]>;
  absPath(rel: string): string;
  add(paths: string[], opts?: AddOptions): Promise<AddReport>;
  commit(opts: CommitOptions): Promise<string>;
}

export interface WatchCommit {
  /** Worktree-relative path of the checkpoint. */
  path: string;
  id: string;
  metrics: Record<string, number>;
  step?: number;
  epoch?: number;
}

export interface WatchOptions {
  /** Called after each commit. */
  onCommit?: (c: WatchCommit) => void;
  /** Read `<file>.json` / `<stem>.json` sidecars (default true). */
  sidecars?: boolean;
}

const TEMP = /(^\.|\.tmp$|\.part$|\.partial$|~$|\.json$)/i;

interface Seen {
  sig: string;
  committed: string | null;
}

export class CheckpointWatcher {
  private readonly rel: string;
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly repo: WatchRepo,
    dir: string,
    private readonly opts: WatchOptions = {},
  ) {
    if (typeof dir !== 'string' || !dir) throw invalidParameter('dir', 'directory path', dir);
    const abs = path.resolve(repo.worktree, dir);
    const rel = path.relative(repo.worktree, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel))
      throw invalidParameter('dir', `a directory inside the worktree ${repo.worktree}`, dir);
    this.rel = rel.split(path.sep).join('/');
  }

  /** The watched directory, absolute. */
  get dir(): string {
    return path.join(this.repo.worktree, this.rel);
  }

  /** One pass: commits every checkpoint that is complete and new or changed since its last commit. */
  async scan(): Promise<WatchCommit[]> {
    const out: WatchCommit[] = [];
    const files = (await this.repo.listWorktree(this.dir)).filter((f) => !TEMP.test(path.posix.basename(f))).sort();
    for (const f of files) {
      const st = await fsp.stat(this.repo.absPath(f)).catch(() => null);
      if (!st?.isFile()) continue;
      const sig = `${st.size}:${st.mtimeMs}:${st.ino}`;
      const prev = this.seen.get(f);
      if (!prev || prev.sig !== sig) {
        // First sight of this version: complete once it is unchanged on the next scan.
        this.seen.set(f, { sig, committed: prev?.committed ?? null });
        continue;
      }
      if (prev.committed === sig) continue;
      const report = await this.repo.add([this.repo.absPath(f)]);
      prev.committed = sig;
      if (!report.files.length) continue; // the index already holds this version
      const side = this.opts.sidecars === false ? {} : await sidecar(this.repo.absPath(f));
      const metricText = Object.entries(side.metrics ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      const id = await this.repo.commit({
        message: `watch: ${f}${side.step !== undefined ? ` (step ${side.step})` : ''}${metricText ? ` ${metricText}` : ''}`,
        metadata: {
          metrics: side.metrics ?? {},
          ...(side.step !== undefined ? { step: side.step } : {}),
          ...(side.epoch !== undefined ? { epoch: side.epoch } : {}),
          watch: { file: f },
        },
      });
      const c: WatchCommit = {
        path: f,
        id,
        metrics: side.metrics ?? {},
        ...(side.step !== undefined ? { step: side.step } : {}),
        ...(side.epoch !== undefined ? { epoch: side.epoch } : {}),
      };
      out.push(c);
      this.opts.onCommit?.(c);
    }
    return out;
  }

  /**
   * Scans every `intervalMs` (default 1000) until `signal` aborts or
   * `maxCommits` checkpoints were committed; returns what it committed.
   */
  async run(opts: { intervalMs?: number; signal?: AbortSignal; maxCommits?: number } = {}): Promise<WatchCommit[]> {
    const interval = opts.intervalMs ?? 1000;
    if (!Number.isFinite(interval) || interval < 10) throw invalidParameter('intervalMs', 'number >= 10', interval);
    const all: WatchCommit[] = [];
    while (!opts.signal?.aborted) {
      all.push(...(await this.scan()));
      if (opts.maxCommits !== undefined && all.length >= opts.maxCommits) break;
      await new Promise<void>((res) => {
        const t = setTimeout(res, interval);
        opts.signal?.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            res();
          },
          { once: true },
        );
      });
    }
    return all;
  }
}

/** The sidecar of a checkpoint: `<file>.json`, else `<stem>.json`; numbers become metrics. */
async function sidecar(abs: string): Promise<{ metrics?: Record<string, number>; step?: number; epoch?: number }> {
  const stem = abs.slice(0, abs.length - path.extname(abs).length);
  for (const f of [`${abs}.json`, `${stem}.json`]) {
    let v: unknown;
    try {
      v = JSON.parse(await fsp.readFile(f, 'utf8'));
    } catch {
      continue; // absent or half-written: no metrics rather than a failed commit
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) continue;
    const o = v as Record<string, unknown>;
    const src = o.metrics && typeof o.metrics === 'object' ? (o.metrics as Record<string, unknown>) : o;
    const metrics: Record<string, number> = {};
    for (const [k, x] of Object.entries(src))
      if (k !== 'step' && k !== 'epoch' && typeof x === 'number' && Number.isFinite(x)) metrics[k] = x;
    const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
    return { metrics, step: num(o.step), epoch: num(o.epoch) };
  }
  return {};
}
