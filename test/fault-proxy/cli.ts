/**
 * Runs the fault proxy by hand or from bench/:
 *   tsx test/fault-proxy/cli.ts --target 127.0.0.1:5000 --rate 1MB --latency 200 --reset-mean 50MB
 * Prints the listening address, then a stats line every few seconds (--quiet to silence).
 */
import { parseArgs } from 'node:util';
import { FaultProxy, type Faults } from './proxy.ts';

const UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3,
};

/** "1MB" -> 1000000, "512KiB" -> 524288, "1.5m" -> 1500000. */
export function parseBytes(text: string): number {
  const m = /^([\d.]+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`not a byte size: ${text}`);
  return Math.round(Number(m[1]) * unit);
}

const HELP = `fault-proxy --target HOST:PORT [options]
  --listen PORT          port on 127.0.0.1 (default 0: any)
  --seed N               PRNG seed (default 1)
  --rate SIZE            per-connection cap, bytes/s (e.g. 1MB, 512KiB)
  --aggregate SIZE       cap shared by all connections, bytes/s
  --latency MS           added round-trip time
  --reset-mean SIZE      reset each connection after ~SIZE bytes (exponential)
  --stall-mean SIZE      stall each connection after ~SIZE bytes (exponential)
  --stall-ms MS          stall length (default: forever)
  --truncate SIZE        close each connection cleanly after SIZE bytes
  --corrupt-per-mib N    flipped bytes per MiB, on average (0.05: one every ~20 MiB)
  --quiet                no stats lines`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' }, listen: { type: 'string', default: '0' }, seed: { type: 'string', default: '1' },
      rate: { type: 'string' }, aggregate: { type: 'string' }, latency: { type: 'string' },
      'reset-mean': { type: 'string' }, 'stall-mean': { type: 'string' }, 'stall-ms': { type: 'string' },
      truncate: { type: 'string' }, 'corrupt-per-mib': { type: 'string' }, quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help || !values.target) {
    console.log(HELP);
    process.exit(values.help ? 0 : 2);
  }
  const size = (v: string | undefined): number | undefined => (v === undefined ? undefined : parseBytes(v));
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const faults: Faults = {
    rateBytesPerSec: size(values.rate),
    aggregateBytesPerSec: size(values.aggregate),
    latencyMs: num(values.latency),
    resetMeanBytes: size(values['reset-mean']),
    stallMeanBytes: size(values['stall-mean']),
    stallMs: num(values['stall-ms']),
    truncateAfterBytes: size(values.truncate),
    corruptPerMiB: num(values['corrupt-per-mib']),
  };
  const proxy = new FaultProxy({ target: values.target, seed: Number(values.seed), faults });
  const port = await proxy.listen(Number(values.listen));
  console.log(JSON.stringify({ listening: `127.0.0.1:${port}`, target: values.target, faults }));
  if (!values.quiet) setInterval(() => console.log(JSON.stringify(proxy.stats)), 5000).unref();
  const stop = (): void => void proxy.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
