/**
 * `coral git filter-process`: the filter server (filter.ts) wired to the
 * repository's payload store (payloads.ts).
 *
 * Smudge for a diff: git smudges both sides of a diff into temp files before
 * it runs a diff driver or textconv. Rebuilding a multi-GB checkpoint for
 * that would defeat the point, so when the git command that started this
 * process is a diff command (diff, log, show…), smudge hands back the pointer
 * itself and the diff driver reads the stored payloads (lib/git/diff.ts).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { CorruptObjectError } from '../errors';
import { serveFilter, type FilterOps } from './filter';
import { gitConfig, gitDirs, gitRaw } from './gitcmd';
import {
  cleanFile,
  entryObjects,
  missingObjects,
  openPayloads,
  scratchPath,
  smudgeChunks,
  smudgeToFile,
  type Payloads,
} from './payloads';
import { lfsFetch } from './lfs';
import { looksLikePointer, MAX_POINTER_BYTES, parsePointer, type Pointer } from './pointer';

/** Appends a line to the trace log named by CORAL_GIT_LOG (tests count filter processes with it). */
export function trace(msg: string): void {
  const f = process.env.CORAL_GIT_LOG;
  if (f) fs.appendFileSync(f, `${process.pid} ${msg} t=${Math.round(performance.now())}\n`);
}

/** git subcommands whose smudges only feed a diff. */
const DIFF_COMMANDS = new Set([
  'diff',
  'log',
  'show',
  'whatchanged',
  'format-patch',
  'diff-tree',
  'diff-index',
  'diff-files',
]);
/** git options that take a separate value before the subcommand. */
const GIT_OPTS_WITH_VALUE = new Set([
  '-C',
  '-c',
  '--git-dir',
  '--work-tree',
  '--namespace',
  '--exec-path',
  '--config-env',
]);

function parentOf(pid: number): number | null {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 1 ? ppid : null;
  } catch {
    return null;
  }
}

/**
 * The subcommand of the git process that started us (Linux: /proc), or null.
 * git runs the filter command through `sh -c` when it has arguments, so the
 * nearest git ancestor within a few generations is taken.
 */
export function parentGitCommand(ppid: number | null = process.ppid): string | null {
  for (let depth = 0; ppid !== null && depth < 3; depth++, ppid = parentOf(ppid)) {
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      return null;
    }
    if (!argv.length || !/(^|\/)git$/.test(argv[0])) continue;
    for (let i = 1; i < argv.length; i++) {
      const a = argv[i];
      if (GIT_OPTS_WITH_VALUE.has(a)) {
        i++;
        continue;
      }
      if (a.startsWith('-')) continue;
      return a;
    }
    return null;
  }
  return null;
}

/** The pointer git holds for `relPath` (the index's version, else HEAD's), or null. */
export async function previousPointer(cwd: string, relPath: string): Promise<Pointer | null> {
  for (const rev of [`:${relPath}`, `HEAD:${relPath}`]) {
    const r = await gitRaw(cwd, ['cat-file', 'blob', rev]);
    if (r.code !== 0 || !looksLikePointer(r.stdout)) continue;
    try {
      return parsePointer(r.stdout);
    } catch {
      return null;
    }
  }
  return null;
}

async function readHead(file: string, n: number): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const b = Buffer.alloc(n);
    const { bytesRead } = await fh.read(b, 0, n, 0);
    return b.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The filter operations over a payload store. */
