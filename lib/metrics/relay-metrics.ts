/**
 * The relays of upstreams with several (lib/upstream/relay-pool.ts) as ops figures: a row per
 * relay for the status page, and Prometheus gauges read at scrape time.
 */
import { Gauge, type Registry } from 'prom-client';
import type { RelaySnapshot, RelayState } from '../upstream/relay-pool.ts';

export interface RelayRow extends RelaySnapshot {
  upstream: string;
}

export interface RelaySource {
  readonly upstream: string;
  snapshot(): RelaySnapshot[];
}

const STATES: RelayState[] = ['healthy', 'probing', 'down'];

export class RelayFigures {
  private readonly pools: RelaySource[] = [];

  add(pool: RelaySource): void {
    this.pools.push(pool);
  }

  rows(): RelayRow[] {
    return this.pools.flatMap((p) => p.snapshot().map((s) => ({ upstream: p.upstream, ...s })));
  }

  /** ferry_relay_goodput_bytes_per_second, ferry_relay_bytes_total, ferry_relay_connections, ferry_relay_state. */
  register(registry: Registry): void {
    const registers = [registry];
    const rows = (): RelayRow[] => this.rows();
    const labelNames = ['upstream', 'relay'] as const;
    // A gauge of one figure per relay.
    const perRelay = (name: string, help: string, value: (r: RelayRow) => number): void => {
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const r of rows()) this.set({ upstream: r.upstream, relay: r.url }, value(r));
        },
      });
    };
    perRelay('ferry_relay_goodput_bytes_per_second', 'Blob bytes per second received from each relay of an upstream with several, over the last 5 s', (r) => r.goodput);
    perRelay('ferry_relay_bytes_total', 'Blob bytes received from each relay of an upstream with several, since start', (r) => r.bytes);
    perRelay('ferry_relay_connections', 'Connections each relay of an upstream with several may carry now, learned on its own goodput (each relay is a link of its own)', (r) => r.connections);
    new Gauge({
      name: 'ferry_relay_state',
      help: 'State of each relay of an upstream with several: 1 for its state (healthy, probing, down), 0 for the others',
      labelNames: [...labelNames, 'state'],
      registers,
      collect() {
        this.reset();
        for (const r of rows()) for (const state of STATES) this.set({ upstream: r.upstream, relay: r.url, state }, r.state === state ? 1 : 0);
      },
    });
  }
}
