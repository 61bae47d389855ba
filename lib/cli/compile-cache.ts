/**
 * A V8 code cache for the `coral` command's own modules (dist/**.js), so that a
 * command does not parse and compile the same JavaScript in every process:
 * with it, `coral status` starts about 15 ms sooner (a tenth of its time).
 * Node 22 has this built in (module.enableCompileCache); Node 20 does not, so
 * bin/coral.js enables this one before it loads the CLI. The library
 * (`require('coral-native')`) never installs it: it belongs to the process
 * that runs a command, not to an application that embeds coral.
 *
 * Where: one file per command, runtime and package copy in the user's cache directory,
 * `$XDG_CACHE_HOME/coral-native` or `~/.cache/coral-native` (macOS
 * `~/Library/Caches/coral-native`, Windows `%LOCALAPPDATA%\coral-native`), or
 * the directory `CORAL_COMPILE_CACHE` names; `CORAL_COMPILE_CACHE=0` turns it
 * off. Not next to the package: a global install is often read-only to its
 * users and shared by several Node versions. Not in the shared temp directory:
 * V8 runs cached bytecode as it finds it, so only the user may write the file
 * (it must be theirs, else it is not read).
 *
 * Why each check (V8 checks less than one would hope; each was tried here):
 * - V8 accepts a cache made for another source of the same length and runs the
 *   old code, so each module's entry is keyed by the sha-1 of its source.
 * - V8 does not verify its checksum in release builds: a flipped byte in the
 *   data either runs as it is or aborts the process, so each entry carries the
 *   sha-1 of its data, checked before V8 sees it.
 * - V8 rejects a cache made under other V8 flags, so the file name carries the
 *   Node and V8 versions and a digest of the flags the process was started
 *   with, and a process started with others does not rewrite the file in turn.
 * Anything wrong (no home, a read-only or full disk, a torn or foreign file, a
 * rejected entry) only means compiling as Node would; the cache never makes a
 * command fail. It is written when a command that succeeded has loaded a module
 * the file lacks (at exit, so it holds the functions it compiled lazily too),
 * to a temporary name and renamed over the old file: concurrent commands each
 * see a whole file, and the last writer wins. No fsync: a file torn by a crash
 * fails its checks and is rewritten.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

/** What Node's CommonJS loader has and @types/node does not declare. */
interface CjsModule {
  exports: unknown;
  require(id: string): unknown;
}
interface CjsModuleClass {
  prototype: { _compile: (this: CjsModule, content: string, filename: string) => unknown };
  wrap(source: string): string;
  _resolveFilename(request: string, parent: CjsModule, isMain: boolean, options?: unknown): string;
  _resolveLookupPaths(request: string, parent: CjsModule): string[] | null;
  _extensions: unknown;
  _cache: unknown;
}

const MAGIC = 'coral-compile-cache 1\n';
/** A file larger than this is not read (a cache of every module of dist/ is a few MB). */
const MAX_FILE_BYTES = 64 << 20;

interface Entry {
  /** sha-1 (hex) of the module's source. */
  source: string;
  /** sha-1 (hex) of the cached data. */
  sum: string;
  offset: number;
  length: number;
}

export interface CompileCacheStats {
  /** The cache file, or null when the cache is off. */
  file: string | null;
  /** Modules compiled from the cache. */
  hits: number;
  /** Modules compiled without it (no entry, another source, bad data, or rejected by V8). */
  misses: number;
  /** Entries V8 rejected. */
  rejected: number;
  /** Whether this process wrote the file (at exit). */
  wrote: boolean;
}

/** The default cache directory (see the file comment); null when none can be named. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = env.CORAL_COMPILE_CACHE;
  if (set === '0' || set === 'false' || set === 'off') return null;
  if (set) return path.resolve(set);
  if (process.platform === 'win32') return env.LOCALAPPDATA ? path.join(env.LOCALAPPDATA, 'coral-native') : null;
  const home = os.homedir();
  if (process.platform === 'darwin') return home ? path.join(home, 'Library', 'Caches', 'coral-native') : null;
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'coral-native');
  return home ? path.join(home, '.cache', 'coral-native') : null;
}

function sha1(data: string | Uint8Array): string {
  // The one-shot crypto.hash (Node 20.12+) costs half of a Hash object for these small inputs.
  return crypto.hash('sha1', data, 'hex');
}

/** The entries of a cache file and its bytes; empty when it is missing, foreign, torn or not ours. */
function readCache(file: string): { entries: Map<string, Entry>; bytes: Buffer } {
  const none = { entries: new Map<string, Entry>(), bytes: Buffer.alloc(0) };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return none;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return none;
    if (process.getuid && st.uid !== process.getuid()) return none;
    const bytes = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < bytes.length) {
      const n = fs.readSync(fd, bytes, got, bytes.length - got, got);
      if (n === 0) return none;
      got += n;
    }
    if (bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) return none;
    const nl = bytes.indexOf(10, MAGIC.length);
    if (nl < 0) return none;
    const header = JSON.parse(bytes.toString('utf8', MAGIC.length, nl)) as unknown;
    const body = bytes.subarray(nl + 1);
    const entries = new Map<string, Entry>();
    if (!header || typeof header !== 'object') return none;
    for (const [name, e] of Object.entries(header as Record<string, Partial<Entry>>)) {
      if (!e || typeof e.source !== 'string' || typeof e.sum !== 'string') continue;
      const { offset, length } = e;
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length)) continue;
      if (offset! < 0 || length! <= 0 || offset! + length! > body.length) continue;
      entries.set(name, { source: e.source, sum: e.sum, offset: offset!, length: length! });
    }
    return { entries, bytes: body };
  } catch {
    return none;
  } finally {
    fs.closeSync(fd);
  }
}

