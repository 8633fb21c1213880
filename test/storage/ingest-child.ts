/**
 * Child of fs.test.ts's crash case: ingests into the fs store at argv[2] a source that gives 4 MiB,
 * prints "mid" once those bytes are in the temp file, then never ends (the parent kills -9).
 */
import { readdir, stat } from 'node:fs/promises';
import { openStore } from '../../lib/storage/store.ts';

const store = await openStore(process.argv[2] as string);
const piece = Buffer.alloc(1024 * 1024, 7);

async function tempBytes(): Promise<number> {
  let n = 0;
  for (const f of await readdir(store.paths.tmpDir)) n += (await stat(store.paths.temp(f))).size;
  return n;
}

async function* source(): AsyncGenerator<Buffer> {
  for (let i = 0; i < 4; i++) yield piece;
  // Everything so far went to the temp file once the next piece is asked for and it shows there.
  while ((await tempBytes()) < 4 * piece.length) await new Promise((resolve) => setTimeout(resolve, 10));
  process.stdout.write('mid\n');
  await new Promise(() => {});
}

await store.blobs.ingest(source(), { digest: `sha256:${'0'.repeat(64)}` });
