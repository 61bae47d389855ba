#!/usr/bin/env node
// Fails (exit 1) on any import cycle between the TypeScript modules under lib/ (issue #12: clean layering).
//
// Every relative import counts, in all its forms: `import`, `import type`, `export … from`, `import x = require()`,
// `require()` and dynamic `import()`. A type-only import does not create a load-time cycle, but it still ties two
// layers together, and the layering rule (nothing imports upward) is about the source graph. Each edge in the
// report is tagged with what survives compilation, so a cycle's severity is visible:
//   runtime  the import is still a `require()` in the compiled JS (found with ts.transpileModule, which elides
//            imports that are used only as types, as tsc does)
//   dynamic  it survives, but only inside an `import()`/`require()` call in a function body (lazy)
//   type     it is erased by the compiler
//
//   node scripts/check-cycles.mjs            all imports (the check `npm run lint` runs)
//   node scripts/check-cycles.mjs --runtime  only imports that survive compilation (diagnosis)
//   node scripts/check-cycles.mjs --json     machine-readable report
//
// Written against the TypeScript compiler API (already a devDependency) rather than a bundler-resolver tool so that
// it can tell type-only edges from runtime ones; it takes a few seconds (it transpiles each file once).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const ts = require('typescript');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const libDir = path.join(root, 'lib');
const args = new Set(process.argv.slice(2));
const runtimeOnly = args.has('--runtime');
const asJson = args.has('--json');

function listTs(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listTs(p));
    else if (/\.(ts|mts|cts)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out.sort();
}

/** Resolves a relative specifier the way moduleResolution node10 does for our sources; null if outside lib/. */
function resolve(fromFile, spec) {
  if (!spec.startsWith('.')) return null;
  const base = path.resolve(path.dirname(fromFile), spec);
  const stem = base.replace(/\.(js|mjs|cjs)$/, '');
  for (const c of [base, `${stem}.ts`, `${stem}.mts`, `${stem}.cts`, path.join(base, 'index.ts')]) {
    if (c.startsWith(libDir + path.sep) && /\.(ts|mts|cts)$/.test(c) && fs.existsSync(c) && fs.statSync(c).isFile()) {
      return c;
    }
  }
  return null;
}

/** Every relative module specifier in the source, in any import form. */
function sourceSpecifiers(sf) {
  const specs = new Set();
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) specs.add(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (ts.isStringLiteral(e)) specs.add(e.text);
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require')) &&
      node.arguments.length === 1 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      specs.add(node.arguments[0].text);
    } else if (ts.isImportTypeNode(node)) {
      const a = node.argument;
      if (ts.isLiteralTypeNode(a) && ts.isStringLiteral(a.literal)) specs.add(a.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return specs;
}

/** Specifiers that survive compilation to CommonJS, split into top-level (load time) and nested (lazy). */
function compiledSpecifiers(text, fileName) {
  const js = ts.transpileModule(text, {
    fileName,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  }).outputText;
  const sf = ts.createSourceFile(fileName.replace(/\.[cm]?ts$/, '.js'), js, ts.ScriptTarget.ES2022, true);
  const eager = new Set();
  const lazy = new Set();
  const visit = (node, depth) => {
    if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      node.expression.text === 'require' &&
      node.arguments.length === 1 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      (depth > 0 ? lazy : eager).add(node.arguments[0].text);
    }
    const fn = ts.isFunctionLike(node) ? 1 : 0;
    ts.forEachChild(node, (c) => visit(c, depth + fn));
  };
  visit(sf, 0);
  return { eager, lazy };
}

const files = listTs(libDir);
const rel = (f) => path.relative(root, f);
/** @type {Map<string, Map<string, 'runtime' | 'dynamic' | 'type'>>} */
const graph = new Map();
for (const f of files) {
  const text = fs.readFileSync(f, 'utf8');
  const sf = ts.createSourceFile(f, text, ts.ScriptTarget.ES2022, true);
  const { eager, lazy } = compiledSpecifiers(text, f);
  const edges = new Map();
  for (const spec of sourceSpecifiers(sf)) {
    const to = resolve(f, spec);
    if (!to || to === f) continue;
    const kind = eager.has(spec) ? 'runtime' : lazy.has(spec) ? 'dynamic' : 'type';
    const prev = edges.get(to);
    const rank = { type: 0, dynamic: 1, runtime: 2 };
    if (!prev || rank[kind] > rank[prev]) edges.set(to, kind);
  }
  if (runtimeOnly) for (const [to, k] of edges) if (k === 'type') edges.delete(to);
  graph.set(f, edges);
}

// Tarjan's strongly connected components: every cycle lies inside one component of two or more files.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const sccs = [];
function strongConnect(v) {
  index.set(v, counter);
  low.set(v, counter++);
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v).keys()) {
    if (!index.has(w)) {
      strongConnect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
  }
  if (low.get(v) === index.get(v)) {
    const comp = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      comp.push(w);
    } while (w !== v);
    if (comp.length > 1) sccs.push(comp.sort());
  }
}
for (const f of files) if (!index.has(f)) strongConnect(f);

/** Shortest cycle through `start` inside the component (BFS), as a list of files ending back at start. */
function shortestCycle(start, comp) {
  const inComp = new Set(comp);
  const prev = new Map([[start, null]]);
  const queue = [start];
  while (queue.length) {
    const v = queue.shift();
    for (const w of graph.get(v).keys()) {
      if (!inComp.has(w)) continue;
      if (w === start) {
        const p = [];
        for (let x = v; x !== null; x = prev.get(x)) p.unshift(x);
        return [...p, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return null;
}

const report = sccs.map((comp) => {
  const inComp = new Set(comp);
  const edges = [];
  for (const f of comp)
    for (const [to, kind] of graph.get(f)) if (inComp.has(to)) edges.push({ from: rel(f), to: rel(to), kind });
  const cycles = new Set();
  for (const f of comp) {
    const c = shortestCycle(f, comp);
    if (!c) continue;
    // Rotate so the same cycle found from different starts prints once.
    const ring = c.slice(0, -1);
    const minAt = ring.indexOf([...ring].sort()[0]);
    const rot = [...ring.slice(minAt), ...ring.slice(0, minAt)];
    cycles.add([...rot, rot[0]].map(rel).join(' -> '));
  }
  return { files: comp.map(rel), edges, cycles: [...cycles] };
});

if (asJson) {
  process.stdout.write(JSON.stringify({ mode: runtimeOnly ? 'runtime' : 'all', components: report }, null, 2) + '\n');
} else if (report.length === 0) {
  console.log(
    `check-cycles: no import cycle among ${files.length} files in lib/ (${runtimeOnly ? 'runtime imports' : 'all imports'})`,
  );
} else {
  console.error(
    `check-cycles: ${report.length} import cycle group(s) in lib/ (${runtimeOnly ? 'runtime imports' : 'all imports'}):`,
  );
  for (const [i, c] of report.entries()) {
    console.error(`\n  group ${i + 1}: ${c.files.join(', ')}`);
    for (const cyc of c.cycles) console.error(`    cycle: ${cyc}`);
    for (const e of c.edges) console.error(`    ${e.from} -> ${e.to}  [${e.kind}]`);
  }
}
process.exitCode = report.length === 0 ? 0 : 1;
