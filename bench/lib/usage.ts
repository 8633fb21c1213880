/**
 * `--help` for the bench scripts: each script's header comment is its usage (what it measures,
 * how to run it, its options and environment variables); printed as plain text, then exit 0.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The first block comment of a source text, without its comment markers. */
export function headerComment(source: string): string {
  const match = /\/\*\*([\s\S]*?)\*\//.exec(source);
  if (!match) return '';
  return match[1]!.split('\n').map((line) => line.replace(/^\s*\* ?/, '')).join('\n').trim();
}

/** Prints the calling script's header and exits when the command line asks for help. */
export function exitWithUsageIfAsked(moduleUrl: string, argv = process.argv.slice(2)): void {
  if (!argv.includes('--help') && !argv.includes('-h')) return;
  console.log(headerComment(readFileSync(fileURLToPath(moduleUrl), 'utf8')));
  process.exit(0);
}
