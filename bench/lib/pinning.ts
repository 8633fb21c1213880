/**
 * CPU pinning for a fair single-core duel on a small machine: each server gets the same core,
 * the load generators (wrk, curl, dockerd) the others, so neither server competes with its own
 * load. Go sees one CPU through its affinity mask (GOMAXPROCS=1), Node is one thread anyway.
 */
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import { run } from '../../test/helpers/processes.ts';

export interface Pinning {
  /** taskset -c argument for the server under test, or undefined when not pinned. */
  server?: string;
  /** taskset -c argument for load generators, or undefined when not pinned. */
  client?: string;
}

/** BENCH_PIN=0 turns pinning off; it is also off on a one-CPU machine. */
export function choosePinning(env: NodeJS.ProcessEnv = process.env): Pinning {
  const cpus = os.availableParallelism();
  if (env.BENCH_PIN === '0' || cpus < 2) return {};
  return { server: '0', client: cpus === 2 ? '1' : `1-${cpus - 1}` };
}

/** Prefixes a command with taskset when a CPU list is given. */
export function pinned(cpus: string | undefined, command: string, args: string[]): { command: string; args: string[] } {
  return cpus === undefined ? { command, args } : { command: 'taskset', args: ['-c', cpus, command, ...args] };
}

/** Moves a running process, all its threads and its descendants onto cpus (best effort). */
export async function pinTree(pid: number, cpus: string | undefined): Promise<void> {
  if (cpus === undefined) return;
  for (const p of [pid, ...(await descendants(pid))]) await run('taskset', ['-a', '-p', '-c', cpus, String(p)]);
}

/** Every descendant of pid, from /proc/<pid>/task/<tid>/children. */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tasks) {
    const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    for (const child of text.split(/\s+/).filter(Boolean).map(Number)) {
      out.push(child, ...(await descendants(child)));
    }
  }
  return out;
}
