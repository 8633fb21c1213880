/** Small assertions the storage tests share. */
import assert from 'node:assert/strict';
import { RegistryError } from '../../lib/oci/errors.ts';

/** The RegistryError p rejects with (fails the test when it resolves or rejects otherwise). */
export async function rejection(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RegistryError, String(e));
    return e;
  }
  assert.fail('expected a RegistryError');
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
