/**
 * A Hugging Face-compatible hub, read over plain HTTP: the file listing
 * (`GET <endpoint>/api/models/<repo>/tree/<rev>?recursive=true`, through
 * `@huggingface/hub`'s `listFiles` with its `hubUrl` option) and file bytes
 * (`GET <endpoint>/<repo>/resolve/<rev>/<path>`, with `Range` requests).
 * Every byte received is counted (`bytesOnWire`), so callers report real
 * transfer sizes rather than estimates.
 *
 * The coral sidecar: a hub may publish, next to `<file>.safetensors`, a file
 * `<file>.safetensors.coral.json` (written by `hubSidecar` / `coral hub
 * sidecar`) giving each tensor's coral content id (docs/content-ids.md), so a
 * client fetches only the tensors its local store lacks:
 * ```json
 * {"format":"coral-tensors","version":1,"file":"model.safetensors","size":1234,"sha256":"<hex>",
 *  "tensors":{"w":{"dtype":"F32","shape":[2,2],"offset":128,"length":16,"id":"<32 hex>"}}}
 * ```
 * `offset` is absolute in the file; `sha256` is of the whole file.
 *
 * @example
 * const hub = new HubClient({ endpoint: 'http://127.0.0.1:8080' });
 * const files = await hub.listFiles('org/model', 'main');
 * const head = await hub.range('org/model', 'main', 'model.safetensors', 0, 8);
 */
import { listFiles } from '@huggingface/hub';
import {
  CoralError,
  FormatError,
  InvalidArgumentError,
  RemoteAuthError,
  RemoteNotFoundError,
  RemoteUnavailableError,
} from '../errors';

export const HF_ENDPOINT = 'https://huggingface.co';
/** Suffix of the coral sidecar next to a safetensors file. */
export const SIDECAR_SUFFIX = '.coral.json';

export interface HubFile {
  path: string;
  size: number;
  /** sha256 of the file when the hub stores it with LFS (`lfs.oid`). */
  sha256?: string;
}

export interface SidecarTensor {
  dtype: string;
  shape: number[];
  offset: number;
  length: number;
  id: string;
}

export interface Sidecar {
  format: 'coral-tensors';
  version: 1;
  file: string;
  size: number;
  sha256: string;
  tensors: Record<string, SidecarTensor>;
}

export interface HubClientOptions {
  /** Hub base URL (default https://huggingface.co, or HF_ENDPOINT from the environment). */
  endpoint?: string;
  /** Bearer token (default HF_TOKEN from the environment). */
  token?: string;
}

/** Repo ids as the hub spells them: `name` or `owner/name`, no `..`. */
const REPO_RE = /^(?:[A-Za-z0-9][\w.-]*\/)?[A-Za-z0-9][\w.-]*$/;

export class HubClient {
  readonly endpoint: string;
  private readonly token?: string;
  /** Bytes of response bodies received so far (listings, ranges, whole files). */
  bytesOnWire = 0;
  requests = 0;

