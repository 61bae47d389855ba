/**
 * Fault injection for crash-safety tests: when CORAL_CRASH_AT names this
 * point, the process kills itself with SIGKILL right here (no cleanup, no
 * flush), exactly like a power cut or an OOM kill would.
 */
export function crashPoint(name: string): void {
  if (process.env.CORAL_CRASH_AT === name) process.kill(process.pid, 'SIGKILL');
}
