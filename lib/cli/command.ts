/** The shape of a `coral` subcommand, shared by lib/cli/main.ts and the command modules. */
import { parseArgs } from 'node:util';
import { CoralError } from '../errors';
import type { Io } from './output';

/** A command line coral cannot run: unknown command or option, missing value, stray argument. */
export class UsageError extends CoralError {
  static override readonly code = 'CORAL_USAGE';
}

export type Flags = Record<string, string | boolean | string[] | undefined>;
export type OptSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Command {
  summary: string;
  usage: string;
  options: OptSpec;
  /** Most positional arguments (before `--`) the command takes; absent: any number. */
  maxArgs?: number;
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

/**
 * Parses a command's argv (the part before `--`) against its options, with
 * errors in coral's words rather than node:util's:
 * `unknown option '--frobnicate' for 'coral log' (see 'coral log --help')`.
 */
export function parseCommandArgs(
  name: string,
  cmd: Pick<Command, 'options' | 'maxArgs'>,
  argv: string[],
): { flags: Flags; args: string[] } {
  const see = `for 'coral ${name}' (see 'coral ${name} --help')`;
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    options: cmd.options,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const spec = Object.prototype.hasOwnProperty.call(cmd.options, t.name) ? cmd.options[t.name] : undefined;
    if (!spec) throw new UsageError(`unknown option '${t.rawName}' ${see}`, { option: t.rawName });
    if (spec.type === 'string' && t.value === undefined)
      throw new UsageError(`option '${t.rawName}' needs a value ${see}`, { option: t.rawName });
    if (spec.type === 'boolean' && t.value !== undefined)
      throw new UsageError(`option '${t.rawName}' takes no value ${see}`, { option: t.rawName });
  }
  if (cmd.maxArgs !== undefined && positionals.length > cmd.maxArgs)
    throw new UsageError(`unexpected argument '${positionals[cmd.maxArgs]}' ${see}`, {
      argument: positionals[cmd.maxArgs],
    });
  return { flags: values, args: positionals };
}
