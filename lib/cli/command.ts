/**
 * The shape of a `coral` subcommand (lib/cli/commands/<name>.ts), the errors
 * only the CLI raises, and the argv helpers the command modules share.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CoralError, invalidParameter, Repository } from '../index';
import type { Io } from './output';

/** A command line coral cannot run: unknown command or option, missing value, stray argument. */
export class UsageError extends CoralError {
  static override readonly code = 'CORAL_USAGE';
}

/** `coral fsck` found problems (exit 9 through the exit-code table). */
export class FsckFailedError extends CoralError {
  static override readonly code = 'CORAL_FSCK_FAILED';
}

/** `coral config <key>` or `--unset <key>` of a key that is not set (exit 1, as git's). */
export class ConfigNotSetError extends CoralError {
  static override readonly code = 'CORAL_CONFIG_NOT_SET';
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

/** The `--json` option most commands take. */
export const JSON_OPT: OptSpec = { json: { type: 'boolean' } };
/** `-q`/`--quiet`, as git's: nothing on stdout and no progress; errors and warnings still go to stderr (main.ts). */
export const QUIET_OPT: OptSpec = { quiet: { type: 'boolean', short: 'q' } };

/** Opens the repository at (or above) the working directory, runs `fn`, and closes it. */
export async function withRepo<T>(ctx: Ctx, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const repo = await Repository.open(ctx.cwd);
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}

/** Command-line paths, absolute (relative ones are taken from the working directory). */
export function resolvePaths(ctx: Ctx, ps: string[]): string[] {
  return ps.map((p) => path.resolve(ctx.cwd, p));
}

/** "k=v" pairs; values parsed as JSON when they look like numbers/booleans. */
export function parsePairs(list: string[] | undefined, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw invalidParameter(what, 'key=value', kv);
    const v = kv.slice(i + 1);
    let val: unknown = v;
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v) || v === 'true' || v === 'false') val = JSON.parse(v);
    out[kv.slice(0, i)] = val;
  }
  return out;
}

/** Resolves at the first SIGINT or SIGTERM (a long-running command's stop), with both handlers removed. */
export function untilStopSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
