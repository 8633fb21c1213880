/**
 * Shows a pre-warm's progress: on a terminal, one bar per active blob and one overall (rate,
 * ETA); otherwise plain log lines, so cron jobs and CI logs stay readable.
 */
import cliProgress from 'cli-progress';
import type { Prewarm, PrewarmReport } from './prewarm.ts';

const MB = 1024 * 1024;

export function attachProgress(prewarm: Prewarm, total: number, out: NodeJS.WriteStream = process.stderr): () => void {
  return out.isTTY ? attachBars(prewarm, total, out) : attachLines(prewarm, out);
}

function attachBars(prewarm: Prewarm, images: number, out: NodeJS.WriteStream): () => void {
  const multi = new cliProgress.MultiBar({
    stream: out,
    clearOnComplete: false,
    hideCursor: true,
    format: ' {label} |{bar}| {percentage}% {value}/{total} MiB {rate} MiB/s ETA {eta_formatted}',
    etaBuffer: 50,
    fps: 5,
  }, cliProgress.Presets.shades_classic);
  let totalBytes = 0;
  let doneBytes = 0;
  const started = Date.now();
  const overall = multi.create(1, 0, { label: 'overall'.padEnd(24), rate: '0.0' });
  const bars = new Map<string, { bar: cliProgress.SingleBar; bytes: number }>();
  let imagesDone = 0;
  const rate = (): string => (doneBytes / MB / Math.max((Date.now() - started) / 1000, 0.001)).toFixed(1);
  const updateOverall = (): void => {
    overall.setTotal(Math.max(1, Math.round(totalBytes / MB)));
    overall.update(Math.round(doneBytes / MB), { label: `overall ${imagesDone}/${images} images`.padEnd(24), rate: rate() });
  };
  prewarm.on('blob-start', ({ digest, size }) => {
    totalBytes += size;
    bars.set(digest, { bar: multi.create(Math.max(1, Math.round(size / MB)), 0, { label: digest.slice(7, 19).padEnd(24), rate: '' }), bytes: 0 });
    updateOverall();
  });
  prewarm.on('blob-progress', ({ digest, bytes }) => {
    const b = bars.get(digest);
    if (!b) return;
    doneBytes += bytes - b.bytes;
    b.bytes = bytes;
    b.bar.update(Math.round(bytes / MB));
    updateOverall();
  });
  prewarm.on('blob-done', ({ digest, size }) => {
    const b = bars.get(digest);
    if (b) {
      doneBytes += size - b.bytes;
      multi.remove(b.bar);
      bars.delete(digest);
    }
    updateOverall();
  });
  prewarm.on('image-done', (r) => {
    imagesDone++;
    multi.log(`${r.ok ? 'done  ' : 'FAILED'} ${r.ref}${r.error ? `: ${r.error}` : ''}\n`);
    updateOverall();
  });
  return () => multi.stop();
}

function attachLines(prewarm: Prewarm, out: NodeJS.WriteStream): () => void {
  const line = (s: string): void => { out.write(`${new Date().toISOString()} ${s}\n`); };
  const lastPct = new Map<string, number>();
  prewarm.on('image-start', ({ ref }) => line(`image ${ref}: started`));
  prewarm.on('blob-start', ({ digest, size }) => line(`blob ${digest.slice(0, 19)} ${(size / MB).toFixed(1)} MiB: started`));
  prewarm.on('blob-progress', ({ digest, bytes, size }) => {
    const pct = Math.floor((bytes / Math.max(size, 1)) * 4) * 25;
    if (pct > (lastPct.get(digest) ?? 0) && pct < 100) {
      lastPct.set(digest, pct);
      line(`blob ${digest.slice(0, 19)}: ${pct}%`);
    }
  });
  prewarm.on('blob-done', ({ digest }) => line(`blob ${digest.slice(0, 19)}: done`));
  prewarm.on('image-done', (r) => line(`image ${r.ref}: ${r.ok ? 'done' : `FAILED: ${r.error}`} (${(r.bytes / MB).toFixed(1)} MiB, ${(r.durationMs / 1000).toFixed(1)} s)`));
  return () => {};
}

/** The final report, a line per image then the totals. */
export function formatReport(report: PrewarmReport): string {
  const lines: string[] = [];
  const failed = report.images.filter((i) => !i.ok);
  for (const i of report.images) {
    lines.push(`${i.ok ? 'ok    ' : 'FAILED'} ${i.ref}  ${(i.bytes / MB).toFixed(1)} MiB  ${(i.durationMs / 1000).toFixed(1)} s${i.error ? `  ${i.error}` : ''}`);
  }
  lines.push(
    `${report.images.length - failed.length} of ${report.images.length} images done, ${failed.length} failed; ` +
      `${(report.bytes / MB).toFixed(1)} MiB in ${(report.durationMs / 1000).toFixed(1)} s, goodput ${(report.goodput / 1e6).toFixed(2)} MB/s`,
  );
  return lines.join('\n');
}
