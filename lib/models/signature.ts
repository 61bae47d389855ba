/**
 * Who and when: the author/committer/tagger stamp of commits, tags and reflog
 * lines. Time is unix seconds plus the writer's UTC offset in minutes, as git
 * records it, so `log` can show the local time of the author.
 *
 * @example
 * const sig = signatureNow('Ada', 'ada@example.com');
 * formatSignatureDate(sig) // 'Tue Nov 24 02:40:58 2026 +0100'
 */
import { CorruptObjectError, InvalidArgumentError, invalidParameter } from '../errors';

export interface Signature {
  name: string;
  email: string;
  /** Unix time in whole seconds. */
  timestamp: number;
  /** Minutes east of UTC, e.g. 60 for +01:00, -300 for -05:00. */
  tzOffset: number;
}

/** Largest |tzOffset| accepted (just under a day, like git's ±2359). */
export const MAX_TZ_OFFSET = 24 * 60 - 1;

// '<' '>' and newlines would make the reflog line ambiguous; NUL is never valid text.
const BAD_IDENT = /[<>\n\r\0]/;

/**
 * Validates a signature. `Err` picks the error class: InvalidArgumentError when
 * checking caller input, CorruptObjectError when checking decoded bytes.
 */
export function checkSignature(
  x: unknown,
  where: string,
  Err: typeof InvalidArgumentError | typeof CorruptObjectError = InvalidArgumentError,
): Signature {
  const fail = (msg: string) => new Err(`${where}: ${msg}`, { field: where });
  if (x === null || typeof x !== 'object' || Array.isArray(x))
    throw fail('expected an object {name, email, timestamp, tzOffset}');
  const s = x as Record<string, unknown>;
  for (const k of Object.keys(s))
    if (k !== 'name' && k !== 'email' && k !== 'timestamp' && k !== 'tzOffset')
      throw fail(`unknown field ${JSON.stringify(k)}`);
  if (typeof s.name !== 'string' || BAD_IDENT.test(s.name)) throw fail('name must be a string without < > or newlines');
  if (typeof s.email !== 'string' || BAD_IDENT.test(s.email))
    throw fail('email must be a string without < > or newlines');
  if (typeof s.timestamp !== 'number' || !Number.isSafeInteger(s.timestamp))
    throw fail(`timestamp must be an integer number of seconds, got ${String(s.timestamp)}`);
  if (typeof s.tzOffset !== 'number' || !Number.isInteger(s.tzOffset) || Math.abs(s.tzOffset) > MAX_TZ_OFFSET)
    throw fail(`tzOffset must be an integer number of minutes within ±${MAX_TZ_OFFSET}, got ${String(s.tzOffset)}`);
  return { name: s.name, email: s.email, timestamp: s.timestamp, tzOffset: s.tzOffset };
}

/** A signature for `date` (default now) in the local timezone of this process. */
export function signatureNow(name: string, email: string, date: Date = new Date()): Signature {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw invalidParameter('date', 'valid Date', date);
  return checkSignature(
    {
      name,
      email,
      timestamp: Math.floor(date.getTime() / 1000),
      // getTimezoneOffset is minutes WEST of UTC; we store minutes east. `|| 0` avoids -0.
      tzOffset: -date.getTimezoneOffset() || 0,
    },
    'signature',
  );
}

/** '+0100', '-0530', '+0000' */
export function formatTzOffset(tzOffset: number): string {
  const sign = tzOffset < 0 ? '-' : '+';
  const a = Math.abs(tzOffset);
  return `${sign}${String(Math.floor(a / 60)).padStart(2, '0')}${String(a % 60).padStart(2, '0')}`;
}

/** Parses '+0100' / '-0530' into minutes east of UTC; null if malformed. */
export function parseTzOffset(s: string): number | null {
  const m = /^([+-])(\d{2})(\d{2})$/.exec(s);
  if (!m) return null;
  const mins = Number(m[2]) * 60 + Number(m[3]);
  if (Number(m[3]) >= 60 || mins > MAX_TZ_OFFSET) return null;
  return m[1] === '-' ? -mins || 0 : mins;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * The date of a signature as git prints it, in the signer's own timezone:
 * "Tue Nov 24 02:40:58 2026 +0000" (day of month not zero-padded, like git).
 */
export function formatSignatureDate(sig: Pick<Signature, 'timestamp' | 'tzOffset'>): string {
  const d = new Date((sig.timestamp + sig.tzOffset * 60) * 1000);
  const p2 = (n: number) => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${d.getUTCDate()} ` +
    `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${d.getUTCFullYear()} ` +
    formatTzOffset(sig.tzOffset)
  );
}
