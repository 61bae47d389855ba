/**
 * Errors on the wire: every failed request is answered with `{ error: { code, message } }` and a status
 * from one table, and a client turns that body back into the same typed error (`errorFromBody`), so a
 * `coral push` over HTTP fails exactly as it would over a path or S3.
 */
import * as errors from '../errors';
import { CoralError, type CoralCode } from '../errors';

/** HTTP status for an error code; anything not listed is a 500. */
const STATUS: Partial<Record<CoralCode, number>> = {
  CORAL_INVALID_ARGUMENT: 400,
  CORAL_FORMAT: 400,
  CORAL_UNSUPPORTED_FORMAT: 415,
  CORAL_UNSAFE_PICKLE: 400,
  CORAL_UNSAFE_PATH: 400,
  CORAL_CORRUPT_OBJECT: 400,
  CORAL_CHECKSUM_MISMATCH: 400,
  CORAL_LIMIT_EXCEEDED: 413,
  CORAL_REMOTE_AUTH: 401,
  CORAL_PERMISSION_DENIED: 403,
  CORAL_REMOTE_NOT_FOUND: 404,
  CORAL_NOT_A_REPOSITORY: 404,
  CORAL_OBJECT_NOT_FOUND: 404,
  CORAL_REF_NOT_FOUND: 404,
  CORAL_REF_CONFLICT: 409,
  CORAL_NON_FAST_FORWARD: 409,
  CORAL_ALREADY_EXISTS: 409,
  CORAL_LOCKED: 423,
  CORAL_REMOTE_REJECTED: 422,
  CORAL_REMOTE_UNSAFE: 501,
  CORAL_UNSUPPORTED: 501,
  CORAL_REMOTE_UNAVAILABLE: 503,
};

type ErrorClass = { new (message: string, data?: Record<string, unknown>): CoralError; code: CoralCode };

/** Every error class of lib/errors.ts by its code. */
const BY_CODE = new Map<string, ErrorClass>();
for (const C of Object.values(errors) as unknown[]) {
  if (typeof C === 'function' && (C as { prototype?: unknown }).prototype instanceof CoralError)
    BY_CODE.set((C as ErrorClass).code, C as ErrorClass);
}

export interface ErrorBody {
  error: { code: string; message: string; data?: unknown };
}

/** Status and JSON body for an error thrown while serving a request. */
export function errorReply(e: unknown): { status: number; body: ErrorBody } {
  if (e instanceof CoralError) {
    const { code, message, data } = e;
    return {
      status: STATUS[code] ?? 500,
      body: { error: { code, message, ...(data !== undefined ? { data } : {}) } },
    };
  }
  return { status: 500, body: { error: { code: 'CORAL_INTERNAL', message: 'internal server error' } } };
}

/** The typed error a client raises for a server's error body (an unknown code becomes a RemoteRejectedError). */
export function errorFromBody(status: number, body: unknown, where: string): CoralError {
  const err = (body as Partial<ErrorBody> | null)?.error;
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = `${where}: ${typeof err?.message === 'string' ? err.message : `HTTP ${status}`}`;
  const data = err?.data && typeof err.data === 'object' ? (err.data as Record<string, unknown>) : undefined;
  const C = BY_CODE.get(code);
  if (C) return new C(message, data);
  if (status === 401 || status === 403) return new errors.RemoteAuthError(message);
  if (status === 404) return new errors.RemoteNotFoundError(message);
  if (status >= 500) return new errors.RemoteUnavailableError(message);
  return new errors.RemoteRejectedError(message);
}
