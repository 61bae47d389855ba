// Child process for the CAS concurrency test (run with `node --import tsx`).
// argv: <coralDir> <ref> <increments> <workerIndex> <startAtMs>
// Does read-modify-write increments of a counter stored in the ref's id (the
// count in hex, zero padded), retrying on RefConflictError.
import { RefConflictError } from '../../../lib/errors';
import { RefStore } from '../../../lib/refs/refs';

const [coralDir, ref, nStr, who, startAt] = process.argv.slice(2);
const encode = (n: number) => n.toString(16).padStart(64, '0');

async function main(): Promise<void> {
  const refs = new RefStore(coralDir, { lockTimeoutMs: 60_000 });
  // Start together (process start-up times differ), so the updates really contend.
  await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));
  let conflicts = 0;
  for (let i = 0; i < Number(nStr); i++) {
    for (;;) {
      const cur = await refs.readRef(ref);
      const n = cur === null ? 0 : parseInt(cur, 16);
      try {
        await refs.updateRef(ref, encode(n + 1), {
          expectedOld: cur,
          message: `worker ${who} increment ${i}`,
          who: { name: `worker${who}`, email: `w${who}@test`, timestamp: 1_800_000_000 + i, tzOffset: 0 },
        });
        break;
      } catch (e) {
        if (e instanceof RefConflictError) {
          conflicts++;
          continue;
        }
        throw e;
      }
    }
  }
  process.stdout.write(JSON.stringify({ conflicts }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
