/**
 * Ref name rules, after `git check-ref-format`: no component starts with '.'
 * or ends with '.lock'; no '..', '@{', '//', control characters, space or any
 * of ~ ^ : ? * [ \ ; not '@'; does not start or end with '/', end with '.', or
 * start with '-'. Full ref names used by the ref store are `HEAD` or start with
 * `refs/` and have at least one more component.
 *
 * @example
 * isValidRefName('refs/heads/feature/x') // true
 * checkRefName('refs/heads/a..b')        // throws InvalidArgumentError
 */
import { InvalidArgumentError } from '../errors';

/** Why `name` is not a valid ref name (as a relative name like 'feature/x'), or null if it is. */
export function refNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'not a string';
  if (name.length === 0) return 'is empty';
  if (name.length > 1024) return 'is longer than 1024 characters';
  if (name === '@') return "is '@'";
  if (name.startsWith('-')) return "starts with '-'";
  if (name.startsWith('/') || name.endsWith('/')) return "starts or ends with '/'";
  if (name.endsWith('.')) return "ends with '.'";
  if (name.includes('//')) return "contains '//'";
  if (name.includes('..')) return "contains '..'";
  if (name.includes('@{')) return "contains '@{'";
  // eslint-disable-next-line no-control-regex
  const bad = /[\x00-\x20\x7f~^:?*[\\]/.exec(name);
  if (bad) return `contains the forbidden character ${JSON.stringify(bad[0])}`;
  for (const c of name.split('/')) {
    if (c.startsWith('.')) return `has a component starting with '.' (${JSON.stringify(c)})`;
    if (c.endsWith('.lock')) return `has a component ending with '.lock' (${JSON.stringify(c)})`;
  }
  return null;
}

/** True for a valid full ref name: 'HEAD' or 'refs/<a>/<b>…'. */
export function isValidRefName(name: unknown): name is string {
  if (name === 'HEAD') return true;
  return typeof name === 'string' && name.startsWith('refs/') && name.length > 5 && refNameProblem(name) === null;
}

/** Throws InvalidArgumentError unless `name` is 'HEAD' or a valid 'refs/…' name. */
export function checkRefName(name: unknown, what = 'ref name'): string {
  if (name === 'HEAD') return name;
  if (typeof name !== 'string') throw new InvalidArgumentError(`Invalid ${what}: expected a string`, { name });
  if (!name.startsWith('refs/') || name.length <= 5)
    throw new InvalidArgumentError(`Invalid ${what} ${JSON.stringify(name)}: full ref names start with 'refs/'`, {
      name,
    });
  const p = refNameProblem(name);
  if (p) throw new InvalidArgumentError(`Invalid ${what} ${JSON.stringify(name)}: ${p}`, { name });
  return name;
}

/** Validates a short branch or tag name ('main', 'feature/x') the way `git branch`/`git tag` do. */
export function checkShortRefName(name: unknown, what = 'branch name'): string {
  const p = refNameProblem(name);
  if (p) throw new InvalidArgumentError(`Invalid ${what} ${JSON.stringify(name)}: ${p}`, { name });
  if (name === 'HEAD') throw new InvalidArgumentError(`Invalid ${what} "HEAD": reserved`, { name });
  return name as string;
}
