/** The shape of a `coral` subcommand, shared by lib/cli/main.ts and the command modules. */
import type { Io } from './output';

export type Flags = Record<string, string | boolean | string[] | undefined>;
export type OptSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Command {
  summary: string;
  usage: string;
  options: OptSpec;
  /** Rewrites argv (before `--`) ahead of option parsing, e.g. `log -3` to `log --max-count=3`. */
  preprocess?: (argv: string[]) => string[];
  run: (ctx: Ctx) => Promise<number | void>;
}

export interface Ctx {
  io: Io;
  flags: Flags;
  args: string[];
  /** Arguments after a bare `--` (pathspecs). */
  rest: string[];
  cwd: string;
}


/**
 * The message of repeated `-m` options: each one a paragraph, joined by a blank
 * line, as git does (`-m a -m b` is "a\n\nb"). Undefined when none was given.
 */
export function messageFlag(v: Flags[string]): string | undefined {
  if (v === undefined || typeof v === 'boolean') return undefined;
  return typeof v === 'string' ? v : v.join('\n\n');
}
