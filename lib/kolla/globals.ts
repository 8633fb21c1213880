/**
 * kolla-ansible's globals.yml: a YAML mapping of variables (YAML 1.1, as Ansible reads it:
 * yes/no are booleans). Values with `{{ }}` are kept as written; deploy.ts templates them.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { Value } from './ansible-expr.ts';
import { KollaError } from './kolla-error.ts';

export function parseKollaGlobals(text: string, source: string): Record<string, Value> {
  const doc = parseDocument(text, { version: '1.1' });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0] ? `:${e.linePos[0].line}:${e.linePos[0].col}` : '';
    throw new KollaError(`${source}${at}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const vars: unknown = doc.toJS();
  if (vars === null || vars === undefined) return {};
  if (typeof vars !== 'object' || Array.isArray(vars)) throw new KollaError(`${source}: expected a mapping of variables (name: value), as kolla-ansible's globals.yml`);
  const out: Record<string, Value> = {};
  for (const [name, value] of Object.entries(vars as Record<string, unknown>)) {
    // openstack_release: 2025.1 unquoted is a YAML number; kolla-ansible means the series.
    out[name] = typeof value === 'number' && /release|tag|version/.test(name) ? String(value) : (value as Value);
  }
  return out;
}

export async function readKollaGlobals(file: string): Promise<Record<string, Value>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new KollaError(`cannot read Kolla's globals ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseKollaGlobals(text, file);
}
