/**
 * Registry hosts in names: which first component names a registry, and which configured
 * upstream serves a host. Only configured hosts are ever contacted (never an open proxy).
 */
import type { UpstreamConfig } from '../config/schema.ts';

export type UpstreamHosts = Pick<UpstreamConfig, 'url' | 'hosts'>;

/** Docker's rule (distribution/reference): a first component with a dot or colon, or localhost, is a host. */
export function looksLikeHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** Splits `quay.io/openstack.kolla/nova-api` into host and rest; one-component names have no host. */
export function splitHost(name: string): { host: string; rest: string } | undefined {
  const slash = name.indexOf('/');
  if (slash <= 0) return undefined;
  const host = name.slice(0, slash);
  return looksLikeHost(host) ? { host, rest: name.slice(slash + 1) } : undefined;
}

/** The URL host (with a non-default port) and every alias in `hosts`, lower-cased. */
export function hostsOf(upstream: UpstreamHosts): string[] {
  return [new URL(upstream.url).host, ...upstream.hosts].map((h) => h.toLowerCase());
}

/** Key of the first upstream (in config order) serving `host`, if any. */
export function upstreamForHost(upstreams: Readonly<Record<string, UpstreamHosts>>, host: string): string | undefined {
  const wanted = host.toLowerCase();
  return Object.keys(upstreams).find((key) => hostsOf(upstreams[key] as UpstreamHosts).includes(wanted));
}
