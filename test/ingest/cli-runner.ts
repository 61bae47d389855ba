// Runs the coral CLI from the TypeScript sources (used by test/ingest and test/e2e/similar).
import { main } from '../../lib/cli/main';

void main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
