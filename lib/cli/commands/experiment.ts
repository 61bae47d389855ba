/**
 * `coral experiment start|log|finish|list|show|compare`: training runs as
 * branches exp/<name> with parameters and per-step metrics (the library's
 * ExperimentTracker; docs/training.md).
 */
import * as path from 'node:path';
import { ExperimentTracker, invalidParameter } from '../../index';
import { JSON_OPT, UsageError, parsePairs, withRepo, type Command, type Ctx } from '../command';
import { fmtNum, print, printJson } from '../output';
import { short } from '../render';

const USAGE = [
  'coral experiment start <name> [--param <k=v>]... [--from <rev>] [-m <message>]',
  'coral experiment log <name> --step <n> --metric <k=v>...',
  'coral experiment finish <name> [--failed]',
  'coral experiment list [--json]',
  'coral experiment show <name> [--metric <name>] [--json]',
  'coral experiment compare <name>... [--metric <name>] [--mode min|max] [--plot <file.svg|file.png>] [--json]',
].join('\n       ');

function numbers(pairs: Record<string, unknown>, what: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(pairs)) {
    if (typeof v !== 'number') throw invalidParameter(`${what} ${k}`, 'number', v);
    out[k] = v;
  }
  return out;
}

const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '-' : fmtNum(v));

async function run(ctx: Ctx, tracker: ExperimentTracker): Promise<void> {
  const [sub, ...names] = ctx.args;
  const one = () => {
    if (names.length !== 1) throw new UsageError(`usage: coral experiment ${sub} <name>`);
    return names[0];
  };
  switch (sub) {
    case 'start': {
      const name = one();
      const params = parsePairs(ctx.flags.param as string[] | undefined, '--param');
      await tracker.start(name, {
        params,
        ...(ctx.flags.from ? { from: ctx.flags.from as string } : {}),
        ...(ctx.flags.message ? { message: ctx.flags.message as string } : {}),
      });
      const d = await tracker.show(name);
      if (ctx.flags.json) return printJson(ctx, d);
      return print(ctx, `started experiment ${name} on branch ${d.branch} (${short(d.id)})`);
    }
    case 'log': {
      const name = one();
      const stepRaw = ctx.flags.step as string | undefined;
      if (stepRaw === undefined || !/^\d+$/.test(stepRaw))
        throw invalidParameter('--step', 'non-negative integer', stepRaw);
      const metrics = numbers(parsePairs(ctx.flags.metric as string[] | undefined, '--metric'), '--metric');
      if (!Object.keys(metrics).length) throw new UsageError('coral experiment log: give at least one --metric k=v');
      const r = tracker.run(name);
      r.log(Number(stepRaw), metrics);
      await r.flush();
      if (ctx.flags.json) return printJson(ctx, { run: name, step: Number(stepRaw), metrics });
      return print(ctx, `logged step ${stepRaw} to ${name}`);
    }
    case 'finish': {
      const name = one();
      await tracker.run(name).finish(ctx.flags.failed ? 'failed' : 'finished');
      return print(ctx, `experiment ${name}: ${ctx.flags.failed ? 'failed' : 'finished'}`);
    }
    case 'list': {
      const runs = await tracker.list();
      if (ctx.flags.json) return printJson(ctx, runs);
      for (const r of runs) {
        const last = Object.entries(r.last)
          .map(([k, v]) => `${k}=${fmtNum(v)}`)
          .join(' ');
        const params = Object.entries(r.params)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(' ');
        print(ctx, `${r.name}\t${r.status}\t${r.points} points\tstep ${r.lastStep ?? '-'}\t${last}\t[${params}]`);
      }
      return;
    }
    case 'show': {
      const d = await tracker.show(one());
      if (ctx.flags.json) return printJson(ctx, d);
      const metric = (ctx.flags.metric as string[] | undefined)?.[0];
      print(ctx, `experiment ${d.name}  (${d.branch}, ${d.status}, ${short(d.id)})`);
      print(ctx, `from:   ${d.from ? short(d.from) : '(empty)'}`);
      for (const [k, v] of Object.entries(d.params))
        print(ctx, `param   ${k} = ${typeof v === 'string' ? v : JSON.stringify(v)}`);
      const keys = metric ? [metric] : [...new Set(d.series.flatMap((p) => Object.keys(p.metrics)))];
      print(ctx, ['step', ...keys].join('\t'));
      for (const p of d.series) print(ctx, [p.step, ...keys.map((k) => fmt(p.metrics[k]))].join('\t'));
      return;
    }
    case 'compare': {
      if (!names.length) throw new UsageError('usage: coral experiment compare <name>... [--metric <name>]');
      const metric = (ctx.flags.metric as string[] | undefined)?.[0];
      const mode = ctx.flags.mode as string | undefined;
      if (mode !== undefined && mode !== 'min' && mode !== 'max')
        throw invalidParameter('--mode', "'min' or 'max'", mode);
      const cmp = await tracker.compare(names, { metric, mode });
      const plot = ctx.flags.plot as string | undefined;
      if (plot) {
        const file = path.resolve(ctx.cwd, plot);
        if (!/\.(svg|png)$/i.test(file)) throw invalidParameter('--plot', 'a file name ending in .svg or .png', plot);
        await tracker.plot(names, { metric: cmp.metric, file });
      }
      if (ctx.flags.json) return printJson(ctx, { ...cmp, ...(plot ? { plot } : {}) });
      print(ctx, `metric: ${cmp.metric}`);
      print(ctx, ['run', 'points', 'last', 'best', 'best step', ...cmp.differingParams].join('\t'));
      for (const r of cmp.runs)
        print(
          ctx,
          [
            r.name,
            r.points.length,
            fmt(r.last),
            fmt(r.best),
            r.bestStep ?? '-',
            ...cmp.differingParams.map((k) => JSON.stringify(r.params[k] ?? null)),
          ].join('\t'),
        );
      if (plot) print(ctx, `plot written to ${plot}`);
      return;
    }
    default:
      throw new UsageError(`usage: ${USAGE}`);
  }
}

export const experimentCommand: Command = {
  summary: 'Track training runs: parameters and per-step metrics on exp/<name> branches; compare and plot them',
  usage: USAGE,
  options: {
    param: { type: 'string', multiple: true },
    from: { type: 'string' },
    message: { type: 'string', short: 'm' },
    step: { type: 'string' },
    metric: { type: 'string', multiple: true },
    mode: { type: 'string' },
    plot: { type: 'string' },
    failed: { type: 'boolean' },
    ...JSON_OPT,
  },
  async run(ctx) {
    await withRepo(ctx, (repo) => run(ctx, new ExperimentTracker(repo)));
  },
};
