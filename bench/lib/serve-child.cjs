'use strict';
/**
 * The server process of bench/serve.ts: `coral serve` as the CLI builds it (the built dist/, no
 * TypeScript loader in the process, so its RSS is the product's), over the repositories under argv[2],
 * with one more route module: `POST /discard`, which reads the body and throws it away (the
 * plain-upload baseline). A write token is made first; prints `PORT <n> TOKEN <t>` once listening and
 * stops gracefully on SIGTERM.
 *
 *   node bench/lib/serve-child.cjs <root>     (after npm run build:ts)
 */
const { addToken, startServer } = require('../../dist/index.js');

async function discardRoute(app) {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    scope.post('/discard', async (req) => {
      let n = 0;
      for await (const c of req.raw) n += c.byteLength;
      return { bytes: n };
    });
  });
}

async function main() {
  const root = process.argv[2];
  const { token } = await addToken({ root }, 'bench', { scope: 'write', repos: null });
  const server = await startServer({ root, routes: [discardRoute] });
  process.stdout.write(`PORT ${new URL(server.url).port} TOKEN ${token}\n`);
  process.once('SIGTERM', () => {
    void server.close().then(() => process.exit(0));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