export function filterOps(ps: Payloads, cwd: string, opts: { diffOnly?: boolean } = {}): FilterOps {
  const log = (msg: string) => {
    process.stderr.write(`${msg}\n`);
    trace(msg);
  };
  const pointerOf = (pathname: string, blob: Buffer): Pointer | null => {
    if (!looksLikePointer(blob)) return null;
    try {
      return parsePointer(blob);
    } catch (e) {
      throw new CorruptObjectError(`${pathname}: ${(e as Error).message}`, { path: pathname });
    }
  };
  /** Previous pointers looked up while a clean's content arrives (willClean), by path. */
  const previous = new Map<string, Promise<Pointer | null>>();
  /** Fetches missing payloads from the coral remote of the git remotes (one fetch at a time). */
  let fetching: Promise<unknown> = Promise.resolve();
  const ensurePayloads = async (p: Pointer) => {
    if (!(await missingObjects(ps, entryObjects(p.entry))).length) return;
    await ps.store.refresh();
    if (!(await missingObjects(ps, entryObjects(p.entry))).length) return;
    // A pointer that names git-lfs copies (the lfs backend) is fetched through git-lfs.
    const run = fetching.then(() =>
      p.lfs
        ? lfsFetch(ps, cwd, ps.dirs.commonDir, 'coral-payload', p.lfs)
        : // Loaded on first use: most filter processes never fetch (it saves their start-up the remote modules).
          import('./transfer').then(({ fetchEntries }) => fetchEntries(ps, cwd, [p.entry])),
    );
    fetching = run.catch(() => undefined);
    const n = await run;
    trace(`fetched ${n} object(s)`);
  };
  return {
    log,
    scratch: (what, pathname) => scratchPath(ps, what, pathname),
    willClean(pathname) {
      const p = previousPointer(cwd, pathname);
      p.catch(() => undefined);
      previous.set(pathname, p);
    },
    async clean(pathname, spool, sha256) {
      trace(`clean ${pathname}`);
      const early = previous.get(pathname);
      previous.delete(pathname);
      const st = await fsp.stat(spool);
      // Already a pointer (e.g. a file checked out without the filter): store it as it is.
      if (st.size <= MAX_POINTER_BYTES && looksLikePointer(await readHead(spool, 16))) {
        const text = await fsp.readFile(spool);
        parsePointer(text);
        return text;
      }
      const prev = await (early ?? previousPointer(cwd, pathname));
      trace(`previous ${pathname} ${prev ? 'found' : 'none'}`);
      const r = await cleanFile(ps, pathname, spool, prev, { sha256, direct: true });
      trace(`cleaned ${pathname} stored=${r.report.storedObjects} deduped=${r.report.dedupedObjects}`);
      return Buffer.from(r.text, 'utf8');
    },
    smudge(pathname, blob) {
      trace(`smudge ${pathname}`);
      const p = pointerOf(pathname, blob);
      if (!p || opts.diffOnly)
        return (async function* () {
          yield blob;
        })();
      return (async function* () {
        await ensurePayloads(p);
        yield* smudgeChunks(ps, p, pathname);
      })();
    },
    async smudgeToFile(pathname, blob, dest) {
      trace(`smudge-delayed ${pathname}`);
      const p = pointerOf(pathname, blob);
      if (!p || opts.diffOnly) {
        await fsp.writeFile(dest, blob, { flag: 'wx', mode: 0o600 });
        return;
      }
      await ensurePayloads(p);
      await smudgeToFile(ps, p, pathname, dest);
      trace(`smudged ${pathname}`);
    },
  };
}

/** Runs the filter process on stdin/stdout until git hangs up. */
export async function runFilterProcess(cwd: string): Promise<void> {
  // git waits for the handshake until these are done: the three git commands run at once.
  const configs = Promise.all([gitConfig(cwd, 'coral.maxChainLength', 'int'), gitConfig(cwd, 'coral.backend')]);
  configs.catch(() => undefined);
  const dirs = await gitDirs(cwd);
  const [chain, backend] = await configs;
  const ps = await openPayloads(dirs, {
    ...(chain !== undefined ? { maxChainLength: Number(chain) } : {}),
    backend: backend === 'lfs' ? 'lfs' : 'coral',
    streaming: true,
  });
  const parent = parentGitCommand();
  trace(`start filter-process parent=${parent ?? '?'}`);
  try {
    await serveFilter(
      // fd 0 read directly (never through process.stdin, which would make the pipe non-blocking).
      0,
      process.stdout,
      filterOps(ps, dirs.worktree || cwd, {
        diffOnly: parent !== null && DIFF_COMMANDS.has(parent),
      }),
    );
  } finally {
    await ps.close();
  }
}
