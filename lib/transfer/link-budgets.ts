/**
 * One LinkBudget per upstream, kept for the process's life and (with a LinkState) across
 * restarts: what it learned about the link carries over, so the next image starts where the last
 * left off. A transfer without an upstream gets the link of no name.
 */
import { LinkBudget, type LinkBudgetOptions } from './link-budget.ts';
import type { LinkState } from './link-state.ts';
import type { TransferTuning } from './tuning.ts';

export interface LinkBudgetsOptions {
  /** The upstream's `connections`: its link never carries more requests than that. */
  connectionsFor?: (upstream: string) => number | undefined;
  /** Where each link's learned state is kept between restarts; without it, only for this process's life. */
  linkState?: LinkState;
  /** The connections an upstream of several relays may carry now (the sum of its relays' own: RelayPool.capacity()). */
  capacityFor?: (upstream: string) => (() => number) | undefined;
  /** Makes an upstream's budget (replicas sharing the link: lib/cluster/link-share.ts); a LinkBudget of its own by default. */
  linkBudget?: (upstream: string, opts: LinkBudgetOptions) => LinkBudget;
}

export class LinkBudgets {
  private readonly links = new Map<string, LinkBudget>();

  constructor(private readonly tuning: Pick<TransferTuning, 'minConnections' | 'maxConnections'>, private readonly opts: LinkBudgetsOptions = {}) {}

  /** The link to `upstream`, made on first use. */
  get(upstream: string | undefined): LinkBudget {
    const key = upstream ?? '';
    let link = this.links.get(key);
    if (link) return link;
    const cap = upstream === undefined ? undefined : this.opts.connectionsFor?.(upstream);
    const state = this.opts.linkState;
    const learned = state?.get(key);
    const limitFrom = upstream === undefined ? undefined : this.opts.capacityFor?.(upstream);
    const opts: LinkBudgetOptions = {
      minConnections: this.tuning.minConnections,
      maxConnections: Math.min(this.tuning.maxConnections, cap ?? Infinity),
      // One route's sockets; several relays each have their own agent of `connections` beside their own limit.
      ...(cap !== undefined && !limitFrom ? { connections: cap } : {}),
      ...(limitFrom ? { limitFrom } : {}),
      ...(learned && !limitFrom ? { learned } : {}),
      ...(state && !limitFrom ? { onLearned: (l) => state.set(key, l) } : {}),
    };
    link = upstream !== undefined && this.opts.linkBudget ? this.opts.linkBudget(upstream, opts) : new LinkBudget(opts);
    this.links.set(key, link);
    return link;
  }
}
