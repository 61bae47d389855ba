// Runs once before the suite. dist/ is built by `npm test`'s pretest step; a
// direct `vitest run` on a stale or missing dist/ fails the CLI tests loudly
// rather than testing old code.
import * as fs from 'node:fs';
import * as path from 'node:path';

export default function setup(): void {
  const root = path.resolve(__dirname, '..', '..');
  if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) {
    console.warn('coral tests: dist/ is missing; run `npm run build:ts` (npm test does it) for the CLI tests');
  }
}
