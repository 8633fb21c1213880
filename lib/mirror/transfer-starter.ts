/** The TransferStarter backed by the chunked transfer engine (lib/transfer). */
import { transferSchema, type TransferConfig } from '../config/schema.ts';
import { LinkBudget } from '../transfer/link-budget.ts';
import type { LinkState } from '../transfer/link-state.ts';
import { createPrefixReader } from '../transfer/prefix-reader.ts';
import { startTransfer } from '../transfer/transfer.ts';
import type { RunningTransfer, TransferStarter } from './ports.ts';

export interface TransferStarterOptions {
  /** The upstream's `connections`: its link never carries more chunk requests than that. */
  connectionsFor?: (upstream: string) => number | undefined;
  /** Where each link's learned state is kept between restarts; without it, only for this process's life. */
  linkState?: LinkState;
  /** The connections an upstream of several relays may carry now (the sum of its relays' own: RelayPool.capacity()). */
  capacityFor?: (upstream: string) => (() => number) | undefined;
}

export function engineTransferStarter(config: Partial<TransferConfig>, opts: TransferStarterOptions = {}): TransferStarter {
  const cfg = transferSchema.parse(config);
  // One budget per upstream, kept for the mirror's life and (linkState) across restarts: what it
  // learned about the link carries over, so the next image starts where the last left off.
  const links = new Map<string, LinkBudget>();
  const linkFor = (upstream: string | undefined): LinkBudget => {
    const key = upstream ?? '';
    let link = links.get(key);
    if (!link) {
      const cap = upstream === undefined ? undefined : opts.connectionsFor?.(upstream);
      const state = opts.linkState;
      const learned = state?.get(key);
      const limitFrom = upstream === undefined ? undefined : opts.capacityFor?.(upstream);
      link = new LinkBudget({
        minConnections: cfg.minConnections,
        maxConnections: Math.min(cfg.maxConnections, cap ?? Infinity),
        ...(limitFrom ? { limitFrom } : {}),
        ...(learned && !limitFrom ? { learned } : {}),
        ...(state && !limitFrom ? { onLearned: (l) => state.set(key, l) } : {}),
      });
      links.set(key, link);
    }
    return link;
  };
  return (req): RunningTransfer => {
    const transfer = startTransfer({
      digest: req.digest,
      size: req.size,
      source: req.source,
      partials: req.partials,
      config,
      link: linkFor(req.upstream),
      afterCommit: () => req.afterCommit(),
    });
    const firstByte = new Promise<void>((resolve, reject) => {
      const onAdvance = (released: number): void => {
        if (released > 0) resolve();
      };
      transfer.on('advance', onAdvance);
      transfer.done.then(() => resolve(), reject).finally(() => transfer.off('advance', onAdvance));
    });
    firstByte.catch(() => {});
    return {
      firstByte,
      digest: req.digest,
      size: req.size,
      createReader: (start, end) => createPrefixReader(transfer, start, end),
      done: transfer.done.then(() => undefined),
      abort: (reason) => transfer.abort(reason),
      snapshot: () => transfer.snapshot(),
    };
  };
}
