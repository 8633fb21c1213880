/**
 * The chains bench/link.ts measures, each started fresh for one run: ferry straight to the
 * registry over the link, ferry through a ferry relay over the link, and distribution 2.8 in
 * proxy mode over an identical link (the reference). ferry and the relay run compiled as child
 * processes (call buildFerry() first), so their peak RSS is their own.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateToken } from '../../lib/relay/tokens.ts';
import { StorePaths } from '../../lib/storage/paths.ts';
import type { FaultProxy, Faults } from '../../test/fault-proxy/proxy.ts';
import { startReferenceRegistry } from '../../test/helpers/reference-registry.ts';
import { linkConfig, startFerryProcess, startLink, type FerryProcess, type Upstream } from '../../test/e2e/transfer-fixture.ts';
import { statusField } from './rss.ts';

/**
 * ferry's upstream settings in every chain: its default 40 connections (transfer.maxConnections,
 * 32, delivering; the rest for the requests asked in the last round trip of others); retries and
 * timeouts generous, as for a link this bad.
 */
export const UPSTREAM = { connections: 40, retries: 50, headersTimeoutMs: 30_000, bodyTimeoutMs: 30_000 };

export interface Blob {
  digest: string;
  size: number;
}

export interface RunningChain {
  /** Base URL the client pulls from. */
  url: string;
  /** The link(s) the image crosses, in the chain's order (one per relay). */
  links: FaultProxy[];
  /** Bytes of these blobs complete in the server's store. */
  held(blobs: Blob[]): Promise<number>;
  /** Peak resident memory (VmHWM) of the server the client talks to. */
  peakRss(): Promise<number | undefined>;
  /** Stops the servers, then closes the links (their stats stay readable). */
  stop(): Promise<void>;
}

async function sizeOf(p: string): Promise<number> {
  return stat(p).then((s) => s.size, () => -1);
}

async function heldIn(blobs: Blob[], pathOf: (digest: string) => string): Promise<number> {
  let n = 0;
  for (const b of blobs) if ((await sizeOf(pathOf(b.digest))) === b.size) n += b.size;
  return n;
}

async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

/**
 * ferry as the mirror the client talks to, with this config and a fresh store. BENCH_MIRROR_NODE_ARGS:
 * node arguments for it before its own (e.g. `--import ./bench/lib/memory-sampler.mjs`, `--trace-gc`).
 */
async function startMirror(config: Parameters<typeof startFerryProcess>[0], links: FaultProxy[], extra: FerryProcess[] = []): Promise<RunningChain> {
  const data = await tempDir('ferry-bench-link-');
  const nodeArgs = process.env.BENCH_MIRROR_NODE_ARGS?.split(' ').filter(Boolean);
  const ferry = await startFerryProcess(config, data, 'bench-link-ferry', { compiled: true, ...(nodeArgs ? { nodeArgs } : {}) });
  const paths = new StorePaths(data);
  return {
    url: ferry.url,
    links,
    held: (blobs) => heldIn(blobs, (d) => paths.blob(d)),
    peakRss: () => ferry.peakRss(),
    async stop() {
      await ferry.stop();
      for (const p of extra) await p.stop();
      for (const l of links) await l.close();
      await rm(data, { recursive: true, force: true });
      for (const p of extra) await rm(p.dataDir, { recursive: true, force: true });
    },
  };
}

/** client -> ferry -> link -> registry. */
export async function startDirectChain(up: Upstream, link: Faults, seed: number): Promise<RunningChain> {
  const proxy = await startLink(up.registry.host, link, seed);
  return startMirror(linkConfig(proxy.url, undefined, UPSTREAM), [proxy]);
}

/** The far registry's host as the relays know it; the mirror asks a relay for far.example/<name>. */
const FAR_HOST = 'far.example';

/** A ferry relay (child process) in front of the registry, on the far side of the link, accepting `token`. */
async function startRelay(up: Upstream, name: string, token: string): Promise<FerryProcess> {
  const data = await tempDir('ferry-bench-relay-');
  return startFerryProcess({
    upstreams: { far: { url: up.registry.url, hosts: [FAR_HOST] } },
    relay: { tokens: [token], allow: ['far'] },
  }, data, name, { compiled: true, role: 'relay' });
}

/** The mirror's rule sending the image's names to the relay upstream, as far.example/<name>. */
function relayRewrite(up: Upstream): Array<{ match: string; upstream: string; upstreamName: string }> {
  const top = up.repository.split('/')[0] as string;
  return [{ match: `${top}/*`, upstream: 'relay', upstreamName: `${FAR_HOST}/${top}/*` }];
}

/** client -> ferry -> link -> ferry relay -> registry. */
export async function startRelayChain(up: Upstream, link: Faults, seed: number): Promise<RunningChain> {
  const token = generateToken();
  const relay = await startRelay(up, 'bench-link-relay', token);
  const proxy = await startLink(relay.host, link, seed);
  return startMirror({
    upstreams: { relay: { url: proxy.url, kind: 'relay', token, ...UPSTREAM } },
    rewrite: relayRewrite(up),
  }, [proxy], [relay]);
}

/**
 * client -> ferry -> { link i -> ferry relay i -> registry } for each link: one upstream listing
 * every relay (`relays`), each relay with its own token. Link i is seeded with seed + 1000 i.
 */
export async function startRelaysChain(up: Upstream, links: Faults[], seed: number): Promise<RunningChain> {
  const relays: FerryProcess[] = [];
  const proxies: FaultProxy[] = [];
  const endpoints: Array<{ url: string; token: string }> = [];
  for (const [i, link] of links.entries()) {
    const token = generateToken();
    const relay = await startRelay(up, `bench-link-relay-${i + 1}`, token);
    const proxy = await startLink(relay.host, link, seed + 1000 * i);
    relays.push(relay);
    proxies.push(proxy);
    endpoints.push({ url: proxy.url, token });
  }
  return startMirror({
    upstreams: { relay: { kind: 'relay', relays: endpoints, ...UPSTREAM } },
    rewrite: relayRewrite(up),
  }, proxies, relays);
}

/** client -> distribution 2.8 (proxy mode) -> link -> registry. */
export async function startReferenceChain(up: Upstream, link: Faults, seed: number): Promise<RunningChain> {
  const proxy = await startLink(up.registry.host, link, seed);
  const reference = await startReferenceRegistry({ name: 'bench-link-reference', proxy: { remoteUrl: proxy.url } });
  return {
    url: reference.url,
    links: [proxy],
    held: (blobs) => heldIn(blobs, (d) => {
      const hex = d.slice('sha256:'.length);
      return path.join(reference.dataDir, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    }),
    peakRss: () => statusField(reference.process.pid, 'VmHWM'),
    async stop() {
      await reference.stop();
      await proxy.close();
    },
  };
}
