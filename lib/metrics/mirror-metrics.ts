/**
 * What the pull-through layer reports to the ops layer. lib/mirror depends on these two small
 * interfaces only, never on prom-client or the status page.
 */

export type CacheKind = 'manifest' | 'blob';

export interface MirrorMetrics {
  /** Served from the store without asking upstream (a local or cached manifest/blob). */
  cacheHit(kind: CacheKind): void;
  /** Had to go upstream (a manifest fetched, a blob fill started or joined). */
  cacheMiss(kind: CacheKind): void;
}

export interface UpstreamHealthRecorder {
  /** The outcome of one call to an upstream (by its key in config.upstreams). */
  record(upstream: string, ok: boolean, err?: unknown): void;
}

export const noMirrorMetrics: MirrorMetrics = { cacheHit: () => {}, cacheMiss: () => {} };
export const noUpstreamHealth: UpstreamHealthRecorder = { record: () => {} };
