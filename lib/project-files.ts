/**
 * Files that ship beside the code (package.json, registry.config.json, the status page, Kolla's
 * image lists), found from the package root so that the same code runs from the TypeScript
 * sources (tsx) and from the compiled `dist/` tree.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let root: string | undefined;

/** The directory holding ferry's package.json: the nearest one above this module. */
export function projectRoot(): string {
  if (root) return root;
  let dir = import.meta.dirname;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'registry.config.json'))) return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`ferry's package root (package.json beside registry.config.json) not found above ${import.meta.dirname}`);
    dir = up;
  }
}

/** Absolute path of a file shipped with ferry, `relative` to the package root. */
export function projectFile(relative: string): string {
  return join(projectRoot(), relative);
}

/** ferry's version, from its package.json. */
export function ferryVersion(): string {
  return (JSON.parse(readFileSync(projectFile('package.json'), 'utf8')) as { version: string }).version;
}
