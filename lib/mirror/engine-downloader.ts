/** The Downloader backed by the chunked transfer engine (lib/transfer). */
import { transferSchema, type TransferConfig } from '../config/schema.ts';
import { LinkBudget } from '../transfer/link-budget.ts';
import { createPrefixReader } from '../transfer/prefix-reader.ts';
import { startTransfer } from '../transfer/downloader.ts';
import type { Download, Downloader } from './ports.ts';

export interface EngineDownloaderOptions {
  /** The upstream's `connections`: its link never carries more chunk requests than that. */
  connectionsFor?: (upstream: string) => number | undefined;
}

export function engineDownloader(config: Partial<TransferConfig>, opts: EngineDownloaderOptions = {}): Downloader {
  const cfg = transferSchema.parse(config);
  // One budget per upstream, kept for the mirror's life: what it learned about the link carries over.
  const links = new Map<string, LinkBudget>();
  const linkFor = (upstream: string | undefined): LinkBudget => {
    const key = upstream ?? '';
    let link = links.get(key);
    if (!link) {
      const cap = upstream === undefined ? undefined : opts.connectionsFor?.(upstream);
      link = new LinkBudget({ minConnections: cfg.minConnections, maxConnections: Math.min(cfg.maxConnections, cap ?? Infinity) });
      links.set(key, link);
    }
    return link;
  };
  return (req): Download => {
    const transfer = startTransfer({
      digest: req.digest,
      size: req.size,
      source: req.source,
      dir: req.dir,
      config,
      link: linkFor(req.upstream),
      onVerified: (partPath) => req.commit(partPath),
    });
    return {
      digest: req.digest,
      size: req.size,
      createReader: (start, end) => createPrefixReader(transfer, start, end),
      done: transfer.done.then(() => undefined),
      abort: (reason) => transfer.abort(reason),
      snapshot: () => transfer.snapshot(),
    };
  };
}
