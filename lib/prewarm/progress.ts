/**
 * Shows a pre-warm's progress (the figures come from progress-model.ts): on a terminal one bar per
 * image being fetched (name:tag) and one overall with the ETA; otherwise plain lines, so cron
 * jobs and CI logs stay readable. Sizes in MiB, rates in MiB/s, everywhere.
 */
import cliProgress from 'cli-progress';
import { request } from 'undici';
import type { Prewarm, PrewarmReport } from './prewarm.ts';
import { PrewarmProgress, formatEta, mib, type ImageView, type OverallView } from './progress-model.ts';

const LABEL = 30;
/** Lines mode: an overall line this often. */
const LINE_EVERY_MS = 10_000;

export interface ProgressOptions {
  /** The mirror's base URL: its /status.json tells the link's goodput (bounds the ETA). */
  mirror?: string;
  out?: NodeJS.WriteStream;
  now?: () => number;
}

const rateText = (bytesPerSecond: number | undefined): string => (bytesPerSecond === undefined ? '  -- ' : mib(bytesPerSecond).padStart(5));

export function describeOverall(o: OverallView): string {
  const failed = o.imagesFailed > 0 ? `, ${o.imagesFailed} failed` : '';
  return `${o.imagesDone}/${o.images} images${failed}, ${mib(o.done)}/${o.estimated ? '~' : ''}${mib(o.total)} MiB, ${rateText(o.rate).trim()} MiB/s, ETA ${formatEta(o.eta)}`;
}

function describeImage(i: ImageView): string {
  return `${i.size === undefined ? '?' : mib(i.done)}/${i.size === undefined ? '?' : mib(i.size)} MiB ${rateText(i.rate)} MiB/s`;
}

export function attachProgress(prewarm: Prewarm, refs: readonly string[], opts: ProgressOptions = {}): () => void {
  const out = opts.out ?? process.stderr;
  const now = opts.now ?? Date.now;
  const model = new PrewarmProgress(refs);
  prewarm.on('image-start', ({ ref }) => model.started(ref, now()));
  prewarm.on('image-planned', ({ ref, blobs }) => model.planned(ref, blobs));
  prewarm.on('blob-progress', ({ digest, bytes, size }) => model.blobProgress(digest, bytes, size));
  prewarm.on('blob-done', ({ digest, size }) => model.blobProgress(digest, size, size));
  prewarm.on('image-done', (r) => model.finished(r.ref, r.ok));
  const stopLink = opts.mirror ? pollLinkRate(opts.mirror, (rate) => model.linkRate(rate)) : () => {};
  const view = out.isTTY ? attachBars(prewarm, model, out, now) : attachLines(prewarm, model, out, now);
  return () => {
    stopLink();
    view();
  };
}

/** Polls the mirror's /status.json for its link goodput every 2 s; failures are ignored (an older mirror). */
function pollLinkRate(mirror: string, onRate: (bytesPerSecond: number) => void): () => void {
  const url = new URL('/status.json', mirror);
  const timer = setInterval(() => {
    request(url, { headersTimeout: 2000, bodyTimeout: 2000 })
      .then(async (res) => {
        const doc = res.statusCode === 200 ? (await res.body.json()) as { goodput?: unknown } : (await res.body.dump(), undefined);
        if (typeof doc?.goodput === 'number') onRate(doc.goodput);
      })
      .catch(() => undefined);
  }, 2000);
  timer.unref();
  return () => clearInterval(timer);
}

