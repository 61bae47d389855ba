/**
 * The `coral` command line: argv -> command lookup -> run -> exit code. Each
 * command lives in lib/cli/commands/<name>.ts, parses its argv, calls the
 * public API (lib/index.ts) and formats the result; every command that prints
 * data takes --json. Errors print one line, `coral: <message> (<code>)`, and
 * the exit code comes from the error code (exitCodeFor, lib/cli/output.ts).
 */
import { UsageError, parseCommandArgs, type Command, type Ctx } from './command';
import { defaultIo, errorLine, exitCodeFor, quietIo, type Io } from './output';

/**
 * Commands by name: a Map, so `coral constructor` or `coral __proto__` is an unknown command. Each
 * command's module is loaded when it runs: a process runs one command, and loading all of them (with
 * the library parts each one imports: the server, the transports, merge, ingest) cost `coral status`
 * a third of its start-up.
 */
const commands = new Map<string, () => Promise<Command>>([
  ['init', async () => (await import('./commands/init')).initCommand],
  ['add', async () => (await import('./commands/add')).addCommand],
  ['rm', async () => (await import('./commands/rm')).rmCommand],
  ['reset', async () => (await import('./commands/reset')).resetCommand],
  ['commit', async () => (await import('./commands/commit')).commitCommand],
  ['status', async () => (await import('./commands/status')).statusCommand],
  ['log', async () => (await import('./commands/log')).logCommand],
  ['show', async () => (await import('./commands/show')).showCommand],
  ['diff', async () => (await import('./commands/diff')).diffCommand],
  ['checkout', async () => (await import('./commands/checkout')).checkoutCommand],
  ['branch', async () => (await import('./commands/branch')).branchCommand],
  ['tag', async () => (await import('./commands/tag')).tagCommand],
  ['gc', async () => (await import('./commands/gc')).gcCommand],
  ['fsck', async () => (await import('./commands/fsck')).fsckCommand],
  ['stats', async () => (await import('./commands/stats')).statsCommand],
  ['compare', async () => (await import('./commands/compare')).compareCommand],
  ['config', async () => (await import('./commands/config')).configCommand],
  ['demo', async () => (await import('./commands/demo')).demoCommand],
  ['merge', async () => (await import('./commands/merge')).mergeCommand],
  ['similar', async () => (await import('./commands/similar')).similarCommand],
  ['remote', async () => (await import('./commands/remote')).remoteCommand],
  ['push', async () => (await import('./commands/push')).pushCommand],
  ['fetch', async () => (await import('./commands/fetch')).fetchCommand],
  ['pull', async () => (await import('./commands/pull')).pullCommand],
  ['clone', async () => (await import('./commands/clone')).cloneCommand],
  ['sync', async () => (await import('./commands/sync')).syncCommand],
  ['publish', async () => (await import('./commands/publish')).publishCommand],
  ['hub', async () => (await import('./commands/hub')).hubCommand],
  ['experiment', async () => (await import('./commands/experiment')).experimentCommand],
  ['watch', async () => (await import('./commands/watch')).watchCommand],
  ['git', async () => (await import('./commands/git')).gitCommand],
  ['serve', async () => (await import('./commands/serve')).serveCommand],
  ['ingest', async () => (await import('./commands/ingest')).ingestCommand],
  ['ui', async () => (await import('./commands/ui')).uiCommand],
]);

async function help(io: Io): Promise<void> {
  const names = [...commands.keys()].sort();
  const all = await Promise.all(names.map((n) => commands.get(n)!()));
  io.out('usage: coral <command> [<args>]\n\nVersion control for neural-network weights.\n\nCommands:\n');
  names.forEach((n, i) => io.out(`  ${n.padEnd(10)} ${all[i].summary}\n`));
  io.out("\nRun `coral <command> --help` for a command's options.\n");
}

/** Runs one `coral` command line; resolves to its exit code (never rejects for a CoralError). */
export async function main(argv: string[], io: Io = defaultIo(), cwd = process.cwd()): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (!name || name === 'help' || name === '--help' || name === '-h') {
      await help(io);
      return name ? 0 : 1;
    }
    if (name === '--version' || name === 'version') {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      io.out(`coral ${(require('../../package.json') as { version: string }).version}\n`);
      return 0;
    }
    const load = commands.get(name);
    if (!load) throw new UsageError(`'${name}' is not a coral command; see \`coral help\``);
    const cmd = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`usage: ${cmd.usage}\n\n${cmd.summary}\n`);
      return 0;
    }
    const dd = rest.indexOf('--');
    const before = dd >= 0 ? rest.slice(0, dd) : rest;
    const after = dd >= 0 ? rest.slice(dd + 1) : [];
    const parsed = parseCommandArgs(name, cmd, cmd.preprocess ? cmd.preprocess(before) : before);
    const cio = parsed.flags.quiet === true ? quietIo(io) : io;
    const code = await cmd.run({ io: cio, flags: parsed.flags, args: parsed.args, rest: after, cwd });
    return typeof code === 'number' ? code : 0;
  } catch (e) {
    io.err(errorLine(e));
    if (process.env.CORAL_DEBUG && e instanceof Error) io.err(`${e.stack}\n`);
    return exitCodeFor(e);
  }
}

export type { Command, Ctx };
