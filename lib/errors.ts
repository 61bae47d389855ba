/**
 * The single error hierarchy of coral-native. Codes are API; messages are not:
 * compare `err.code` with `SomeError.code`, never the message text.
 *
 * @example
 * try { await repo.readTensor(id) } catch (e) {
 *   if (e instanceof CoralError && e.code === ObjectNotFoundError.code) …
 * }
 */
export type CoralCode = `CORAL_${string}`;

export class CoralError extends Error {
  static readonly code: CoralCode = 'CORAL_ERROR';
  /** Name of the public API function that raised the error (set by lib/api wrappers). */
  caller = '';
  readonly code: CoralCode;
  readonly data?: Record<string, unknown>;

  constructor(message: string, data?: Record<string, unknown>, code?: CoralCode) {
    super(message);
    this.code = code ?? (this.constructor as typeof CoralError).code;
    this.data = data;
    this.name = this.constructor.name;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, data: this.data, caller: this.caller };
  }
}

function def<C extends CoralCode>(code: C, name: string) {
  const cls = class extends CoralError {
    static override readonly code: C = code;
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls;
}

/** An argument had the wrong type, range or spelling. */
export class InvalidArgumentError extends def('CORAL_INVALID_ARGUMENT', 'InvalidArgumentError') {}
/** Stored or encoded bytes fail structural checks. */
export class CorruptObjectError extends def('CORAL_CORRUPT_OBJECT', 'CorruptObjectError') {}
/** Decoded bytes do not match the checksum recorded when they were stored. */
export class ChecksumMismatchError extends def('CORAL_CHECKSUM_MISMATCH', 'ChecksumMismatchError') {}
/** A delta was decoded against a base it was not made from. */
export class BaseMismatchError extends def('CORAL_BASE_MISMATCH', 'BaseMismatchError') {}
/** Well-formed input that this version does not handle. */
export class UnsupportedError extends def('CORAL_UNSUPPORTED', 'UnsupportedError') {}
export class OutOfMemoryError extends def('CORAL_OUT_OF_MEMORY', 'OutOfMemoryError') {}
/** A filesystem operation failed. */
export class IoError extends def('CORAL_IO', 'IoError') {}
/** libhdf5 reported an error. */
export class Hdf5Error extends def('CORAL_HDF5', 'Hdf5Error') {}
/** A native lookup (dataset, object) found nothing. */
export class NativeNotFoundError extends def('CORAL_NOT_FOUND', 'NativeNotFoundError') {}
/** A bug: please report it. */
export class InternalError extends def('CORAL_INTERNAL', 'InternalError') {}

/** A checkpoint file is malformed: truncated, inconsistent offsets, bad header. */
export class FormatError extends def('CORAL_FORMAT', 'FormatError') {}
/** A checkpoint uses a construct this reader does not support (named in the message). */
export class UnsupportedFormatError extends def('CORAL_UNSUPPORTED_FORMAT', 'UnsupportedFormatError') {}
/** A pickle asked for a global or opcode outside the safe subset. */
export class UnsafePickleError extends def('CORAL_UNSAFE_PICKLE', 'UnsafePickleError') {}
/** A declared size exceeds a safety limit (huge header, absurd shape). */
export class LimitExceededError extends def('CORAL_LIMIT_EXCEEDED', 'LimitExceededError') {}

/** The directory is not inside a coral repository. */
export class NotARepositoryError extends def('CORAL_NOT_A_REPOSITORY', 'NotARepositoryError') {}
export class AlreadyExistsError extends def('CORAL_ALREADY_EXISTS', 'AlreadyExistsError') {}
/** An object id is not in the store. */
export class ObjectNotFoundError extends def('CORAL_OBJECT_NOT_FOUND', 'ObjectNotFoundError') {}
/** A ref, branch, tag or revision expression does not resolve. */
export class RefNotFoundError extends def('CORAL_REF_NOT_FOUND', 'RefNotFoundError') {}
/** A lock is held by another process. */
export class LockedError extends def('CORAL_LOCKED', 'LockedError') {}
/** A compare-and-swap ref update lost a race. */
export class RefConflictError extends def('CORAL_REF_CONFLICT', 'RefConflictError') {}
export class NothingToCommitError extends def('CORAL_NOTHING_TO_COMMIT', 'NothingToCommitError') {}
/** An operation would overwrite uncommitted changes. */
export class DirtyWorktreeError extends def('CORAL_DIRTY_WORKTREE', 'DirtyWorktreeError') {}
/** A merge stopped on conflicts it was told not to resolve. */
export class MergeConflictError extends def('CORAL_MERGE_CONFLICT', 'MergeConflictError') {}
/** A merge (or other multi-step operation) is already in progress. */
export class InProgressError extends def('CORAL_IN_PROGRESS', 'InProgressError') {}
/**
 * A working-tree path cannot be touched safely: a leading component is a symbolic link ("beyond a
 * symbolic link", as git says) or the real path lies outside the worktree or inside `.coral/`.
 */
export class UnsafePathError extends def('CORAL_UNSAFE_PATH', 'UnsafePathError') {}

/** A remote's URL, bucket or repository does not exist (`coral push` to a missing bucket, a path with no repository). */
export class RemoteNotFoundError extends def('CORAL_REMOTE_NOT_FOUND', 'RemoteNotFoundError') {}
/** The remote refused the credentials (S3 403 / InvalidAccessKeyId / SignatureDoesNotMatch; HTTP 401/403). */
export class RemoteAuthError extends def('CORAL_REMOTE_AUTH', 'RemoteAuthError') {}
/** The remote could not be reached (connection refused, DNS, timeout) or answered with a server error. */
export class RemoteUnavailableError extends def('CORAL_REMOTE_UNAVAILABLE', 'RemoteUnavailableError') {}
/** A push would move a remote branch to a commit that does not descend from it; `--force` overrides. */
export class NonFastForwardError extends def('CORAL_NON_FAST_FORWARD', 'NonFastForwardError') {}
/**
 * The remote cannot update refs safely: an S3 server that ignores conditional writes (`If-None-Match: *`,
 * `If-Match`) fails the probe, and coral refuses to push to it rather than risk lost updates.
 */
export class RemoteUnsafeError extends def('CORAL_REMOTE_UNSAFE', 'RemoteUnsafeError') {}

/**
 * The remote refused an update for a reason of its own: a push to the branch checked out in a non-bare
 * repository (git's `receive.denyCurrentBranch`), whose worktree would silently disagree with its HEAD.
 */
export class RemoteRejectedError extends def('CORAL_REMOTE_REJECTED', 'RemoteRejectedError') {}

/** The credentials are valid but do not allow this (a read token writing, a token limited to other repositories): HTTP 403. */
export class PermissionDeniedError extends def('CORAL_PERMISSION_DENIED', 'PermissionDeniedError') {}

const NATIVE_CODES: Record<string, typeof CoralError> = {};
for (const cls of [
  InvalidArgumentError,
  CorruptObjectError,
  ChecksumMismatchError,
  BaseMismatchError,
  UnsupportedError,
  OutOfMemoryError,
  IoError,
  Hdf5Error,
  NativeNotFoundError,
  InternalError,
]) {
  NATIVE_CODES[cls.code] = cls;
}

/**
 * Converts an error thrown by the native addon into the matching CoralError.
 * When `site` is given (an Error captured at the public call before async work
 * started), its stack is kept so the trace shows the user's call.
 */
export function fromNative(e: unknown, site?: Error): unknown {
  if (!(e instanceof Error) || e instanceof CoralError) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('CORAL_')) return e;
  const Cls = NATIVE_CODES[code];
  const err = Cls ? new Cls(e.message) : new CoralError(e.message, undefined, code as CoralCode);
  if (site?.stack) err.stack = `${err.name}: ${err.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
  return err;
}

/**
 * The one message format for invalid parameters, e.g.
 * "Expected positive integer for chunkSize but received -1 of type number".
 */
export function invalidParameter(name: string, expected: string, actual: unknown): InvalidArgumentError {
  const shown =
    typeof actual === 'string'
      ? JSON.stringify(actual)
      : typeof actual === 'bigint'
        ? `${actual}n`
        : Array.isArray(actual)
          ? `array(${actual.length})`
          : String(actual);
  return new InvalidArgumentError(
    `Expected ${expected} for ${name} but received ${shown} of type ${actual === null ? 'null' : typeof actual}`,
    { parameter: name },
  );
}

/**
 * A persisted index fails its checks: the staging index (`.coral/index`; `coral reset` rebuilds it from
 * HEAD) or a similarity index (lib/similarity). `coral fsck --rebuild-index` rebuilds either.
 */
export class CorruptIndexError extends def('CORAL_CORRUPT_INDEX', 'CorruptIndexError') {}

/**
 * Stored weights do not fit a model (lib/train/tfjs.ts `loadIntoModel`): a weight the model has is
 * missing from the checkpoint, or its shape or dtype differs. data: { weight, expected?, actual? }.
 */
export class WeightMismatchError extends def('CORAL_WEIGHT_MISMATCH', 'WeightMismatchError') {}
/** A git command the git extension ran failed, or the directory is not inside a git repository (lib/git). */
export class GitCommandError extends def('CORAL_GIT', 'GitCommandError') {}
/** git's filter or pkt-line protocol was broken by the peer (bad packet length, input ended inside a request). */
export class GitProtocolError extends def('CORAL_GIT_PROTOCOL', 'GitProtocolError') {}