  constructor(opts: HubClientOptions = {}) {
    const ep = opts.endpoint ?? process.env.HF_ENDPOINT ?? HF_ENDPOINT;
    let u: URL;
    try {
      u = new URL(ep);
    } catch {
      throw new InvalidArgumentError(`Expected an http(s) URL for endpoint but received ${JSON.stringify(ep)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw new InvalidArgumentError(`Expected an http(s) URL for endpoint but received ${JSON.stringify(ep)}`);
    this.endpoint = ep.replace(/\/+$/, '');
    this.token = opts.token ?? process.env.HF_TOKEN ?? undefined;
  }

  static checkRepo(repo: string): string {
    if (typeof repo !== 'string' || !REPO_RE.test(repo) || repo.includes('..'))
      throw new InvalidArgumentError(
        `Expected a hub repository id like "owner/name" but received ${JSON.stringify(repo)}`,
      );
    return repo;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  /** A fetch that counts body bytes, for the listing calls `@huggingface/hub` makes. */
  private countingFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    this.requests++;
    let res: Response;
    try {
      res = await fetch(input, init);
    } catch (e) {
      throw new RemoteUnavailableError(`cannot reach ${this.endpoint}: ${(e as Error).message}`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    this.bytesOnWire += body.byteLength;
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };

  /** Every file of the repository at `rev` (recursive), with sizes and LFS sha256. */
  async listFiles(repo: string, rev: string): Promise<HubFile[]> {
    HubClient.checkRepo(repo);
    const out: HubFile[] = [];
    try {
      for await (const f of listFiles({
        repo: { type: 'model', name: repo },
        revision: rev,
        recursive: true,
        hubUrl: this.endpoint,
        fetch: this.countingFetch,
        ...(this.token ? { accessToken: this.token } : {}),
      })) {
        if (f.type !== 'file') continue;
        out.push({ path: f.path, size: f.size, ...(f.lfs?.oid ? { sha256: f.lfs.oid } : {}) });
      }
    } catch (e) {
      if (e instanceof CoralError) throw e;
      const status = (e as { statusCode?: number }).statusCode;
      throw statusError(status, `listing ${repo}@${rev}: ${(e as Error).message}`);
    }
    return out;
  }

  fileUrl(repo: string, rev: string, file: string): string {
    const p = file.split('/').map(encodeURIComponent).join('/');
    return `${this.endpoint}/${HubClient.checkRepo(repo)}/resolve/${encodeURIComponent(rev)}/${p}`;
  }

  private async get(url: string, headers: Record<string, string>): Promise<Response> {
    this.requests++;
    try {
      return await fetch(url, { headers: this.headers(headers), redirect: 'follow' });
    } catch (e) {
      throw new RemoteUnavailableError(`cannot reach ${url}: ${(e as Error).message}`);
    }
  }

  /** The whole file. */
  async file(repo: string, rev: string, file: string): Promise<Buffer> {
    const url = this.fileUrl(repo, rev, file);
    const res = await this.get(url, {});
    if (!res.ok) throw statusError(res.status, `GET ${url}`);
    const body = Buffer.from(await res.arrayBuffer());
    this.bytesOnWire += body.byteLength;
    return body;
  }

  /** Bytes [start, end) of a file, by a Range request (a server that ignores Range is refused, not silently slow). */
  async range(repo: string, rev: string, file: string, start: number, end: number): Promise<Buffer> {
    if (end <= start) return Buffer.alloc(0);
    const url = this.fileUrl(repo, rev, file);
    const res = await this.get(url, { Range: `bytes=${start}-${end - 1}` });
    if (res.status !== 206) {
      await res.body?.cancel();
      if (res.ok)
        throw new RemoteUnavailableError(`${url} does not honour Range requests (status ${res.status})`, {
          status: res.status,
        });
      throw statusError(res.status, `GET ${url} (bytes ${start}-${end - 1})`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    this.bytesOnWire += body.byteLength;
    const cr = /^bytes (\d+)-(\d+)\//.exec(res.headers.get('content-range') ?? '');
    if (!cr || Number(cr[1]) !== start || body.byteLength !== end - start)
      throw new FormatError(
        `${url}: asked for bytes ${start}-${end - 1}, got ${res.headers.get('content-range') ?? 'no Content-Range'} (${body.byteLength} bytes)`,
      );
    return body;
  }
}

function statusError(status: number | undefined, what: string): CoralError {
  if (status === 404) return new RemoteNotFoundError(`${what}: not found (404)`, { status });
  if (status === 401 || status === 403) return new RemoteAuthError(`${what}: not authorised (${status})`, { status });
  return new RemoteUnavailableError(`${what}: failed${status ? ` (${status})` : ''}`, { status });
}

/** Validates a parsed sidecar; FormatError when it is not one. */
export function checkSidecar(v: unknown, label: string): Sidecar {
  const o = v as Partial<Sidecar> | null;
  if (
    !o ||
    typeof o !== 'object' ||
    o.format !== 'coral-tensors' ||
    o.version !== 1 ||
    !o.tensors ||
    typeof o.tensors !== 'object'
  )
    throw new FormatError(`${label}: not a coral sidecar (format coral-tensors, version 1)`);
  const tensors = Object.create(null) as Record<string, SidecarTensor>;
  for (const [k, t] of Object.entries(o.tensors)) {
    if (
      !t ||
      typeof t.id !== 'string' ||
      !/^[0-9a-f]{32}$/.test(t.id) ||
      !Number.isSafeInteger(t.offset) ||
      !Number.isSafeInteger(t.length)
    )
      throw new FormatError(`${label}: tensor ${JSON.stringify(k)} has no valid id/offset/length`);
    tensors[k] = t;
  }
  return { ...(o as Sidecar), tensors };
}

/**
 * File path globs: `*` and `?` stay within one path component, `**` crosses
 * them (tensor-name globs use lib/merge/rules.ts `globToRegExp`, where `*` matches anything).
 */
export function pathGlobToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      if (glob[i + 2] === '/') {
        re += '(?:.*/)?';
        i += 2;
      } else {
        re += '.*';
        i++;
      }
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
