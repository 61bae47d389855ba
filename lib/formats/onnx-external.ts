/**
 * ONNX external data files: a model above 2 GB (or exported with
 * `save_as_external_data`) keeps tensor payloads in a separate file named by
 * each tensor's `external_data` `location`, relative to the model's directory.
 *
 * How the pair is stored: both files are ordinary tree entries. The .onnx is
 * an `onnx` entry whose skeleton holds the references (its metadata lists the
 * data files under `onnx.external_data`); the data file is an `onnx-external`
 * entry whose segments are the referenced byte ranges, named like the
 * tensors, so it deduplicates and delta-encodes tensor by tensor like any
 * checkpoint (its metadata names the model under `onnx.model`). The data
 * file's layout comes from the model that references it: scanning a file that
 * no format claims looks for `.onnx` files in its directory and up to two
 * directories above whose references name it. A data file stored without its model is a raw file
 * (byte-exact, deduplicated by content-defined chunks only).
 *
 * @example
 * const layout = await scanOnnxExternalData('/w/model.onnx.data'); // null when no sibling .onnx names it
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CoralError } from '../errors';
import { FileSource } from './io';
import type { CheckpointLayout } from './layout-types';
import { type OnnxModelInfo, onnxExternalLayout, readOnnxTensors } from './onnx';

/** Sibling models examined per directory (a directory of thousands of models is not searched). */
export const MAX_SIBLING_MODELS = 64;
/** Directories above the data file searched for its model. */
export const MAX_LEVELS_UP = 2;

interface Cached {
  size: number;
  mtimeMs: number;
  info: OnnxModelInfo | null;
}
/** Parsed sibling models by absolute path, revalidated by size and mtime (bounded). */
const cache = new Map<string, Cached>();
const CACHE_LIMIT = 256;

async function modelInfo(file: string): Promise<OnnxModelInfo | null> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch {
    return null;
  }
  const hit = cache.get(file);
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.info;
  let info: OnnxModelInfo | null;
  try {
    const src = await FileSource.open(file);
    try {
      info = await readOnnxTensors(src);
    } finally {
      await src.close();
    }
  } catch (e) {
    if (!(e instanceof CoralError)) throw e;
    info = null; // a broken sibling model names nothing
  }
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(file, { size: st.size, mtimeMs: st.mtimeMs, info });
  return info;
}

/** `.onnx` names per directory, revalidated by the directory's mtime (adding many files lists each directory once). */
const dirCache = new Map<string, { mtimeMs: number; names: string[] }>();

async function onnxFilesIn(dir: string): Promise<string[]> {
  let mtimeMs: number;
  try {
    mtimeMs = (await fsp.stat(dir)).mtimeMs;
  } catch {
    return [];
  }
  const hit = dirCache.get(dir);
  if (hit && hit.mtimeMs === mtimeMs) return hit.names;
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((n) => n.toLowerCase().endsWith('.onnx')).sort();
  } catch {
    return [];
  }
  if (dirCache.size >= CACHE_LIMIT) dirCache.delete(dirCache.keys().next().value!);
  dirCache.set(dir, { mtimeMs, names });
  return names;
}

/**
 * The `onnx-external` layout of `dataPath` when a `.onnx` file in its directory
 * references it, else null. FormatError when that model's references do not
 * fit the file (past its end, overlapping).
 */
export async function scanOnnxExternalData(dataPath: string, fileSize: number): Promise<CheckpointLayout | null> {
  const abs = path.resolve(dataPath);
  const dir = path.dirname(abs);
  if (abs.toLowerCase().endsWith('.onnx')) return null;
  // The model sits next to its data file or up to two directories above it (`location: weights/w.bin`).
  let where = dir;
  for (let up = 0; up <= MAX_LEVELS_UP; up++) {
    const names = await onnxFilesIn(where);
    for (const n of names.slice(0, MAX_SIBLING_MODELS)) {
      const model = path.join(where, n);
      const info = await modelInfo(model);
      if (!info) continue;
      for (const t of info.tensors) {
        if (t.storage !== 'external' || path.resolve(where, t.location!) !== abs) continue;
        return onnxExternalLayout(
          info,
          t.location!,
          fileSize,
          dataPath,
          path.relative(dir, model).split(path.sep).join('/'),
        );
      }
    }
    const parent = path.dirname(where);
    if (parent === where) break;
    where = parent;
  }
  return null;
}
