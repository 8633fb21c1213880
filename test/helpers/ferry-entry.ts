/**
 * How a test or benchmark starts the ferry CLI as a child: from the TypeScript sources through
 * tsx (tests: always the code under test) or from the compiled tree in dist/ (benchmarks: what
 * `npm start` and the deployment recipes run).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { compiledIsCurrent } from '../../bin/compiled.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');

/** node's flags for ferry, from bin/ferry.js's first line (`#!/usr/bin/env -S node FLAGS`), where a deployment takes them. */
export function nodeFlags(): string[] {
  const shebang = readFileSync(resolve(REPO_ROOT, 'bin/ferry.js'), 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env (?:-S )?node(.*)$/.exec(shebang);
  if (!m) throw new Error(`bin/ferry.js: unexpected first line ${shebang}`);
  return (m[1] ?? '').split(' ').filter(Boolean);
}

/** Node arguments that run the CLI (before the subcommand), relative to REPO_ROOT: node's flags as deployed, then the entry. */
export function ferryArgs(compiled = false): string[] {
  return [...nodeFlags(), ...(compiled ? ['dist/scripts/ferry.js'] : ['--import', 'tsx', 'scripts/ferry.ts'])];
}

/** `npm run build`: compiles the sources into dist/ (a few seconds). */
export async function buildFerry(): Promise<void> {
  await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: REPO_ROOT });
}

/** Builds dist/ unless it is current (the rule bin/ferry.js runs it by): what a deployment runs. */
export async function ensureBuilt(): Promise<void> {
  if (!compiledIsCurrent(REPO_ROOT)) await buildFerry();
}
