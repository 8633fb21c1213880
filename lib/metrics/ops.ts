/**
 * The ops state of one mirror or relay instance: metrics, upstream health, recent errors, live
 * transfers and the store size, and the status document the status page polls.
 */
import type { Logger } from '../log/logger.ts';
import { OpsMetrics, type RequestInfo } from './ops-metrics.ts';
import { RecentErrors, type RecentError } from './recent-errors.ts';
import { RelayFigures, type RelayRow } from './relay-metrics.ts';
import { StoreSize, type StoreSizeFigures } from './store-size.ts';
import { TransferTracker, type TransfersLike, type TransferRow } from './transfer-tracker.ts';
import { UpstreamHealth, startUpstreamPings, type PingTarget, type UpstreamState } from './upstream-health.ts';
import type { Storage } from '../storage/storage.ts';

export interface OpsOptions {
  logger: Logger;
  /** The store (its size). */
  storage: Pick<Storage, 'blobs' | 'partials'>;
  /** The pull-through transfers, when the mirror has upstreams. */
  transfers?: TransfersLike;
  upstreams?: PingTarget[];
  /** Ping each upstream's /v2/ this often; 0 = never. */
  pingIntervalMs?: number;
  processMetrics?: boolean;
  version?: string;
  /** For tests: store size TTL. */
  storeSizeTtlMs?: number;
}

/** The access log's observer fields (path, repository and errorCode when the log has them). */
export interface ObservedRequest extends RequestInfo {
  path?: string;
  repository?: string;
  errorCode?: string;
}

export interface StatusDocument {
  version?: string;
  now: number;
  startedAt: number;
  uptimeSeconds: number;
  store: StoreSizeFigures | undefined;
  cache: ReturnType<OpsMetrics['summary']>;
  goodput: number;
  transfers: TransferRow[];
  upstreams: UpstreamState[];
  /** Each relay of upstreams with several. */
  relays: RelayRow[];
  /** Failures: transfers, upstream trouble, 5xx answers. */
  errors: RecentError[];
  /** Client 4xx answers (a pre-warm's or a client's expected misses): apart, so they never push failures out. */
  misses: RecentError[];
}

export class MirrorOps {
  readonly metrics: OpsMetrics;
  readonly health: UpstreamHealth;
  readonly errors = new RecentErrors(50);
  /** Upstreams with several relays add their pool here (status page and /metrics). */
  readonly relays = new RelayFigures();
  readonly misses = new RecentErrors(50);
  readonly storeSize: StoreSize;
  readonly tracker: TransferTracker | undefined;
  readonly startedAt = Date.now();
  private readonly stopPings: () => void;

  constructor(private readonly opts: OpsOptions) {
    this.health = new UpstreamHealth(opts.upstreams ?? []);
    this.storeSize = new StoreSize(opts.storage, opts.storeSizeTtlMs);
    const transfers = opts.transfers;
    this.metrics = new OpsMetrics({
      activeTransfers: () => transfers?.active.length ?? 0,
      storeSize: this.storeSize,
      health: this.health,
      processMetrics: opts.processMetrics,
    });
    this.relays.register(this.metrics.registry);
    this.tracker = transfers && new TransferTracker(transfers, {
      logger: opts.logger,
      onUpstreamBytes: (u, n) => this.metrics.upstreamBytes(u, n),
      onRetries: (u, n) => this.metrics.upstreamRetries(u, n),
      onFinished: (o) => {
        this.metrics.transferFinished(o.ok ? 'complete' : o.snapshot?.state === 'aborted' ? 'aborted' : 'failed');
        if (!o.ok) this.errors.push({ at: Date.now(), kind: 'transfer', what: `transfer ${o.upstream}`, message: o.error ?? 'failed', repository: o.repository, digest: o.digest });
      },
    });
    this.stopPings = startUpstreamPings(this.health, opts.upstreams ?? [], opts.pingIntervalMs ?? 0);
  }

  /** For the access log: counts every request, keeps failures worth a person's attention. */
  readonly observe = (info: ObservedRequest): void => {
    this.metrics.observeRequest(info);
    if (isWorthShowing(info)) {
      (info.status >= 500 ? this.errors : this.misses).push({
        at: Date.now(),
        kind: 'request',
        what: `${info.method} ${info.path ?? info.route} → ${info.status}`,
        message: info.errorCode ?? `HTTP ${info.status}`,
        repository: info.repository,
        status: info.status,
      });
    }
  };

  async status(): Promise<StatusDocument> {
    const now = Date.now();
    // The page must not wait for a long walk of a big store: it shows the last figures.
    const store = this.storeSize.peek();
    const refresh = this.storeSize.get(now).catch(() => undefined);
    const size = store ?? await refresh;
    return {
      version: this.opts.version,
      now,
      startedAt: this.startedAt,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      store: size,
      cache: this.metrics.summary(),
      goodput: this.metrics.goodputRate(),
      transfers: this.tracker?.rows(now) ?? [],
      upstreams: this.health.list(),
      relays: this.relays.rows(),
      errors: this.errors.list(),
      misses: this.misses.list(),
    };
  }

  close(): void {
    this.tracker?.stop();
    this.stopPings();
  }
}

/** 5xx always; 4xx except the ones clients cause on purpose (auth challenges, existence checks). */
function isWorthShowing(info: ObservedRequest): boolean {
  if (info.status >= 500) return true;
  if (info.status < 400 || info.status === 401) return false;
  if (info.method === 'HEAD' && info.status === 404) return false;
  return true;
}
