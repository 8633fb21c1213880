/** Image list files: one reference a line, `#` starts a comment, blank lines ignored. */
import { readFile } from 'node:fs/promises';

export function parseImageList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line !== '') out.push(line);
  }
  return out;
}

export async function readImageList(file: string): Promise<string[]> {
  return parseImageList(await readFile(file, 'utf8'));
}
