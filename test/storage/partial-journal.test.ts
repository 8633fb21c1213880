import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal, loadJournal } from '../../lib/storage/partial-journal.ts';
import { RangeSet } from '../../lib/transfer/range-set.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const HEADER = `ferry-journal 1 ${DIGEST} 1000\n`;
const BOOT = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

describe('transfer journal', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-journal-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  const load = async (text: string): Promise<Array<{ start: number; end: number }>> => {
    await writeFile(join(dir, 'j'), text);
    return [...((await loadJournal(join(dir, 'j'), DIGEST, 1000))?.intervals ?? [])].map((i) => ({ start: i.start, end: i.end }));
  };

  it('trusts every range written in this boot, synced or not (a kill -9 keeps the page cache)', async () => {
    assert.deepEqual(await load(`${HEADER}boot ${BOOT}\n0 100\nsync\n200 300\n400 5`), [{ start: 0, end: 100 }, { start: 200, end: 300 }]);
  });

  it('trusts only the synced ranges of a journal from an earlier boot (the machine went down)', async () => {
    assert.deepEqual(await load(`${HEADER}boot 00000000-dead\n0 100\nsync\n200 300\n`), [{ start: 0, end: 100 }]);
  });

  it('trusts every line of a journal without a boot line, which synced each line', async () => {
    assert.deepEqual(await load(`${HEADER}0 100\n200 300\n`), [{ start: 0, end: 100 }, { start: 200, end: 300 }]);
  });

  it('writes ranges at once and marks them synced on flush', async () => {
    const part = await open(join(dir, 'p'), 'w+');
    const j = await Journal.create(join(dir, 'j'), join(dir, 'j.tmp'), DIGEST, 1000, new RangeSet(), part);
    await j.record(0, 10);
    assert.match(await readFile(join(dir, 'j'), 'utf8'), /\n0 10\n$/);
    await j.flush();
    assert.match(await readFile(join(dir, 'j'), 'utf8'), /\n0 10\nsync\n$/);
    await j.close();
    await part.close();
  });
});
