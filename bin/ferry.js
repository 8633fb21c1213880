#!/usr/bin/env node
// Starts the ferry CLI: the compiled tree (dist/, from `npm run build`) when it is newer than every
// TypeScript source, else the sources themselves through tsx's loader (slower start, ~30 MB more).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const compiled = join(root, 'dist', 'scripts', 'ferry.js');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function compiledIsCurrent() {
  if (!existsSync(compiled)) return false;
  const built = statSync(compiled).mtimeMs;
  return ['lib', 'server', 'scripts'].every((d) => newestSource(join(root, d)) <= built);
}

if (compiledIsCurrent()) {
  await import(compiled);
} else {
  if (existsSync(compiled)) process.stderr.write('ferry: dist/ is older than the sources; running the TypeScript (npm run build compiles it)\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../scripts/ferry.ts');
}
