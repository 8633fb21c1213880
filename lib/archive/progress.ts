/**
 * Byte progress for import and export: a cli-progress bar on a terminal, plain lines otherwise
 * (every 10 % or 5 s, so a log stays short and a pipe still shows life).
 */
import cliProgress from 'cli-progress';

export interface Progress {
  add(bytes: number): void;
  /** Ends the bar; prints a last line. */
  stop(): void;
}

export type ProgressFactory = (label: string, totalBytes: number) => Progress;

export const silentProgress: ProgressFactory = () => ({ add() {}, stop() {} });

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** A progress reporter writing to stream (stderr by default); a bar when it is a TTY. */
export function consoleProgress(stream: NodeJS.WriteStream = process.stderr): ProgressFactory {
  return (label, total) => (stream.isTTY ? barProgress(stream, label, total) : lineProgress(stream, label, total));
}

function barProgress(stream: NodeJS.WriteStream, label: string, total: number): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% {doneText}/{totalText} {rate}`,
      hideCursor: true,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let done = 0;
  const payload = (): Record<string, string> => ({
    doneText: formatBytes(done),
    totalText: total > 0 ? formatBytes(total) : '?',
    rate: `${formatBytes(done / Math.max(0.001, (Date.now() - started) / 1000))}/s`,
  });
  bar.start(Math.max(1, total), 0, payload());
  return {
    add(n) {
      done += n;
      bar.update(Math.min(done, Math.max(1, total)), payload());
    },
    stop() {
      bar.update(Math.max(1, total), payload());
      bar.stop();
    },
  };
}

function lineProgress(stream: NodeJS.WritableStream, label: string, total: number): Progress {
  const started = Date.now();
  let done = 0;
  let lastAt = started;
  let lastTenth = 0;
  let printed = -1;
  const line = (): void => {
    printed = done;
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    const pct = total > 0 ? ` ${Math.floor((done / total) * 100)}%` : '';
    stream.write(`${label}:${pct} ${formatBytes(done)}${total > 0 ? ` of ${formatBytes(total)}` : ''} (${formatBytes(done / secs)}/s)\n`);
  };
  return {
    add(n) {
      done += n;
      const tenth = total > 0 ? Math.floor((done / total) * 10) : 0;
      const now = Date.now();
      if (tenth > lastTenth || now - lastAt >= 5000) {
        lastTenth = tenth;
        lastAt = now;
        line();
      }
    },
    stop() {
      if (printed !== done) line();
    },
  };
}
