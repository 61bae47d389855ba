/**
 * The S3 client layer shared by S3ObjectStore (lib/store/s3/store.ts) and the s3:// remote
 * (lib/remote/s3.ts): one place that builds an `S3Client` the way coral wants it and turns the SDK's
 * failures into coral's typed, one-line errors.
 *
 * - Credentials come from the SDK's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
 *   AWS_PROFILE and the shared config files, SSO, instance metadata...).
 * - The endpoint is the option, else AWS_ENDPOINT_URL; a custom endpoint means path-style addressing
 *   (`http://host:port/bucket/key`), which every S3-compatible server (Ceph RGW, MinIO) accepts.
 * - Requests are bounded: a short connect timeout and at most 3 attempts, so an unreachable endpoint
 *   fails within seconds with RemoteUnavailableError instead of hanging.
 * - Checksums: the SDK's default CRC trailers (aws-chunked uploads) are turned off ("when required"),
 *   since older S3-compatible servers (Ceph 16) reject them; coral verifies its own checksums.
 *
 * @example
 * const s3 = openS3Client({ endpoint: 'http://127.0.0.1:7480' });
 * await s3.client.send(new HeadBucketCommand({ Bucket: 'models' }));
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import {
  CoralError,
  RemoteAuthError,
  RemoteNotFoundError,
  RemoteUnavailableError,
  invalidParameter,
} from '../../errors';

export interface S3ClientOptions {
  /** Endpoint URL; default AWS_ENDPOINT_URL, else AWS's own endpoints. A custom endpoint uses path-style. */
  endpoint?: string;
  /** Region; default AWS_REGION / AWS_DEFAULT_REGION, else "us-east-1". */
  region?: string;
  /** Attempts per request (first try included). Default 3. */
  maxAttempts?: number;
  /** TCP connect timeout in ms. Default 3000. */
  connectTimeoutMs?: number;
  /** Socket idle timeout in ms for one request. Default 120000. */
  requestTimeoutMs?: number;
}

/** An S3 client plus where it points, for error messages. */
export interface S3Handle {
  readonly client: S3Client;
  /** The endpoint in use ("AWS" when none was given). */
  readonly endpoint: string;
  /** Connect and idle timeouts of its requests (ms), for the ranged reads of range-into.ts. */
  readonly timeouts?: { connectMs: number; requestMs: number };
}

/**
 * Builds an S3 client (see the file header for the policy). Throws InvalidArgumentError for an
 * endpoint that is not an http(s) URL.
 */
export function openS3Client(opts: S3ClientOptions = {}): S3Handle {
  // The SDK warns on every process about a Node version policy for its future releases.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = opts.endpoint ?? (process.env.AWS_ENDPOINT_URL || undefined);
  if (endpoint !== undefined) {
    let u: URL | null;
    try {
      u = new URL(endpoint);
    } catch {
      u = null;
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:'))
      throw invalidParameter('endpoint', 'http(s) URL', endpoint);
  }
  const region = opts.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1');
  const timeouts = { connectMs: opts.connectTimeoutMs ?? 3000, requestMs: opts.requestTimeoutMs ?? 120_000 };
  const config: S3ClientConfig = {
    region,
    maxAttempts: opts.maxAttempts ?? 3,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: timeouts.connectMs,
      requestTimeout: timeouts.requestMs,
      httpAgent: { keepAlive: true, maxSockets: 64 },
      httpsAgent: { keepAlive: true, maxSockets: 64 },
    },
  };
  if (endpoint !== undefined) {
    config.endpoint = endpoint;
    config.forcePathStyle = true;
  }
  return { client: new S3Client(config), endpoint: endpoint ?? 'AWS', timeouts };
}

/** HTTP status of an SDK error (undefined for a network failure). */
export function s3Status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** Error name / code of an SDK or network error. */
export function s3Code(e: unknown): string {
  const x = e as { name?: unknown; Code?: unknown; code?: unknown } | null;
  const c = x?.Code ?? x?.name ?? x?.code;
  return typeof c === 'string' ? c : '';
}

/** True for "this key does not exist" (GET/HEAD of a missing object). */
export function isNoSuchKey(e: unknown): boolean {
  const c = s3Code(e);
  return c === 'NoSuchKey' || c === 'NotFound' || (s3Status(e) === 404 && c !== 'NoSuchBucket');
}

/** True for a failed precondition (If-Match / If-None-Match): 412, or 409 ConditionalRequestConflict. */
export function isPreconditionFailed(e: unknown): boolean {
  const c = s3Code(e);
  return s3Status(e) === 412 || c === 'PreconditionFailed' || c === 'ConditionalRequestConflict';
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'TimeoutError',
  'RequestTimeout',
]);

/**
 * Maps an SDK failure on `where` (e.g. "s3://bucket/prefix") to a one-line typed error:
 * missing bucket → RemoteNotFoundError, refused credentials → RemoteAuthError, network trouble or a
 * server error → RemoteUnavailableError. Coral errors pass through; anything else becomes a
 * RemoteUnavailableError carrying the server's code.
 */
export function s3Error(e: unknown, where: string, endpoint: string, op: string): Error {
  if (e instanceof CoralError) return e;
  const code = s3Code(e);
  const status = s3Status(e);
  const rawErrno = (e as { code?: unknown } | null)?.code;
  const errno = typeof rawErrno === 'string' ? rawErrno : '';
  const data = { url: where, endpoint, op, s3Code: code, status };
  const at = `${where} (endpoint ${endpoint})`;
  if (code === 'NoSuchBucket') return new RemoteNotFoundError(`${at}: the bucket does not exist`, data);
  if (
    code === 'InvalidAccessKeyId' ||
    code === 'SignatureDoesNotMatch' ||
    code === 'AccessDenied' ||
    code === 'InvalidToken' ||
    code === 'ExpiredToken' ||
    code === 'CredentialsProviderError' ||
    status === 403 ||
    status === 401
  ) {
    const why =
      code === 'CredentialsProviderError'
        ? 'no S3 credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)'
        : `the server refused the credentials (${code || status})`;
    return new RemoteAuthError(`${at}: ${why}`, data);
  }
  const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
  if (NETWORK_CODES.has(code) || NETWORK_CODES.has(errno) || status === undefined)
    return new RemoteUnavailableError(`${at}: cannot reach the server during ${op} (${errno || code || msg})`, data);
  return new RemoteUnavailableError(`${at}: ${op} failed with ${status} ${code}: ${msg}`, data);
}

export { parseS3Url } from './url';
