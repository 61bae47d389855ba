/**
 * One background write at a time, overlapping the caller's next step: ingest
 * and merge encode and store tensor i while they read, hash or merge tensor
 * i + 1. `settle()` waits for the current write and rethrows its failure;
 * `start(p)` hands over the next one (call `settle()` first); `drain()` is the
 * cleanup after an error: it waits for a write still running and drops its
 * failure, which is either the error already being thrown or moot.
 */
export class OneInFlight {
  private current: Promise<void> | null = null;

  async settle(): Promise<void> {
    const p = this.current;
    this.current = null;
    if (p) await p;
  }

  start(p: Promise<void>): void {
    // Keep a failure from surfacing as an unhandled rejection before settle() sees it.
    p.catch(() => undefined);
    this.current = p;
  }

  async drain(): Promise<void> {
    const p = this.current;
    this.current = null;
    if (p) await p.catch(() => undefined);
  }
}
