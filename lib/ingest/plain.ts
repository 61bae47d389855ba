/**
 * The plain-file rule: coral never executes a checkpoint and never refuses to
 * version one. A file it cannot parse as a checkpoint (a whole-model
 * `torch.save(model)` pickle that needs arbitrary globals, a cut-off
 * .safetensors, an unknown dtype, a TorchScript archive) is stored as a plain
 * file: its bytes, unparsed, restored byte-for-byte on checkout. The caller
 * gets a one-line reason to show the user; `strict` turns the fallback back
 * into the parser's error, for pipelines that want every checkpoint parsed.
 *
 * Files that never looked like checkpoints (scripts, JSON, no checkpoint
 * extension and no checkpoint magic) are plain files without a reason.
 *
 * @example
 * const { layout, plainFile } = await scanOrPlain('/w/model.pt', 'model.pt', {});
 * if (plainFile) console.log(`model.pt: stored as a plain file: ${plainFile}`);
 */
import * as path from 'node:path';
import { CoralError, FormatError, LimitExceededError, UnsafePickleError, UnsupportedFormatError } from '../errors';
import { scanCheckpoint, type CheckpointLayout } from '../formats';

/** Extensions that promise a checkpoint: a file with one that does not parse gets a reason. */
const CHECKPOINT_EXTENSIONS = new Set(['safetensors', 'pt', 'pth', 'ckpt', 'npy', 'npz', 'onnx', 'gguf']);

/** Parser errors that mean "not a checkpoint we can read", as opposed to I/O failures. */
const PARSE_ERRORS = [FormatError, UnsupportedFormatError, UnsafePickleError, LimitExceededError];

function isParseError(e: unknown): e is CoralError {
  return PARSE_ERRORS.some((C) => e instanceof C);
}

/** The parser's message without the file-name prefix it starts with (the caller names the file). */
function reasonOf(e: CoralError, absPath: string, relPath: string): string {
  let m = e.message;
  for (const p of [absPath, relPath, path.basename(absPath)]) if (m.startsWith(`${p}: `)) m = m.slice(p.length + 2);
  return m.split('\n')[0];
}

export interface ScanResult {
  layout: CheckpointLayout;
  /** Why the file is stored as a plain file, or undefined when parsed (or never a checkpoint). */
  plainFile?: string;
}

/**
 * Scans `absPath` as a checkpoint; on a parse failure returns the plain-file
 * layout (format 'raw', no segments) and the reason, or rethrows when `strict`.
 */
export async function scanOrPlain(absPath: string, relPath: string, opts: { strict?: boolean }): Promise<ScanResult> {
  let layout: CheckpointLayout;
  try {
    layout = await scanCheckpoint(absPath);
  } catch (e) {
    if (!isParseError(e)) throw e;
    const reason = reasonOf(e, absPath, relPath);
    if (opts.strict) {
      e.message = `${relPath}: cannot be parsed as a checkpoint (${reason}); without --strict it would be stored as a plain file`;
      throw e;
    }
    return { layout: await scanCheckpoint(absPath, { format: 'raw' }), plainFile: reason };
  }
  const ext = /\.([A-Za-z0-9]+)$/.exec(relPath)?.[1].toLowerCase() ?? '';
  if (layout.format === 'raw' && CHECKPOINT_EXTENSIONS.has(ext)) {
    const reason = `not recognised as a .${ext} checkpoint`;
    if (opts.strict)
      throw new UnsupportedFormatError(`${relPath}: ${reason}; without --strict it would be stored as a plain file`, {
        path: relPath,
      });
    return { layout, plainFile: reason };
  }
  return { layout };
}
