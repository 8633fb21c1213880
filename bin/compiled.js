// Whether dist/ (npm run build) is current: built after every TypeScript source under lib/,
// server/ and scripts/. bin/ferry.js runs it then; tests that measure the deployed mirror build it
// when it is not.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** dist/scripts/ferry.js under the package root. */
export function compiledEntry(root) {
  return join(root, 'dist', 'scripts', 'ferry.js');
}

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

export function compiledIsCurrent(root) {
  const compiled = compiledEntry(root);
  if (!existsSync(compiled)) return false;
  const built = statSync(compiled).mtimeMs;
  return ['lib', 'server', 'scripts'].every((d) => newestSource(join(root, d)) <= built);
}
