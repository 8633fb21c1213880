/** Peak resident memory of a process during some work, from /proc (Linux only). */
import { readFile, writeFile } from 'node:fs/promises';

export async function statusField(pid: number, field: string): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

export interface PeakRss {
  /** VmRSS just before the work, in bytes. */
  before: number;
  /** Highest VmRSS seen while sampling, in bytes. */
  sampled: number;
  /** VmHWM after the work (reset before it when the kernel allows), in bytes. */
  hwm?: number;
  /** Whether VmHWM was reset before the work (otherwise it may include earlier peaks). */
  hwmReset: boolean;
}

/** Runs work while sampling pid's VmRSS every intervalMs. */
export async function measurePeakRss<T>(pid: number, work: () => Promise<T>, intervalMs = 20): Promise<{ result: T; rss: PeakRss }> {
  // Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
  const hwmReset = await writeFile(`/proc/${pid}/clear_refs`, '5').then(() => true, () => false);
  const before = (await statusField(pid, 'VmRSS')) ?? 0;
  let sampled = before;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      sampled = Math.max(sampled, (await statusField(pid, 'VmRSS')) ?? 0);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  try {
    const result = await work();
    return { result, rss: { before, sampled, hwm: await statusField(pid, 'VmHWM'), hwmReset } };
  } finally {
    sampling = false;
    await sampler;
  }
}
