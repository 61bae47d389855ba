/**
 * Revision expressions, a subset of gitrevisions(7):
 *
 *   HEAD | @                    the current commit
 *   <64 hex>                    a full id
 *   <4..63 hex>                 a unique abbreviated id (refs of that name win, as in git)
 *   <name>                      refs/<name>, refs/tags/<name>, refs/heads/<name>, refs/remotes/<name>
 *   refs/…                      a full ref name
 *   <rev>~<n>                   n-th first-parent ancestor (~ = ~1)
 *   <rev>^<n>                   n-th parent (^ = ^1, ^0 = the commit itself)
 *   <rev>^{} | <rev>^{commit}   peel to the commit
 *
 * Suffixes chain left to right (`main~2^2`). Annotated tags are peeled to their
 * commit. Unknown names and missing parents are RefNotFoundError; malformed
 * expressions are InvalidArgumentError.
 *
 * @example
 * await resolveRevision('v1.0~1', refs, meta) // id of the parent of the tagged commit
 */
import { InvalidArgumentError, ObjectNotFoundError, RefNotFoundError, invalidParameter } from '../errors';
import { refNameProblem } from '../models/refname';
import type { MetaStore } from '../odb/meta-store';
import type { RefStore } from './refs';

const MAX_PEEL = 16;

/** What revision parsing reads of the refs (RefStore has it; a read-only view of a remote may too). */
export type RevRefs = Pick<RefStore, 'resolveHead' | 'currentBranch' | 'readRef'>;
/** What revision parsing reads of the meta objects (MetaStore has it). */
export type RevMeta = Pick<MetaStore, 'read' | 'readCommit' | 'resolvePrefix'>;

type Step = { op: '~' | '^'; n: number } | { op: 'peel' };

function parse(expr: string): { base: string; steps: Step[] } {
  const cut = expr.search(/[~^]/);
  const base = cut < 0 ? expr : expr.slice(0, cut);
  const steps: Step[] = [];
  let rest = cut < 0 ? '' : expr.slice(cut);
  while (rest.length > 0) {
    const m = /^(?:\^\{(commit)?\}|([~^])(\d*))/.exec(rest);
    if (!m)
      throw new InvalidArgumentError(`Invalid revision ${JSON.stringify(expr)}: cannot parse ${JSON.stringify(rest)}`, {
        revision: expr,
      });
    if (m[2] === undefined) steps.push({ op: 'peel' });
    else {
      const n = m[3] === '' ? 1 : Number(m[3]);
      if (!Number.isSafeInteger(n) || m[3].length > 9)
        throw new InvalidArgumentError(`Invalid revision ${JSON.stringify(expr)}: count ${m[3]} is too large`, {
          revision: expr,
        });
      steps.push({ op: m[2] as '~' | '^', n });
    }
    rest = rest.slice(m[0].length);
  }
  return { base, steps };
}

/** Follows annotated tags to the commit they name; RefNotFoundError if `id` is not a commit. */
export async function peelToCommit(id: string, meta: Pick<RevMeta, 'read'>, what: string): Promise<string> {
  for (let i = 0; i < MAX_PEEL; i++) {
    let m;
    try {
      m = await meta.read(id);
    } catch (e) {
      if (e instanceof ObjectNotFoundError)
        throw new RefNotFoundError(`${what} points at ${id}, which is not in the repository`, { revision: what, id });
      throw e;
    }
    if (m.type === 'commit') return id;
    if (m.type === 'tag') {
      id = m.value.object;
      continue;
    }
    throw new RefNotFoundError(`${what} names a ${m.type} (${id}), not a commit`, { revision: what, id });
  }
  throw new RefNotFoundError(`${what}: tag chain longer than ${MAX_PEEL}`, { revision: what });
}

/**
 * Resolves the base name of an expression to an object id (not yet peeled),
 * or null when nothing matches.
 */
export async function resolveBase(base: string, refs: RevRefs, meta: RevMeta): Promise<string | null> {
  if (base === 'HEAD' || base === '@') {
    const id = await refs.resolveHead();
    if (id === null) {
      const branch = await refs.currentBranch();
      throw new RefNotFoundError(`HEAD does not point at a commit yet (branch ${branch ?? '?'} has no commits)`, {
        revision: base,
      });
    }
    return id;
  }
  if (/^[0-9a-f]{64}$/.test(base)) return base;
  if (refNameProblem(base) === null) {
    const candidates = base.startsWith('refs/')
      ? [base]
      : [`refs/${base}`, `refs/tags/${base}`, `refs/heads/${base}`, `refs/remotes/${base}`];
    for (const name of candidates) {
      if (name.split('/').length < 3 && !name.startsWith('refs/remotes/')) continue; // 'refs/x' is not a ref
      const id = await refs.readRef(name).catch((e) => {
        if (e instanceof InvalidArgumentError) return null;
        throw e;
      });
      if (id !== null) return id;
    }
  }
  if (/^[0-9a-fA-F]{4,63}$/.test(base)) {
    try {
      return await meta.resolvePrefix(base);
    } catch (e) {
      if (e instanceof RefNotFoundError) return null;
      throw e;
    }
  }
  return null;
}

/** Resolves a revision expression to a commit id (see the module doc for the grammar). */
export async function resolveRevision(expr: string, refs: RevRefs, meta: RevMeta): Promise<string> {
  if (typeof expr !== 'string' || expr.length === 0) throw invalidParameter('revision', 'non-empty string', expr);
  const { base, steps } = parse(expr);
  if (base === '')
    throw new InvalidArgumentError(`Invalid revision ${JSON.stringify(expr)}: missing name before suffix`, {
      revision: expr,
    });
  if (base !== '@' && !/^[0-9a-fA-F]+$/.test(base)) {
    const problem = refNameProblem(base);
    if (problem)
      throw new InvalidArgumentError(
        `Invalid revision ${JSON.stringify(expr)}: ${JSON.stringify(base)} ${problem}` +
          (base.includes('@{') ? ' (reflog selectors like @{1} are not supported)' : ''),
        { revision: expr },
      );
  }
  const baseId = await resolveBase(base, refs, meta);
  if (baseId === null)
    throw new RefNotFoundError(`unknown revision ${JSON.stringify(base)}: not a branch, tag or commit id`, {
      revision: expr,
    });
  let id = await peelToCommit(baseId, meta, base);
  let shown = base;
  for (const s of steps) {
    if (s.op === 'peel') {
      shown += '^{}';
      continue;
    }
    if (s.op === '^') {
      shown += `^${s.n}`;
      if (s.n === 0) continue;
      const c = await meta.readCommit(id);
      if (s.n > c.parents.length)
        throw new RefNotFoundError(
          `${shown}: commit ${id.slice(0, 12)} has ${c.parents.length === 0 ? 'no parents' : `only ${c.parents.length} parent(s)`}`,
          { revision: expr, id },
        );
      id = c.parents[s.n - 1];
    } else {
      for (let k = 0; k < s.n; k++) {
        const c = await meta.readCommit(id);
        if (c.parents.length === 0)
          throw new RefNotFoundError(
            `${shown}~${s.n}: history ends at root commit ${id.slice(0, 12)} after ${k} step(s)`,
            {
              revision: expr,
              id,
            },
          );
        id = c.parents[0];
      }
      shown += `~${s.n}`;
    }
  }
  return id;
}
