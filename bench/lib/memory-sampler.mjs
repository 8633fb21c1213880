// Preload for a ferry child (`node --import ./bench/lib/memory-sampler.mjs`): where its memory is,
// every 200 ms, one line appended to $FERRY_MEMORY_SAMPLES (no file: does nothing). MB each:
// rss and its high water, V8's heap (committed, used; young and old generation), external and
// ArrayBuffers (backing stores of Buffers), and /proc/self/smaps summed by mapping: file-backed
// (node's text), brk (malloc's main heap: where freed backing stores leave their high water) and
// other anonymous (V8's pages, thread arenas). bench/README.md "Peak RSS of the mirror" used it;
// bench/link.ts passes it with BENCH_MIRROR_NODE_ARGS.
import { appendFileSync, readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const out = process.env.FERRY_MEMORY_SAMPLES;
const mb = (bytes) => (bytes / 1048576).toFixed(1);

function mappings() {
  const sums = { file: 0, brk: 0, anon: 0 };
  let kind = 'anon';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[1];
      kind = name === '[heap]' ? 'brk' : name && !name.startsWith('[') ? 'file' : 'anon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) sums[kind] += Number(rss[1]) * 1024;
  }
  return sums;
}

if (out) {
  const started = performance.now();
  const sample = () => {
    const m = process.memoryUsage();
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]));
    const maps = mappings();
    appendFileSync(out, `${((performance.now() - started) / 1000).toFixed(1)} s rss ${mb(m.rss)} hwm ${mb(hwm)} heap ${mb(m.heapTotal)} used ${mb(m.heapUsed)} young ${mb(spaces.new_space ?? 0)} old ${mb(spaces.old_space ?? 0)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)} | file ${mb(maps.file)} brk ${mb(maps.brk)} anon ${mb(maps.anon)}\n`);
  };
  setInterval(sample, 200).unref();
}
