/**
 * The `coral` command line: argv -> command lookup -> run -> exit code. Each
 * command lives in lib/cli/commands/<name>.ts, parses its argv, calls the
 * public API (lib/index.ts) and formats the result; every command that prints
 * data takes --json. Errors print one line, `coral: <message> (<code>)`, and
 * the exit code comes from the error code (exitCodeFor, lib/cli/output.ts).
 */
import { UsageError, parseCommandArgs, type Command, type Ctx } from './command';
import { addCommand } from './commands/add';
import { branchCommand } from './commands/branch';
import { checkoutCommand } from './commands/checkout';
import { commitCommand } from './commands/commit';
import { compareCommand } from './commands/compare';
import { configCommand } from './commands/config';
import { demoCommand } from './commands/demo';
import { diffCommand } from './commands/diff';
import { fsckCommand } from './commands/fsck';
import { gcCommand } from './commands/gc';
import { initCommand } from './commands/init';
import { logCommand } from './commands/log';
import { resetCommand } from './commands/reset';
import { rmCommand } from './commands/rm';
import { showCommand } from './commands/show';
import { similarCommand } from './commands/similar';
import { statsCommand } from './commands/stats';
import { statusCommand } from './commands/status';
import { tagCommand } from './commands/tag';
import { mergeCommand } from './commands/merge';
import { cloneCommand } from './commands/clone';
import { fetchCommand } from './commands/fetch';
import { pullCommand } from './commands/pull';
import { pushCommand } from './commands/push';
import { remoteCommand } from './commands/remote';
import { syncCommand } from './commands/sync';
import { publishCommand } from './commands/publish';
import { hubCommand } from './commands/hub';
import { experimentCommand } from './commands/experiment';
import { watchCommand } from './commands/watch';
import { gitCommand } from './commands/git';
import { serveCommand } from './commands/serve';
import { ingestCommand } from './commands/ingest';
import { uiCommand } from './commands/ui';
import { defaultIo, errorLine, exitCodeFor, type Io } from './output';

/** Commands by name: a Map, so `coral constructor` or `coral __proto__` is an unknown command. */
const commands = new Map<string, Command>([
  ['init', initCommand],
  ['add', addCommand],
  ['rm', rmCommand],
  ['reset', resetCommand],
  ['commit', commitCommand],
  ['status', statusCommand],
  ['log', logCommand],
  ['show', showCommand],
  ['diff', diffCommand],
  ['checkout', checkoutCommand],
  ['branch', branchCommand],
  ['tag', tagCommand],
  ['gc', gcCommand],
  ['fsck', fsckCommand],
  ['stats', statsCommand],
  ['compare', compareCommand],
  ['config', configCommand],
  ['demo', demoCommand],
  ['merge', mergeCommand],
  ['similar', similarCommand],
  ['remote', remoteCommand],
  ['push', pushCommand],
  ['fetch', fetchCommand],
  ['pull', pullCommand],
  ['clone', cloneCommand],
  ['sync', syncCommand],
  ['publish', publishCommand],
  ['hub', hubCommand],
  ['experiment', experimentCommand],
  ['watch', watchCommand],
  ['git', gitCommand],
  ['serve', serveCommand],
  ['ingest', ingestCommand],
  ['ui', uiCommand],
]);

function help(io: Io): void {
  io.out('usage: coral <command> [<args>]\n\nVersion control for neural-network weights.\n\nCommands:\n');
  for (const [n, c] of [...commands].sort()) io.out(`  ${n.padEnd(10)} ${c.summary}\n`);
  io.out("\nRun `coral <command> --help` for a command's options.\n");
}

/** Runs one `coral` command line; resolves to its exit code (never rejects for a CoralError). */
export async function main(argv: string[], io: Io = defaultIo(), cwd = process.cwd()): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === 'help' || name === '--help' || name === '-h') {
      help(io);
      return name ? 0 : 1;
    }
    if (name === '--version' || name === 'version') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      io.out(`coral ${(require('../../package.json') as { version: string }).version}\n`);
      return 0;
    }
    const cmd = commands.get(name);
    if (!cmd) throw new UsageError(`'${name}' is not a coral command; see \`coral help\``);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`usage: ${cmd.usage}\n\n${cmd.summary}\n`);
      return 0;
    }
    const dd = rest.indexOf('--');
    const before = dd >= 0 ? rest.slice(0, dd) : rest;
    const after = dd >= 0 ? rest.slice(dd + 1) : [];
    const parsed = parseCommandArgs(name, cmd, cmd.preprocess ? cmd.preprocess(before) : before);
    const code = await cmd.run({ io, flags: parsed.flags, args: parsed.args, rest: after, cwd });
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    io.err(errorLine(e));
    if (process.env.CORAL_DEBUG && e instanceof Error) io.err(`${e.stack}\n`);
    return exitCodeFor(e);
  }
}

export type { Command, Ctx };