function attachBars(prewarm: Prewarm, model: PrewarmProgress, out: NodeJS.WriteStream, now: () => number): () => void {
  const multi = new cliProgress.MultiBar({
    stream: out,
    clearOnComplete: false,
    hideCursor: true,
    format: ' {label} |{bar}| {pct} {text}',
    fps: 5,
  }, cliProgress.Presets.shades_classic);
  const overall = multi.create(1000, 0, { label: 'overall'.padEnd(LABEL), pct: '  0%', text: '' });
  const bars = new Map<string, cliProgress.SingleBar>();
  const permille = (done: number, size: number | undefined): number => (size ? Math.round((done / size) * 1000) : 0);
  const pct = (v: number): string => `${Math.floor(v / 10)}%`.padStart(4);
  const redraw = (): void => {
    for (const [ref, bar] of bars) {
      const i = model.image(ref);
      const v = permille(i.done, i.size);
      bar.update(v, { pct: pct(v), text: describeImage(i) });
    }
    const o = model.overall();
    const v = permille(o.done, o.total);
    overall.update(v, { label: `overall ${o.imagesDone}/${o.images} images`.padEnd(LABEL), pct: pct(v), text: describeOverall(o).replace(/^[^,]*, /, '') });
  };
  prewarm.on('image-start', ({ ref }) => {
    bars.set(ref, multi.create(1000, 0, { label: model.image(ref).label.slice(0, LABEL).padEnd(LABEL), pct: pct(0), text: '' }));
  });
  prewarm.on('image-done', (r) => {
    const bar = bars.get(r.ref);
    if (bar) multi.remove(bar);
    bars.delete(r.ref);
    multi.log(`${r.ok ? 'done  ' : 'FAILED'} ${r.ref}${r.error ? `: ${r.error}` : ''}\n`);
    redraw();
  });
  const timer = setInterval(() => {
    model.tick(now());
    redraw();
  }, 1000);
  model.tick(now());
  return () => {
    clearInterval(timer);
    model.tick(now());
    redraw();
    multi.stop();
  };
}

function attachLines(prewarm: Prewarm, model: PrewarmProgress, out: NodeJS.WriteStream, now: () => number): () => void {
  const line = (s: string): void => { out.write(`${new Date(now()).toISOString()} ${s}\n`); };
  const blobStarted = new Map<string, number>();
  prewarm.on('image-start', ({ ref }) => line(`image ${ref}: started`));
  prewarm.on('blob-start', ({ digest, size }) => {
    blobStarted.set(digest, now());
    line(`blob ${digest.slice(0, 19)} ${mib(size)} MiB: started`);
  });
  prewarm.on('blob-done', ({ digest, size }) => {
    const seconds = Math.max((now() - (blobStarted.get(digest) ?? now())) / 1000, 0.001);
    line(`blob ${digest.slice(0, 19)}: done, ${mib(size)} MiB in ${seconds.toFixed(1)} s, ${mib(size / seconds)} MiB/s`);
  });
  prewarm.on('image-done', (r) => {
    const i = model.image(r.ref);
    line(`image ${r.ref}: ${r.ok ? 'done' : `FAILED: ${r.error}`} (${mib(r.bytes)} MiB in ${(r.durationMs / 1000).toFixed(1)} s${i.rate !== undefined ? `, ${mib(i.rate)} MiB/s` : ''})`);
  });
  let lastLine = now();
  const timer = setInterval(() => {
    model.tick(now());
    if (now() - lastLine >= LINE_EVERY_MS) {
      lastLine = now();
      line(`overall ${describeOverall(model.overall())}`);
    }
  }, 1000);
  timer.unref();
  model.tick(now());
  return () => clearInterval(timer);
}

/** The final report, a line per image then the totals (MiB, MiB/s). */
export function formatReport(report: PrewarmReport): string {
  const lines: string[] = [];
  const failed = report.images.filter((i) => !i.ok);
  for (const i of report.images) {
    lines.push(`${i.ok ? 'ok    ' : 'FAILED'} ${i.ref}  ${mib(i.bytes)} MiB  ${(i.durationMs / 1000).toFixed(1)} s${i.error ? `  ${i.error}` : ''}`);
  }
  lines.push(
    `${report.images.length - failed.length} of ${report.images.length} images done, ${failed.length} failed; ` +
      `${mib(report.bytes)} MiB in ${(report.durationMs / 1000).toFixed(1)} s, goodput ${mib(report.goodput)} MiB/s`,
  );
  return lines.join('\n');
}
