/**
 * Lossy storage requests: parsing `--lossy <codec>[:param=value,...]`, and
 * the tally that turns per-object errors into a file entry's `lossy` mark.
 *
 * Lossless stays the default everywhere; a lossy codec runs only when named.
 * A request is checked once, when parsed, by encoding a small probe tensor
 * with it, so a bad parameter is an InvalidArgumentError before anything is
 * stored (the object writer then treats a codec refusal as data it cannot
 * take, e.g. NaN, and stores that tensor exactly).
 *
 * @example
 * const spec = parseLossySpec('QUANT_INT8:block=256'); // { codec: 'QUANT_INT8', options: { block: 256 } }
 * await repo.add(['model.safetensors'], { lossy: spec });
 */
import * as crypto from 'node:crypto';
import { LOSSY_CODECS, encodeSync, type CodecName } from '../codec';
import { invalidParameter } from '../errors';
import type { LossyMark } from '../models/tree';
import type { LossySpec, PutResult } from '../odb/objects';

const NUMBER_KEYS = new Set(['block', 'fraction', 'topk', 'threshold', 'rank', 'maxRank', 'energy']);

/** A probe for validating codec options: 16x16 F32, a smooth ramp (no NaN). */
function probe() {
  const f = new Float32Array(256);
  for (let i = 0; i < f.length; i++) f[i] = Math.sin(i / 7) + i / 256;
  return { dtype: 'F32' as const, shape: [16, 16], data: new Uint8Array(f.buffer) };
}

/**
 * Parses and validates a lossy request: a codec name from LOSSY_CODECS and
 * optional `key=value` knobs (LossyOptions), e.g. `LOW_RANK:rank=8`,
 * `QUANT_INT8:block=256`, `SPARSE_TOPK:fraction=0.1`.
 */
export function parseLossySpec(spec: string | LossySpec): LossySpec {
  let out: LossySpec;
  if (typeof spec === 'string') {
    const [name, params = ''] = spec.split(/:(.*)/s, 2);
    const options: Record<string, number | string> = {};
    for (const kv of params ? params.split(',') : []) {
      const i = kv.indexOf('=');
      if (i <= 0) throw invalidParameter('lossy parameter', 'key=value', kv);
      const k = kv.slice(0, i);
      const v = kv.slice(i + 1);
      if (k === 'axis') options.axis = v;
      else if (NUMBER_KEYS.has(k)) {
        const n = Number(v);
        if (v.trim() === '' || !Number.isFinite(n)) throw invalidParameter(`lossy.${k}`, 'number', v);
        options[k] = n;
      } else throw invalidParameter('lossy parameter', `one of ${[...NUMBER_KEYS, 'axis'].join(', ')}`, k);
    }
    out = { codec: name as CodecName, ...(Object.keys(options).length ? { options } : {}) };
  } else if (spec && typeof spec === 'object') {
    out = spec;
  } else {
    throw invalidParameter('lossy', 'codec name (e.g. "QUANT_INT8:block=256") or {codec, options}', spec);
  }
  if (!LOSSY_CODECS.includes(out.codec))
    throw invalidParameter('lossy codec', `one of ${LOSSY_CODECS.join(' ')}`, out.codec);
  // Throws InvalidArgumentError naming the bad option.
  encodeSync(probe(), { codec: out.codec, ...(out.options ? { lossy: out.options } : {}) });
  return out;
}

/**
 * One file's lossy bookkeeping during ingest: the worst errors over its lossy
 * objects, and the sha256 of the file checkout will write (skeleton pieces and
 * decoded segments, fed in file order as they become known).
 */
export class LossyTally {
  private codec = '';
  private maxAbs = 0;
  private relL2 = 0;
  private n = 0;
  private readonly sha = crypto.createHash('sha256');
  private chain: Promise<void> = Promise.resolve();
  private failed: unknown = null;

  /**
   * The next bytes of the decoded file (a segment's once its put settles).
   * `hashed` runs once they are hashed, or the tally gave up: the caller may
   * then reuse the buffer.
   */
  piece(bytes: Uint8Array | Promise<Uint8Array>, hashed?: () => void): void {
    this.chain = this.chain.then(async () => {
      try {
        const b = await bytes;
        // Slices, yielding between them: a large segment never holds the event loop.
        const step = 16 << 20;
        for (let o = 0; o < b.byteLength; o += step) {
          this.sha.update(b.subarray(o, Math.min(b.byteLength, o + step)));
          if (b.byteLength > step) await new Promise((r) => setImmediate(r));
        }
      } finally {
        hashed?.();
      }
    });
    this.chain.catch((e: unknown) => {
      this.failed ??= e;
    });
  }

  count(r: PutResult): void {
    if (!r.lossy) return;
    this.n++;
    this.codec = r.lossy.codec;
    this.maxAbs = Math.max(this.maxAbs, r.lossy.maxAbsError);
    this.relL2 = Math.max(this.relL2, r.lossy.relL2Error);
  }

  /** The lossy mark for a file made from `sourceSha256`, or undefined when no segment was stored lossy. */
  markFor(sourceSha256: string): LossyMark | undefined {
    if (!this.n) return undefined;
    return { codec: this.codec, maxAbsError: this.maxAbs, relL2Error: this.relL2, segments: this.n, sourceSha256 };
  }

  /**
   * What to spread into the FileEntry: `{}` when every segment is exact, else
   * the decoded file's sha256 and the `lossy` mark naming `sourceSha256`.
   */
  async entryFields(sourceSha256: string): Promise<{ sha256?: string; lossy?: LossyMark }> {
    await this.chain.catch(() => undefined);
    if (this.failed) throw this.failed as Error;
    const lossy = this.markFor(sourceSha256);
    return lossy ? { sha256: this.sha.digest('hex'), lossy } : {};
  }
}
