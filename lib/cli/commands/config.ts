/** `coral config [--list]`, `coral config <key> [<value>]`, `coral config --unset <key>`. */
import { configKeyInfo, setConfigValue } from '../../index';
import { ConfigNotSetError, JSON_OPT, withRepo, type Command } from '../command';
import { print, printJson } from '../output';

const text = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

export const configCommand: Command = {
  summary: 'Get or set repository configuration',
  usage: 'coral config [--list] | coral config <key> [<value>] | coral config --unset <key>',
  maxArgs: 2,
  options: { list: { type: 'boolean', short: 'l' }, unset: { type: 'boolean' }, ...JSON_OPT },
  async run(ctx) {
    await withRepo(ctx, async (repo) => {
      if (ctx.flags.list || !ctx.args.length) {
        const entries = repo.config.entries();
        if (ctx.flags.json) return printJson(ctx, Object.fromEntries(entries));
        for (const [k, v] of entries) print(ctx, `${k}=${text(v)}`);
        return;
      }
      const key = ctx.args[0];
      if (ctx.flags.unset) {
        if (!(await repo.config.unset(key))) throw new ConfigNotSetError(`config key '${key}' is not set`);
        return;
      }
      if (ctx.args.length === 1) {
        const v = repo.config.get(key);
        // A value already in the file prints even if its key is unknown (written before validation).
        if (v === undefined) {
          // As git exits 1 for a missing key, but says why: unknown, or known and not set (with its default).
          const def = configKeyInfo(key)?.default;
          throw new ConfigNotSetError(
            `config key '${key}' is not set${def !== undefined ? ` (default: ${JSON.stringify(def)})` : ''}`,
          );
        }
        print(ctx, text(v));
        return;
      }
      await setConfigValue(repo.config, key, ctx.args[1]);
    });
  },
};
