/** Many curl clients fetching one URL at once, each to /dev/null (following a redirect: storage.redirect). */
import { run } from '../../test/helpers/processes.ts';
import { pinned } from './pinning.ts';

export interface FanoutResult {
  bytes: number;
  seconds: number;
  /** 10^6 bytes per second, all clients together. */
  mbPerS: number;
}

export async function fanout(url: string, clients: number, expectBytes: number, cpus: string | undefined): Promise<FanoutResult> {
  const started = process.hrtime.bigint();
  const results = await Promise.all(Array.from({ length: clients }, () => {
    const { command, args } = pinned(cpus, 'curl', ['-sSL', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', url]);
    return run(command, args, { timeoutMs: 600_000 });
  }));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  let bytes = 0;
  for (const r of results) {
    const [status, size] = r.stdout.trim().split(' ');
    if (r.code !== 0 || status !== '200' || Number(size) !== expectBytes) {
      throw new Error(`curl ${url}: exit ${r.code}, status ${status}, ${size} of ${expectBytes} bytes; ${r.stderr.trim()}`);
    }
    bytes += Number(size);
  }
  return { bytes, seconds, mbPerS: bytes / seconds / 1e6 };
}
