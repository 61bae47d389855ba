/** The shape of a `coral` subcommand, shared by lib/cli/main.ts and the command modules. */
import type { Io } from './output';

export type Flags = Record<string, string | boolean | string[] | undefined>;
export type OptSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

export interface Command {
  summary: string;
  usage: string;
  options: OptSpec;
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

