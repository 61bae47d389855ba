/**
 * The configuration keys coral reads, with their types, ranges and defaults,
 * so a bad value is refused when it is written (`coral config core.maxChainDepth
 * banana`) rather than at the next command that reads it.
 *
 * The sections coral owns (`core`, `similarity`, `gc`) are strict: a key not
 * listed here is refused as unknown, so a misspelling never goes unnoticed.
 * Every other section is free-form, as in git (`remote.origin.url`,
 * `merge.strategies`, your own `team.owner`), except the listed `user.*` keys,
 * which must be strings.
 *
 * `Config.set` itself stays a raw store; `setConfigValue` is the checked write.
 *
 * @example
 * await setConfigValue(repo.config, 'core.maxChainDepth', '4');   // stored as the number 4
 * await setConfigValue(repo.config, 'core.maxChainDepth', 'x');   // InvalidArgumentError
 * configKeyInfo('similarity.bits')                                 // { type: 'integer', default: 256, … }
 */
import { InvalidArgumentError, invalidParameter } from '../errors';
import type { Config, ConfigValue } from './config';

export interface ConfigKeyInfo {
  type: 'string' | 'integer' | 'number' | 'boolean';
  default?: ConfigValue;
  min?: number;
  max?: number;
  /** Integers must be a multiple of this. */
  multipleOf?: number;
  /** Written by `coral init`; not settable. */
  readOnly?: boolean;
  description: string;
}

/** Sections whose keys must be listed in CONFIG_SCHEMA. */
export const STRICT_SECTIONS: readonly string[] = ['core', 'similarity', 'gc', 'serve'];

export const CONFIG_SCHEMA: Readonly<Record<string, ConfigKeyInfo>> = Object.freeze({
  'user.name': { type: 'string', description: 'commit author name' },
  'user.email': { type: 'string', description: 'commit author email' },
  'core.formatVersion': { type: 'integer', readOnly: true, description: 'repository format version (written by init)' },
  'core.compressionLevel': {
    type: 'integer',
    default: 3,
    min: -7,
    max: 22,
    description: 'zstd level of the entropy stage',
  },
  'core.maxChainDepth': { type: 'integer', default: 8, min: 0, max: 255, description: 'longest delta chain' },
  'core.deltaAgainstParent': {
    type: 'boolean',
    default: true,
    description: "propose the parent's same-named tensor as a delta base",
  },
  'core.baseCacheBytes': {
    type: 'integer',
    default: 67108864,
    min: 0,
    description: 'LRU of decoded delta bases (bytes)',
  },
  'core.lockTimeout': {
    type: 'number',
    default: 60,
    min: 0,
    description: "seconds a command waits for another process's lock (env CORAL_LOCK_TIMEOUT wins)",
  },
  'core.useGitignore': {
    type: 'boolean',
    default: true,
    description: '.gitignore files count as ignore files besides .coralignore',
  },
  'similarity.enabled': {
    type: 'boolean',
    default: true,
    description: 'look up near-duplicate bases in the LSH index',
  },
  'similarity.bits': {
    type: 'integer',
    default: 256,
    min: 64,
    max: 1024,
    multipleOf: 64,
    description: 'fingerprint bits',
  },
  'similarity.minCosine': {
    type: 'number',
    default: 0.95,
    min: -1,
    max: 1,
    description: 'estimated cosine below which a hit is not a candidate',
  },
  'similarity.maxCandidates': {
    type: 'integer',
    default: 4,
    min: 0,
    max: 64,
    description: 'index candidates scored per tensor',
  },
  'similarity.minNumel': { type: 'integer', default: 64, min: 1, description: 'smaller tensors are not indexed' },
  'similarity.parentTrust': {
    type: 'number',
    default: 0.01,
    min: 0,
    description: "relative distance within which the parent's tensor is taken without a query",
  },
  'similarity.storeFingerprints': {
    type: 'boolean',
    default: false,
    description: 'keep fingerprints as object attributes',
  },
  'similarity.castIds': {
    type: 'boolean',
    default: true,
    description: "record the ids of F32/F64 tensors' RNE casts, so an added cast is stored without reading its base",
  },
  'gc.pruneExpire': {
    type: 'number',
    default: 3600,
    min: 0,
    description: 'seconds unreachable objects in recent packs are kept',
  },
  'gc.packLimit': {
    type: 'integer',
    default: 16,
    min: 1,
    description: 'more packs than this and gc consolidates them',
  },
  // `coral serve`: read from `.coral-serve/config` beside the served repositories (docs/serve.md).
  'serve.maxUploadBytes': {
    type: 'integer',
    default: 68719476736,
    min: 1,
    description: 'coral serve: largest request body (a pushed pack, an upload), bytes; larger is 413',
  },
  'serve.maxHeaderBytes': {
    type: 'integer',
    default: 104857600,
    min: 1,
    description: 'coral serve: largest header block of an uploaded checkpoint, bytes',
  },
  'serve.maxTensors': {
    type: 'integer',
    default: 100000,
    min: 1,
    description: 'coral serve: most tensors in one uploaded file',
  },
  'serve.maxTensorBytes': {
    type: 'integer',
    default: 17179869184,
    min: 1,
    description: 'coral serve: largest tensor (and stored object) accepted, bytes',
  },
  'serve.maxHttpHeaderBytes': {
    type: 'integer',
    default: 16384,
    min: 1024,
    description: 'coral serve: largest HTTP request header block (request line and headers), bytes; larger is 431',
  },
  'serve.tokenCacheSeconds': {
    type: 'number',
    default: 5,
    min: 0,
    description: 'coral serve over a bucket: how long the token file is trusted before it is looked at again',
  },
  'serve.shutdownGraceSeconds': {
    type: 'number',
    default: 30,
    min: 0,
    description: 'coral serve: on SIGTERM, how long requests under way may run before they are cut',
  },
});

