/**
 * The relays behind one upstream: each entry of `relays` (or the upstream's own URL for a single
 * relay) as the config of one UpstreamClient, what an entry leaves out taken from the upstream.
 */
import type { UpstreamConfig } from '../config/schema.ts';

/** One UpstreamConfig per relay, in config order; a plain registry or a single relay is one. */
export function relayEndpoints(up: UpstreamConfig): UpstreamConfig[] {
  if (!up.relays) return [up];
  return up.relays.map((r) => {
    const { relays: _all, ...rest } = up;
    const token = r.token ?? up.token;
    const caFile = r.caFile ?? up.caFile;
    return { ...rest, url: r.url, ...(token !== undefined ? { token } : {}), ...(caFile !== undefined ? { caFile } : {}) };
  });
}
