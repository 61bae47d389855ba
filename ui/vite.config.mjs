// Vite build of the web UI (issue #20, docs/ui.md): `npm run build:ui` writes ui/dist/, which `coral ui` and
// `coral serve --ui` serve at /ui/ and which ships in the npm package (so the pages work offline).
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/ui/',
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // One small app: no source maps in the package, no inlined assets beyond the default.
    sourcemap: false,
    reportCompressedSize: true,
  },
});
