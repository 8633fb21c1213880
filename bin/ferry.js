#!/usr/bin/env -S node --max-semi-space-size=8 --liftoff-only
// Starts the ferry CLI: the compiled tree (dist/, from `npm run build`) when it is newer than every
// TypeScript source, else the sources themselves through tsx's loader (slower start, ~30 MB more).
// The first line is the one place node's flags for ferry are set (npm start, systemd's ExecStart
// and the tests' and benchmarks' children all take them from it). --max-semi-space-size=8: V8's
// young generation at 2 x 8 MiB instead of 2 x 16 MiB. A pull allocates a buffer per socket read,
// freed only by the next scavenge; scavenging twice as often holds half that garbage and half
// the young generation: 11-12 MB less peak RSS on bench/link.ts relays3, goodput unchanged
// (bench/README.md, "Peak RSS of the mirror"). --liftoff-only: WebAssembly stays in V8's baseline
// compiler. The only WebAssembly is undici's HTTP parser (llhttp), which V8 otherwise recompiles
// with TurboFan once the first pull makes it hot: ~30 MB of compiler memory for a second or two,
// the mirror's peak RSS on a short pull. Parsing a response's head is all it does per request.
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
