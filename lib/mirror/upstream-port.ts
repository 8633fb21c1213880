/**
 * An upstream as the pull-through layer sees it (UpstreamPort): one registry or relay
 * (UpstreamClient), or several relays of one upstream (RelayPool). Its range source is the
 * upstream's own (client.rangeSource, relayRangeSource); lib/metrics/recording-port.ts records
 * the outcome of every call for the upstream's health.
 */
import { RegistryError } from '../oci/errors.ts';
import type { UpstreamClient } from '../upstream/client.ts';
import { firstRelay } from '../upstream/relay-failover.ts';
import type { RelayPool } from '../upstream/relay-pool.ts';
import { relayRangeSource } from '../upstream/relay-range-source.ts';
import type { RangeSource } from '../transfer/range-source.ts';

export interface UpstreamManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export interface UpstreamPort {
  getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<UpstreamManifest>;
  /** undefined when the upstream does not have it. */
  headManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ digest: string; mediaType: string; size: number } | undefined>;
  headBlob(repository: string, digest: string, signal?: AbortSignal): Promise<{ size: number }>;
  /** What the transfer engine pulls the blob's bytes from. */
  rangeSource(repository: string, digest: string): RangeSource;
  listTags(repository: string, signal?: AbortSignal): Promise<string[]>;
}

type Call = <T>(fn: (client: UpstreamClient, signal: AbortSignal | undefined) => Promise<T>, signal: AbortSignal | undefined) => Promise<T>;

function portOver(name: string, call: Call, rangeSource: (repository: string, digest: string) => RangeSource): UpstreamPort {
  return {
    getManifest: (repository, reference, signal) => call((c, s) => c.getManifest(repository, reference, s), signal),
    headManifest: (repository, reference, signal) => call((c, s) => c.headManifest(repository, reference, s), signal),
    async headBlob(repository, digest, signal) {
      const head = await call((c, s) => c.headBlob(repository, digest, s), signal);
      if (!head) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${name}/${repository}`, { digest, upstream: name });
      return { size: head.size };
    },
    rangeSource,
    listTags: (repository, signal) => call((c, s) => c.listTags(repository, s), signal),
  };
}

export function upstreamPort(client: UpstreamClient): UpstreamPort {
  return portOver(client.name, (fn, signal) => fn(client, signal), (repository, digest) => client.rangeSource(repository, digest));
}

/** Several relays of one upstream: small requests to one healthy relay, blob ranges spread over all. */
export function relaysPort(pool: RelayPool): UpstreamPort {
  return portOver(pool.upstream, (fn, signal) => firstRelay(pool, fn, signal), (repository, digest) => relayRangeSource(pool, repository, digest));
}