function own(key: string): ConfigKeyInfo | undefined {
  return Object.prototype.hasOwnProperty.call(CONFIG_SCHEMA, key) ? CONFIG_SCHEMA[key] : undefined;
}

/** The schema entry of a key; null for a key of a free-form section. Throws for an unknown key of a strict section. */
export function configKeyInfo(key: string): ConfigKeyInfo | null {
  const info = own(key);
  if (info) return info;
  const section = key.split('.')[0];
  if (STRICT_SECTIONS.includes(section)) {
    const known = Object.keys(CONFIG_SCHEMA).filter((k) => k.startsWith(`${section}.`) && !CONFIG_SCHEMA[k].readOnly);
    throw new InvalidArgumentError(`unknown config key '${key}'; known ${section}.* keys: ${known.join(', ')}`, {
      key,
    });
  }
  return null;
}

/** Does coral know this key (listed in the schema)? */
export function isKnownConfigKey(key: string): boolean {
  return own(key) !== undefined;
}

const BOOL: Record<string, boolean> = {
  true: true,
  yes: true,
  on: true,
  '1': true,
  false: false,
  no: false,
  off: false,
  '0': false,
};

/**
 * Checks (and, for a string from the command line, parses) a value for `key`.
 * Listed keys get their type and range; free-form keys take any JSON value,
 * and a string that parses as JSON (`4`, `true`, `[1,2]`) is taken as that.
 */
export function checkConfigValue(key: string, value: ConfigValue): ConfigValue {
  const info = configKeyInfo(key);
  if (!info) {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value) as ConfigValue;
    } catch {
      return value;
    }
  }
  if (info.readOnly)
    throw new InvalidArgumentError(`config key '${key}' is written by \`coral init\` and cannot be set`, { key });
  const bad = (expected: string) => invalidParameter(key, expected, value);
  switch (info.type) {
    case 'string':
      if (typeof value !== 'string') throw bad('a string');
      return value;
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      const b = typeof value === 'string' ? BOOL[value.trim().toLowerCase()] : undefined;
      if (b === undefined) throw bad('a boolean (true/false)');
      return b;
    }
    default: {
      const n =
        typeof value === 'number'
          ? value
          : typeof value === 'string' && /^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$/.test(value)
            ? Number(value)
            : NaN;
      const range = `${info.min ?? '-inf'}..${info.max ?? 'inf'}`;
      const what =
        info.type === 'integer'
          ? `an integer in ${range}${info.multipleOf ? `, a multiple of ${info.multipleOf}` : ''}`
          : `a number in ${range}`;
      if (!Number.isFinite(n) || (info.type === 'integer' && !Number.isSafeInteger(n))) throw bad(what);
      if ((info.min !== undefined && n < info.min) || (info.max !== undefined && n > info.max)) throw bad(what);
      if (info.multipleOf && n % info.multipleOf !== 0) throw bad(what);
      return n;
    }
  }
}

/** The checked write: validates `value` for `key` (see checkConfigValue), then stores it. Returns what was stored. */
export async function setConfigValue(config: Config, key: string, value: ConfigValue): Promise<ConfigValue> {
  const v = checkConfigValue(key, value);
  await config.set(key, v);
  return v;
}
