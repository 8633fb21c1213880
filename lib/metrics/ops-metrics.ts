/**
 * Prometheus metrics of one server instance, in its own registry (never prom-client's global
 * one, so tests can run several servers in one process).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RateMeter } from '../transfer/rate-meter.ts';
import type { CacheKind, MirrorMetrics } from './mirror-metrics.ts';
import type { StoreSize } from './store-size.ts';
import type { UpstreamHealth } from './upstream-health.ts';

/** Routes of the ops layer itself (server/ops), as named in res.locals.route. */
export const OPS_ROUTES = new Set(['metrics', 'status-page', 'status-json', 'health']);

export interface RequestInfo {
  method: string;
  route: string;
  status: number;
  bytes: number;
  durationMs: number;
}

export interface OpsMetricsOptions {
  /** Live transfer count, read at scrape time. */
  activeTransfers?: () => number;
  storeSize?: StoreSize;
  health?: UpstreamHealth;
  /** Window of the link goodput gauge. */
  goodputWindowSeconds?: number;
  /** Node process metrics (memory, event loop lag, ...). */
  processMetrics?: boolean;
}

export class OpsMetrics implements MirrorMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route'>;
  private readonly served: Counter<'route'>;
  private readonly cache: Counter<'kind' | 'result'>;
  private readonly upstreamBytesTotal: Counter<'upstream'>;
  private readonly retries: Counter<'upstream'>;
  private readonly transfers: Counter<'result'>;
  private readonly goodput: RateMeter;
  private readonly totals = { hits: 0, misses: 0, served: 0, upstreamBytes: 0, retries: 0 };

  constructor(opts: OpsMetricsOptions = {}) {
    const registers = [this.registry];
    const windowS = opts.goodputWindowSeconds ?? 10;
    this.goodput = new RateMeter(windowS * 1000, 500);
    this.requests = new Counter({ name: 'ferry_http_requests_total', help: 'HTTP requests by registry route, method and status', labelNames: ['route', 'method', 'status'], registers });
    this.duration = new Histogram({
      name: 'ferry_http_request_duration_seconds',
      help: 'Time to the end of the response, by route',
      labelNames: ['route'],
      buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300, 1800],
      registers,
    });
    this.served = new Counter({ name: 'ferry_http_response_bytes_total', help: 'Body bytes served to clients, by route', labelNames: ['route'], registers });
    this.cache = new Counter({ name: 'ferry_cache_requests_total', help: 'Pull-through lookups: result is hit (served from the store) or miss (fetched upstream)', labelNames: ['kind', 'result'], registers });
    for (const kind of ['manifest', 'blob']) for (const result of ['hit', 'miss']) this.cache.inc({ kind, result }, 0);
    this.upstreamBytesTotal = new Counter({ name: 'ferry_upstream_bytes_total', help: 'Blob bytes received from upstreams (refetches included)', labelNames: ['upstream'], registers });
    this.retries = new Counter({ name: 'ferry_upstream_retries_total', help: 'Blob range requests retried after a reset, stall or error', labelNames: ['upstream'], registers });
    this.transfers = new Counter({ name: 'ferry_transfers_total', help: 'Finished pull-through transfers by result (complete, failed, aborted)', labelNames: ['result'], registers });
    const goodput = this.goodput;
    new Gauge({
      name: 'ferry_link_goodput_bytes_per_second',
      help: `Blob bytes per second received from upstreams over the last ${windowS} s`,
      registers,
      collect() { this.set(goodput.rate()); },
    });
    new Gauge({
      name: 'ferry_transfers_active',
      help: 'Pull-through transfers in progress',
      registers,
      collect() { this.set(opts.activeTransfers?.() ?? 0); },
    });
    if (opts.storeSize) {
      const size = opts.storeSize;
      new Gauge({
        name: 'ferry_store_bytes',
        help: 'Bytes of blobs in the store (recomputed at most every 30 s)',
        registers,
        async collect() { this.set((await size.get()).bytes); },
      });
      new Gauge({
        name: 'ferry_store_blobs',
        help: 'Blobs in the store (recomputed at most every 30 s)',
        registers,
        async collect() { this.set((await size.get()).blobs); },
      });
    }
    if (opts.health) {
      const health = opts.health;
      new Gauge({
        name: 'ferry_upstream_up',
        help: 'Whether the last call to the upstream succeeded (1), failed (0); absent before the first',
        labelNames: ['upstream'],
        registers,
        collect() {
          this.reset();
          for (const s of health.list()) if (s.ok !== undefined) this.set({ upstream: s.name }, s.ok ? 1 : 0);
        },
      });
    }
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'ferry_' });
  }

  /** The access log's observer. */
  readonly observeRequest = (info: RequestInfo): void => {
    this.requests.inc({ route: info.route, method: info.method, status: String(info.status) });
    this.duration.observe({ route: info.route }, info.durationMs / 1000);
    if (info.bytes > 0) {
      this.served.inc({ route: info.route }, info.bytes);
      // The status page's "served" means registry content, not its own polling.
      if (!OPS_ROUTES.has(info.route)) this.totals.served += info.bytes;
    }
  };

  cacheHit(kind: CacheKind): void {
    this.cache.inc({ kind, result: 'hit' });
    this.totals.hits++;
  }

  cacheMiss(kind: CacheKind): void {
    this.cache.inc({ kind, result: 'miss' });
    this.totals.misses++;
  }

  upstreamBytes(upstream: string, bytes: number): void {
    this.upstreamBytesTotal.inc({ upstream }, bytes);
    this.goodput.add(bytes);
    this.totals.upstreamBytes += bytes;
  }

  upstreamRetries(upstream: string, n: number): void {
    this.retries.inc({ upstream }, n);
    this.totals.retries += n;
  }

  transferFinished(result: string): void {
    this.transfers.inc({ result });
  }

  /** Link goodput over the window, bytes/s. */
  goodputRate(): number {
    return this.goodput.rate();
  }

  /** Running totals since start, for the status page. */
  summary(): { hits: number; misses: number; hitRatio: number | undefined; servedBytes: number; upstreamBytes: number; retries: number } {
    const { hits, misses } = this.totals;
    return {
      hits,
      misses,
      hitRatio: hits + misses > 0 ? hits / (hits + misses) : undefined,
      servedBytes: this.totals.served,
      upstreamBytes: this.totals.upstreamBytes,
      retries: this.totals.retries,
    };
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
