/**
 * The server's settings: the `serve.*` config keys (lib/refs/config-schema.ts, docs/config.md) in
 * `.coral-serve/config` beside the served repositories (a JSON object like a repository's config:
 * `{"serve": {"maxUploadBytes": 1073741824}}`), shared by every server over that root or bucket.
 *
 * @example
 * await setServeConfig({ root: '/srv/coral' }, 'serve.maxUploadBytes', '1073741824');
 * (await readServeConfig({ root: '/srv/coral' }))['serve.maxUploadBytes'] // 1073741824
 */
import { AlreadyExistsError, InvalidArgumentError, invalidParameter } from '../errors';
import type { ConfigValue } from '../refs/config';
import { checkConfigValue } from '../refs/config-schema';
import { sharedFile, type ServeLocation } from './shared-file';

export const SERVE_CONFIG_FILE = 'config';

function parse(text: string, where: string): Record<string, ConfigValue> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgumentError(`${where} is not valid JSON: ${(e as Error).message}`, { path: where });
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new InvalidArgumentError(`${where} must hold a JSON object`, { path: where });
  return doc as Record<string, ConfigValue>;
}

/** Every `serve.*` key set, checked against the schema (dotted key -> value). */
export async function readServeConfig(loc: ServeLocation): Promise<Record<string, ConfigValue>> {
  const f = await sharedFile(loc, SERVE_CONFIG_FILE);
  try {
    const cur = await f.read();
    if (!cur) return {};
    const serve = parse(cur.text, f.where).serve;
    const out: Record<string, ConfigValue> = {};
    if (serve && typeof serve === 'object' && !Array.isArray(serve))
      for (const [k, v] of Object.entries(serve)) out[`serve.${k}`] = checkConfigValue(`serve.${k}`, v);
    return out;
  } finally {
    f.close();
  }
}

/** Sets (value: a string as typed, or a value) or removes (null) one `serve.*` key; returns what was stored. */
export async function setServeConfig(
  loc: ServeLocation,
  key: string,
  value: ConfigValue | null,
): Promise<ConfigValue | null> {
  if (typeof key !== 'string' || !key.startsWith('serve.') || key.split('.').length !== 2)
    throw invalidParameter('key', 'a serve.* config key', key);
  const v = value === null ? null : checkConfigValue(key, value);
  const f = await sharedFile(loc, SERVE_CONFIG_FILE);
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await f.read();
      const doc = cur ? parse(cur.text, f.where) : {};
      const serve = { ...((doc.serve as Record<string, ConfigValue> | undefined) ?? {}) };
      const name = key.slice('serve.'.length);
      if (v === null) delete serve[name];
      else serve[name] = v;
      doc.serve = serve;
      if (await f.write(JSON.stringify(doc, null, 2) + '\n', cur?.version ?? null)) return v;
    }
    throw new AlreadyExistsError(`${f.where} kept changing; try again`);
  } finally {
    f.close();
  }
}
