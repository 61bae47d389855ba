/**
 * `openRemote(url)`: the one place that maps a remote URL to its transport.
 *
 * - a path (`/srv/m`, `../m`, `C:\m`) or `file://…`: lib/remote/file.ts (a bare repository or the
 *   `.coral/` of an ordinary one);
 * - `s3://<bucket>/<prefix>`: the S3 transport, loaded on first use (`./s3`, exporting `openS3Remote`), so
 *   the AWS SDK is only loaded by commands that talk to S3;
 * - `http://`, `https://`: a repository served by `coral serve` (lib/remote/http.ts; token from
 *   `opts.token`, else CORAL_TOKEN).
 *
 * @example
 * const remote = await openRemote('/srv/models/llama.coral');
 * const remote2 = await openRemote('s3://bucket/models/llama', { endpoint: 'http://127.0.0.1:7480' });
 */
import { InvalidArgumentError, UnsupportedError, invalidParameter } from '../errors';
import { openFileRemote } from './file';
import { openHttpRemote } from './http';
import type { OpenRemoteOptions, RemoteRepo } from './transport';

/** The transport a URL names: "file", "s3" or "http". */
export function transportOf(url: string): 'file' | 's3' | 'http' {
  if (typeof url !== 'string' || url.trim() === '' || url.includes('\0'))
    throw invalidParameter('url', 'a path, file://, s3:// or http(s):// URL', url);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === 'file') return 'file';
  if (scheme === 's3') return 's3';
  if (scheme === 'http' || scheme === 'https') return 'http';
  throw new InvalidArgumentError(
    `unsupported remote URL scheme '${scheme}://' in ${JSON.stringify(url)}; use a path, file://, s3:// or http(s)://`,
    { url },
  );
}

/** The signature every dynamically loaded transport module exports. */
type Opener = (url: string, opts: OpenRemoteOptions) => Promise<RemoteRepo>;

async function loadS3(): Promise<Opener> {
  let mod: { openS3Remote?: Opener };
  try {
    // A variable specifier keeps bundlers and tsc from resolving a module this build may not contain.
    const spec = './s3';
    mod = (await import(spec)) as { openS3Remote?: Opener };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Only the transport module itself missing; a dependency missing inside it is a real error.
    const self = /['"]\.\/s3['"]|[\\/]remote[\\/]s3\b/.test((e as Error).message ?? '');
    if ((code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && self)
      throw new UnsupportedError(
        's3:// remotes need the S3 transport (lib/remote/s3), which this build does not include',
        {
          module: 'lib/remote/s3',
        },
      );
    throw e;
  }
  if (typeof mod.openS3Remote !== 'function')
    throw new UnsupportedError('lib/remote/s3 does not export openS3Remote', { module: 'lib/remote/s3' });
  return mod.openS3Remote;
}

/**
 * Opens the repository at `url`. RemoteNotFoundError when there is none (unless `opts.create`),
 * RemoteAuthError / RemoteUnavailableError from network transports.
 */
export async function openRemote(url: string, opts: OpenRemoteOptions = {}): Promise<RemoteRepo> {
  switch (transportOf(url)) {
    case 'file':
      return openFileRemote(url, opts);
    case 's3':
      return (await loadS3())(url, opts);
    case 'http':
      return openHttpRemote(url, opts);
  }
}
