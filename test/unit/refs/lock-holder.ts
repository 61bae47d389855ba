// Child process for the lock tests: takes a lock, stages content, reports, then hangs until killed.
import { LockFile } from '../../../lib/refs/lock';

LockFile.acquire(process.argv[2]).then(
  async (lock) => {
    await lock.write('never committed\n');
    process.stdout.write('locked\n');
    setInterval(() => undefined, 1000);
  },
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
