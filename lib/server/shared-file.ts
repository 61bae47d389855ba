/**
 * Small JSON documents every `coral serve` process over one root or bucket shares (the token file, the
 * server config), kept where the repositories are: `<root>/.coral-serve/<file>` or
 * `s3://<bucket>/<prefix>/.coral-serve/<file>`. A repository name never starts with a dot, so the
 * directory can never be mistaken for (or served as) a repository.
 *
 * Writes are compare-and-swap on a version read before (a directory: under the file's lock, the version
 * is mtime, size and inode; a bucket: the ETag with If-Match / If-None-Match), so two administrators
 * adding tokens at once both succeed, one after a retry.
 *
 * @example
 * const f = await sharedFile({ root: '/srv/coral' }, 'tokens.json');
 * const cur = await f.read();
 * await f.write('{"tokens":[]}', cur?.version ?? null);
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { LockFile } from '../refs/lock';
import { parseS3Url } from '../store/s3/url';
import { writeFileAtomic } from '../util/fsutil';

/** Where a server's repositories live: a directory, or an S3 bucket prefix. */
export interface ServeLocation {
  /** Directory of repositories (`<root>/<name>`). */
  root?: string;
  /** `s3://<bucket>/<prefix>`: bare repositories at `<prefix>/<name>`. */
  store?: string;
  /** S3 endpoint (else AWS_ENDPOINT_URL). */
  endpoint?: string;
}

/** The directory (or key prefix) of the shared server files. */
export const SERVE_DIR = '.coral-serve';

export interface SharedFile {
  /** Where it is, for messages. */
  readonly where: string;
  read(): Promise<{ text: string; version: string } | null>;
  /** The current version without reading the content (null when missing). */
  version(): Promise<string | null>;
  /** Writes when the version is still `expected` (null: the file must not exist); false when it moved. */
  write(text: string, expected: string | null): Promise<boolean>;
  close(): void;
}

export function checkLocation(loc: ServeLocation): { root: string } | { bucket: string; prefix: string; url: string } {
  if (loc.store !== undefined && loc.root !== undefined)
    throw new InvalidArgumentError('give a root directory or --store s3://…, not both');
  if (loc.store !== undefined) return parseS3Url(loc.store);
  return { root: path.resolve(loc.root ?? '.') };
}

class DirFile implements SharedFile {
  constructor(readonly where: string) {}

  async version(): Promise<string | null> {
    try {
      const st = await fsp.stat(this.where, { bigint: true });
      return `${st.mtimeNs}:${st.size}:${st.ino}`;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async read(): Promise<{ text: string; version: string } | null> {
    for (let i = 0; i < 5; i++) {
      const before = await this.version();
      if (before === null) return null;
      let text: string;
      try {
        text = await fsp.readFile(this.where, 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw e;
      }
      if ((await this.version()) === before) return { text, version: before };
    }
    throw new InvalidArgumentError(`${this.where} keeps changing while it is read`);
  }

  async write(text: string, expected: string | null): Promise<boolean> {
    await fsp.mkdir(path.dirname(this.where), { recursive: true });
    const lock = await LockFile.acquire(this.where);
    try {
      if ((await this.version()) !== expected) return false;
      await writeFileAtomic(this.where, text);
      return true;
    } finally {
      await lock.release();
    }
  }

  close(): void {}
}

/** Opens the shared file `name` of a location. */
export async function sharedFile(loc: ServeLocation, name: string): Promise<SharedFile> {
  const where = checkLocation(loc);
  if ('root' in where) return new DirFile(path.join(where.root, SERVE_DIR, name));
  const mod = await import('./shared-s3');
  return mod.s3SharedFile(where.bucket, `${where.prefix}${SERVE_DIR}/${name}`, where.url, loc.endpoint);
}
