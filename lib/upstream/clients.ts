/** One client per configured upstream, its secrets read now (lib/config/secrets.ts), not at config load. */
import type { LoadedConfig } from '../config/load.ts';
import { resolveSecrets } from '../config/secrets.ts';
import type { Logger } from '../log/logger.ts';
import { UpstreamClient } from './client.ts';
import { relayEndpoints } from './relay-endpoints.ts';

export function createUpstreamClients(config: LoadedConfig, logger: Logger, env: NodeJS.ProcessEnv = process.env): Map<string, UpstreamClient> {
  const clients = new Map<string, UpstreamClient>();
  for (const [name, cfg] of Object.entries(config.upstreams)) {
    const resolved = resolveSecrets(config.file, name, cfg, env);
    // Several relays: the first one only until the composite source lands (relay-endpoints.ts).
    clients.set(name, new UpstreamClient(name, relayEndpoints(resolved)[0] ?? resolved, { logger }));
  }
  return clients;
}