/** The cached data of a module with this source, or undefined (also when its bytes fail their sum). */
function cachedDataFor(cache: ReturnType<typeof readCache>, name: string, source: string): Buffer | undefined {
  const e = cache.entries.get(name);
  if (!e || e.source !== source) return undefined;
  const data = cache.bytes.subarray(e.offset, e.offset + e.length);
  return sha1(data) === e.sum ? data : undefined;
}

/** Writes the file (temporary name, then rename); any failure leaves the old file or none. */
function writeCache(file: string, entries: Map<string, { source: string; data: Buffer }>): void {
  const header: Record<string, Entry> = {};
  const parts: Buffer[] = [];
  let offset = 0;
  for (const [name, { source, data }] of entries) {
    header[name] = { source, sum: sha1(data), offset, length: data.length };
    parts.push(data);
    offset += data.length;
  }
  const bytes = Buffer.concat([Buffer.from(`${MAGIC}${JSON.stringify(header)}\n`), ...parts]);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  try {
    fs.writeFileSync(tmp, bytes, { mode: 0o600, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Node's `require` for a module (lib/internal/modules/helpers makeRequireFunction, without policy redirects). */
function makeRequire(Module: CjsModuleClass, mod: CjsModule): NodeJS.Require {
  const req = ((id: string) => mod.require(id)) as NodeJS.Require;
  const resolve = ((request: string, options?: unknown) =>
    Module._resolveFilename(request, mod, false, options)) as NodeJS.RequireResolve;
  resolve.paths = (request: string) => Module._resolveLookupPaths(request, mod);
  req.resolve = resolve;
  req.main = require.main;
  req.extensions = Module._extensions as NodeJS.RequireExtensions;
  req.cache = Module._cache as NodeJS.Dict<NodeModule>;
  return req;
}

/** `import(` anywhere in a module's source (comments too: the test only needs to have no false negatives). */
const DYNAMIC_IMPORT = /\bimport\s*\(/;

/** Node options under which the cache stays off: a debugger's first-line break, policy manifests. */
const INCOMPATIBLE = /--inspect-brk|--inspect-wait|--experimental-policy|--policy-integrity/;

/**
 * Caches the compiled code of every `.js` module under `root` (default: this
 * package's dist/) that the process loads from now on, in `dir` (default:
 * defaultCacheDir()), in the file of command `name`. Returns the live stats,
 * or null when the cache is off (no directory, CORAL_COMPILE_CACHE=0, or a
 * debugger or policy option). Never throws.
 */
export function enableCompileCache(
  opts: { root?: string; dir?: string | null; name?: string } = {},
): CompileCacheStats | null {
  try {
    const dir = opts.dir === undefined ? defaultCacheDir() : opts.dir;
    const flags = `${process.execArgv.join('\0')}\0${process.env.NODE_OPTIONS ?? ''}`;
    if (!dir || INCOMPATIBLE.test(flags)) return null;
    const root = path.resolve(opts.root ?? path.join(__dirname, '..')) + path.sep;
    // One file per runtime (V8 rejects another's data), package copy, set of V8 flags and command: each
    // command reads only the code it runs, and commands do not take turns rewriting one file.
    const key = sha1(`${process.version}\0${process.versions.v8}\0${process.arch}\0${root}\0${flags}`).slice(0, 16);
    const name = opts.name && /^[a-z][a-z0-9-]{0,31}$/.test(opts.name) ? opts.name : 'other';
    const file = path.join(dir, `${name}-v8-${process.versions.v8}-${process.arch}-${key}.bin`);
    const cache = readCache(file);
    const stats: CompileCacheStats = { file, hits: 0, misses: 0, rejected: 0, wrote: false };
    const fresh = new Map<string, { source: string; script: vm.Script }>();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Module = require('node:module') as CjsModuleClass;
    const compile = Module.prototype._compile;
    Module.prototype._compile = function (this: CjsModule, content: string, filename: string): unknown {
      // A module with `import()` is left to Node: V8 restores a cached script with the first process's
      // dynamic-import handler, which the next process does not have (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING).
      if (!filename.startsWith(root) || !filename.endsWith('.js') || DYNAMIC_IMPORT.test(content))
        return compile.call(this, content, filename);
      const source = sha1(content);
      const cachedData = cachedDataFor(cache, filename, source);
      const script = new vm.Script(Module.wrap(content), {
        filename,
        cachedData,
      });
      if (cachedData && !script.cachedDataRejected) stats.hits++;
      else {
        stats.misses++;
        if (cachedData) stats.rejected++;
        fresh.set(filename, { source, script });
      }
      const fn = script.runInThisContext({ displayErrors: true }) as (...args: unknown[]) => unknown;
      const req = makeRequire(Module, this);
      return fn.call(this.exports, this.exports, req, this, filename, path.dirname(filename));
    };
    process.once('exit', (code) => {
      // Only a command that succeeded writes: a mistyped command name (its own file) or one that failed
      // early leaves nothing behind.
      if (!fresh.size || code !== 0) return;
      try {
        const out = new Map<string, { source: string; data: Buffer }>();
        // Entries of modules this process did not load stay, unless their file is gone.
        for (const [name, e] of cache.entries)
          if (!fresh.has(name) && fs.existsSync(name))
            out.set(name, { source: e.source, data: cache.bytes.subarray(e.offset, e.offset + e.length) });
        for (const [name, { source, script }] of fresh) out.set(name, { source, data: script.createCachedData() });
        writeCache(file, out);
        stats.wrote = true;
      } catch {
        // Best effort: the next command compiles as Node would and tries again.
      }
    });
    return stats;
  } catch {
    return null;
  }
}
