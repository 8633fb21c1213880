/**
 * Code blocks of README.md, for tests that run the README's own files (so the README cannot
 * drift from what works). A section is found by its heading text; blocks by language, in order.
 */
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from './ferry-entry.ts';
import { join } from 'node:path';

export interface CodeBlock {
  lang: string;
  text: string;
}

/** The blocks under the first heading containing `heading`, up to the next heading of its level or above. */
export function readmeBlocks(heading: string, file = join(REPO_ROOT, 'README.md')): CodeBlock[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => /^#+ /.test(l) && l.includes(heading));
  if (start < 0) throw new Error(`README.md has no heading containing "${heading}"`);
  const level = /^#+/.exec(lines[start] as string)?.[0].length ?? 1;
  const blocks: CodeBlock[] = [];
  let open: CodeBlock | undefined;
  for (const line of lines.slice(start + 1)) {
    if (!open) {
      const h = /^(#+) /.exec(line);
      if (h && (h[1] as string).length <= level) break;
      const fence = /^```(\S*)\s*$/.exec(line);
      if (fence) open = { lang: fence[1] ?? '', text: '' };
    } else if (line.startsWith('```')) {
      blocks.push(open);
      open = undefined;
    } else {
      open.text += `${line}\n`;
    }
  }
  return blocks;
}

/** The `nth` block of `lang` under `heading`; throws naming what is missing. */
export function readmeBlock(heading: string, lang: string, nth = 0): string {
  const block = readmeBlocks(heading).filter((b) => b.lang === lang)[nth];
  if (!block) throw new Error(`README.md: no ${lang} block #${nth + 1} under "${heading}"`);
  return block.text;
}
