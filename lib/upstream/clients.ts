/** One client per configured upstream, its secrets read now (lib/config/secrets.ts), not at config load. */
import type { LoadedConfig } from '../config/load.ts';
import { resolveSecrets } from '../config/secrets.ts';
import type { Logger } from '../log/logger.ts';
import { UpstreamClient } from './client.ts';
import { relayEndpoints } from './relay-endpoints.ts';
import { RelayPool } from './relay-pool.ts';

export interface Upstreams {
  /** The client of each upstream; for one with several relays, the first relay's. */
  clients: Map<string, UpstreamClient>;
  /** The relays of each upstream that has several. */
  pools: Map<string, RelayPool>;
  /** Closes every client and pool. */
  close(): Promise<void>;
}

/** The upstreams of a mirror or a relay: a client each, and a RelayPool of one client per relay where there are several. */
export function createUpstreams(config: LoadedConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env): Upstreams {
  const clients = new Map<string, UpstreamClient>();
  const pools = new Map<string, RelayPool>();
  const all: UpstreamClient[] = [];
  for (const [name, cfg] of Object.entries(config.upstreams)) {
    const endpoints = relayEndpoints(resolveSecrets(config.file, name, cfg, env));
    if (endpoints.length === 1) {
      const client = new UpstreamClient(name, endpoints[0] as typeof cfg, { logger });
      clients.set(name, client);
      all.push(client);
      continue;
    }
    // The other relays are the retry, so each relay gives up sooner on its own.
    const members = endpoints.map((e) => ({ url: e.url, client: new UpstreamClient(name, { ...e, retries: Math.min(e.retries, 1) }, { logger }) }));
    all.push(...members.map((m) => m.client));
    const log = logger.child({ module: 'relays', upstream: name });
    pools.set(name, new RelayPool(name, members, {
      // Each relay's route is a link of its own: the floor and cap of one link.
      connectionsPerRelay: { min: config.transfer.minConnections, max: Math.min(config.transfer.maxConnections, cfg.connections) },
      onState: (relay, state, reason) => log[state === 'down' ? 'warn' : 'info']({ relay: relay.url, state, reason }, `relay ${state}`),
      onRequest: (relay, r) => log.debug({ relay: relay.label, ...r }, 'relay range'),
    }));
    clients.set(name, members[0]?.client as UpstreamClient);
  }
  return {
    clients,
    pools,
    async close() {
      for (const p of pools.values()) p.close();
      await Promise.all(all.map((c) => c.close()));
    },
  };
}
