// Runs once before the suite. dist/ is built by `npm test`'s pretest step; a
// direct `vitest run` on a stale or missing dist/ fails the CLI tests loudly
// rather than testing old code.
//
// The S3 tests start a Ceph cluster on first use (test/helpers/ceph.ts); the teardown returned here
// stops it after the run, unless it was already running before the run (started by hand).
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export default function setup(): () => Promise<void> {
  const root = path.resolve(__dirname, '..', '..');
  if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) {
    console.warn('coral tests: dist/ is missing; run `npm run build:ts` (npm test does it) for the CLI tests');
  }
  const script = path.join(root, 'scripts', 'ceph.sh');
  const cephWasRunning = spawnSync('bash', [script, 'status'], { stdio: 'ignore' }).status === 0;
  // Asynchronous, so vitest's main process keeps serving its workers while the daemons shut down.
  return () =>
    new Promise<void>((resolve) => {
      if (cephWasRunning || spawnSync('bash', [script, 'env'], { stdio: 'ignore' }).status !== 0) return resolve();
      execFile('bash', [script, 'stop'], { timeout: 60_000 }, (err, _out, stderr) => {
        if (err) console.warn(`coral tests: scripts/ceph.sh stop failed: ${stderr}`);
        resolve();
      });
    });
}
