/** CPU time a process has used, from /proc (Linux only): what a bench divides by the bytes served. */
import { readFile } from 'node:fs/promises';

/** USER_HZ: /proc's clock ticks per second (100 on every Linux this runs on). */
const TICKS_PER_SECOND = 100;

/** User + system CPU seconds of pid (all its threads) so far; 0 when it is gone. */
export async function cpuSeconds(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name (which may hold spaces) start at state; utime, stime are 14, 15.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / TICKS_PER_SECOND;
}

/** The CPU seconds each of pids spends during work, summed. */
export async function cpuDuring<T>(pids: readonly number[], work: () => Promise<T>): Promise<{ result: T; seconds: number }> {
  const sum = async (): Promise<number> => (await Promise.all(pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);
  const before = await sum();
  const result = await work();
  return { result, seconds: (await sum()) - before };
}
