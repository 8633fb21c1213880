/**
 * How a test or benchmark starts the ferry CLI as a child: from the TypeScript sources through
 * tsx (tests: always the code under test) or from the compiled tree in dist/ (benchmarks: what
 * `npm start` and the deployment recipes run).
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { compiledIsCurrent } from '../../bin/compiled.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');

/** Node arguments that run the CLI (before the subcommand), relative to REPO_ROOT. */
export function ferryArgs(compiled = false): string[] {
  return compiled ? ['dist/scripts/ferry.js'] : ['--import', 'tsx', 'scripts/ferry.ts'];
}

/** `npm run build`: compiles the sources into dist/ (a few seconds). */
export async function buildFerry(): Promise<void> {
  await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT });
}

/** Builds dist/ unless it is current (the rule bin/ferry.js runs it by): what a deployment runs. */
export async function ensureBuilt(): Promise<void> {
  if (!compiledIsCurrent(REPO_ROOT)) await buildFerry();
}
