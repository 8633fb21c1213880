/** Runs wrk against one URL and returns its summary (from bench/wrk/get.lua's done()). */
import path from 'node:path';
import { runChecked } from '../../test/helpers/processes.ts';
import { pinned } from './pinning.ts';

export interface WrkOptions {
  url: string;
  threads: number;
  connections: number;
  durationS: number;
  accept?: string;
  /** taskset -c list for wrk itself. */
  cpus?: string;
}

export interface WrkResult {
  requests: number;
  bytes: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  /** Responses with a status >= 400 (wrk counts those as errors). */
  status: number;
  timeout: number;
  p50Us: number;
  p99Us: number;
  requestsPerS: number;
  /** 10^6 bytes per second, headers included (as wrk counts them). */
  mbPerS: number;
}

const SCRIPT = path.resolve(import.meta.dirname, '../wrk/get.lua');

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const { command, args } = pinned(o.cpus, 'wrk', [
    `-t${o.threads}`, `-c${o.connections}`, `-d${o.durationS}s`, '--timeout', '30s', '-s', SCRIPT, o.url,
  ]);
  const out = await runChecked(command, args, {
    env: { ...process.env, BENCH_ACCEPT: o.accept ?? '' },
    timeoutMs: (o.durationS + 60) * 1000,
  });
  const line = out.split('\n').find((l) => l.startsWith('BENCH '));
  if (!line) throw new Error(`wrk printed no summary:\n${out}`);
  const r = JSON.parse(line.slice('BENCH '.length)) as Omit<WrkResult, 'requestsPerS' | 'mbPerS'>;
  const seconds = r.durationUs / 1e6;
  const failures = r.connect + r.read + r.write + r.status + r.timeout;
  if (failures > 0) throw new Error(`wrk ${o.url}: ${failures} failed requests (${JSON.stringify(r)})`);
  return { ...r, requestsPerS: r.requests / seconds, mbPerS: r.bytes / seconds / 1e6 };
}
