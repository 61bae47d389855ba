/**
 * The `--resolve GLOB=STRATEGY` rules that pick a strategy per tensor name,
 * and the tensor-name globs they use.
 *
 * @example
 * const rules = parseResolveRules(['encoder.*=ours', '*.bias=average']);
 * pickStrategy('decoder.0.bias', rules, 'fail'); // 'average'
 */
import { InvalidArgumentError, invalidParameter } from '../errors';
import { isMergeStrategy, MERGE_STRATEGIES, type MergeStrategyName } from './strategies/index';

/** One `GLOB=STRATEGY` rule. */
export interface ResolveRule {
  readonly pattern: string;
  readonly strategy: MergeStrategyName;
  /** Anchored regular expression compiled from the glob. */
  readonly regex: RegExp;
}

/**
 * Compiles a tensor-name glob. `*` matches any run of characters, dots
 * included (so `encoder.*` covers `encoder.layer.0.weight`); `?` matches one
 * character; `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]` are character classes; `\`
 * escapes the next character. The whole name must match.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      re += '[\\s\\S]*';
    } else if (c === '?') {
      re += '[\\s\\S]';
    } else if (c === '\\') {
      if (i + 1 >= glob.length) throw invalidParameter('glob', 'pattern not ending in a lone backslash', glob);
      re += escapeRe(glob[++i]);
    } else if (c === '[') {
      let j = i + 1;
      let cls = '';
      if (glob[j] === '!' || glob[j] === '^') {
        cls += '^';
        j++;
      }
      let first = true;
      for (; j < glob.length && (glob[j] !== ']' || first); j++) {
        first = false;
        const d = glob[j];
        if (d === '\\' && j + 1 < glob.length) cls += escapeRe(glob[++j]);
        else if (d === '-') cls += '-';
        else cls += escapeRe(d);
      }
      if (j >= glob.length) throw invalidParameter('glob', 'pattern with closed [ ] classes', glob);
      try {
        new RegExp(`[${cls}]`);
      } catch {
        throw invalidParameter('glob', 'pattern with valid [ ] classes', glob);
      }
      re += `[${cls}]`;
      i = j;
    } else {
      re += escapeRe(c);
    }
  }
  return new RegExp(re + '$');
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c;
}

/**
 * Parses `--resolve` specs of the form `GLOB=STRATEGY` (split at the last `=`,
 * so globs may contain `=`). Throws InvalidArgumentError for a missing `=`, an
 * empty glob, a malformed glob or an unknown strategy.
 *
 * @example
 * parseResolveRules(['encoder.*=ours', '*.bias=average'])
 */
export function parseResolveRules(specs: readonly string[]): ResolveRule[] {
  if (!Array.isArray(specs)) throw invalidParameter('resolve', 'array of GLOB=STRATEGY strings', specs);
  return specs.map((spec) => {
    if (typeof spec !== 'string') throw invalidParameter('resolve', 'GLOB=STRATEGY string', spec);
    const at = spec.lastIndexOf('=');
    const pattern = at < 0 ? '' : spec.slice(0, at).trim();
    const strategy = at < 0 ? '' : spec.slice(at + 1).trim();
    if (at < 0 || pattern === '') throw invalidParameter('resolve', 'GLOB=STRATEGY (e.g. "encoder.*=ours")', spec);
    if (!isMergeStrategy(strategy))
      throw invalidParameter('resolve strategy', `one of ${MERGE_STRATEGIES.join(' ')}`, strategy);
    let regex: RegExp;
    try {
      regex = globToRegExp(pattern);
    } catch (e) {
      if (e instanceof InvalidArgumentError) throw invalidParameter('resolve', 'GLOB=STRATEGY with a valid glob', spec);
      throw e;
    }
    return Object.freeze({ pattern, strategy, regex });
  });
}

/**
 * The strategy for one tensor: the LAST rule whose glob matches the whole
 * name wins (later `--resolve` flags override earlier ones, as later lines do
 * in .gitattributes); no match gives `defaultStrategy`.
 */
export function pickStrategy(
  tensorName: string,
  rules: readonly ResolveRule[],
  defaultStrategy: MergeStrategyName,
): MergeStrategyName {
  for (let i = rules.length - 1; i >= 0; i--) if (rules[i].regex.test(tensorName)) return rules[i].strategy;
  return defaultStrategy;
}
