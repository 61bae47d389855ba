/**
 * Fault injection for crash-safety tests: when CORAL_CRASH_AT names this
 * point, the process kills itself with SIGKILL right here (no cleanup, no
 * flush), exactly like a power cut or an OOM kill would.
 */
export function crashPoint(name: string): void {
  if (process.env.CORAL_CRASH_AT === name) process.kill(process.pid, 'SIGKILL');
}

/**
 * Error-path injection for tests that cannot create the condition for real
 * (a full disk needs a mount): with CORAL_FAULT=<point>:<ERRNO> (e.g.
 * `pack:write:ENOSPC`), faultPoint(<point>) returns the errno name, else null.
 */
export function faultPoint(name: string): string | null {
  const f = process.env.CORAL_FAULT;
  if (!f || !f.startsWith(`${name}:`)) return null;
  return f.slice(name.length + 1) || null;
}
