/** The Downloader backed by the chunked transfer engine (lib/transfer). */
import type { TransferConfig } from '../config/schema.ts';
import { createPrefixReader } from '../transfer/prefix-reader.ts';
import { startTransfer } from '../transfer/downloader.ts';
import type { Download, Downloader } from './ports.ts';

export function engineDownloader(config: Partial<TransferConfig>): Downloader {
  return (req): Download => {
    const transfer = startTransfer({
      digest: req.digest,
      size: req.size,
      source: req.source,
      dir: req.dir,
      config,
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
