/**
 * Is the process that wrote a lock, session or log still running? The one
 * definition every liveness check in coral uses (locks, writer sessions, gc,
 * similarity-index logs), so that nothing ever deletes the state of a process
 * another part of coral believes alive.
 *
 * Conservative by design: a process counts as dead only when this host says
 * so (kill(pid, 0) fails with ESRCH). EPERM (it exists, owned by another user)
 * and any other error mean alive, and so does a holder on another host, which
 * cannot be checked from here ("unknown" must never mean "dead").
 *
 * @example
 * if (!pidAlive(owner.pid, owner.host)) removeStaleLock();
 */
import * as os from 'node:os';

/**
 * True unless `pid` is known dead on this host. `host`, when given, is the
 * holder's hostname (as `os.hostname()` wrote it): another host means alive.
 */
export function pidAlive(pid: number, host?: string): boolean {
  if (host !== undefined && host !== os.hostname()) return true;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
