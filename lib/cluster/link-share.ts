/**
 * One link budget for the whole cluster: N replicas fetching over one upstream link must not open
 * N times the connections it wants.
 *
 * The design, the simplest that holds: each replica keeps learning its own concurrency as a lone
 * mirror does (lib/transfer/link-budget.ts), but never uses more than its share of the link's cap:
 *
 *   ceiling(upstream) = max(1, floor(cap / replicas busy on that upstream))
 *
 * where "busy" is what each live replica says in its heartbeat (replicas.ts): it has connections
 * open or requests waiting on that link. The cap is the operator's (transfer.maxConnections and
 * the upstream's `connections`), so the cluster together stays within it; a replica alone on the
 * link has all of it. Within its ceiling each replica's controller learns from its own goodput:
 * when the replicas share a saturated link each sees the goodput per connection fall and stops
 * growing at its part of what the link carries (the controllers find their shares as TCP flows
 * do), so the sum stays near what one mirror alone would learn rather than N times it.
 *
 * Why not one coordinator learning the total from everyone's goodput: it would need every
 * replica's byte counts each tick through the bucket (a second or more of delay per step of the
 * controller) and a lease per link; the ceiling needs nothing but the heartbeats that liveness
 * needs anyway. A replica that dies frees its share within the heartbeat ttl.
 */
import { LinkBudget, type LinkBudgetOptions } from '../transfer/link-budget.ts';
import type { Replicas } from './replicas.ts';

/** What a replica says about its links in its heartbeat: the upstreams it is fetching from now. */
export interface LinkHeartbeat {
  busyLinks: string[];
}

/** A link budget whose limit never exceeds the replica's share of the cluster's cap. */
export class SharedLinkBudget extends LinkBudget {
  constructor(opts: LinkBudgetOptions, private readonly ceiling: () => number) {
    super(opts);
  }

  override get limit(): number {
    return Math.max(1, Math.min(super.limit, this.ceiling()));
  }

  /** Connections open or requests waiting. */
  get busy(): boolean {
    return this.activeConnections > 0 || this.waiting > 0;
  }
}

export class SharedLinks {
  private readonly budgets = new Map<string, SharedLinkBudget>();
  private replicas: Replicas<LinkHeartbeat> | undefined;

  /** The heartbeat state of this replica's links (pass it as the Replicas' `state`). */
  heartbeat = (): LinkHeartbeat => ({
    busyLinks: [...this.budgets].filter(([, b]) => b.busy).map(([u]) => u),
  });

  /** The membership the shares are judged by (created with `state: sharedLinks.heartbeat`). */
  attach(replicas: Replicas<LinkHeartbeat>): void {
    this.replicas = replicas;
  }

  /** This replica's ceiling on `upstream` now: its share of cap among the live replicas busy there, itself counted. */
  ceiling(upstream: string, cap: number): number {
    const others = (this.replicas?.live() ?? []).filter((r) => r.id !== this.replicas?.id && r.state.busyLinks?.includes(upstream)).length;
    return Math.max(1, Math.floor(cap / (others + 1)));
  }

  /** The budget of `upstream` for this replica (one per upstream, kept for the process's life). */
  budget(upstream: string, opts: LinkBudgetOptions): SharedLinkBudget {
    let b = this.budgets.get(upstream);
    if (!b) {
      b = new SharedLinkBudget(opts, () => this.ceiling(upstream, opts.maxConnections));
      this.budgets.set(upstream, b);
    }
    return b;
  }
}
