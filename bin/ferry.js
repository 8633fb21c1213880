#!/usr/bin/env node
// Starts the ferry CLI: the compiled tree (dist/, from `npm run build`) when it is newer than every
// TypeScript source, else the sources themselves through tsx's loader (slower start, ~30 MB more).
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compiledEntry, compiledIsCurrent } from './compiled.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const compiled = compiledEntry(root);

if (compiledIsCurrent(root)) {
  await import(compiled);
} else {
  if (existsSync(compiled)) process.stderr.write('ferry: dist/ is older than the sources; running the TypeScript (npm run build compiles it)\n');
  const { register } = await import('tsx/esm/api');
  register();
  await import('../scripts/ferry.ts');
}
