/**
 * Garbage collection: mark every blob reachable from a manifest any repository holds (tags point
 * at linked manifests; referrers are linked manifests too), then sweep what is neither marked nor
 * younger than the grace period.
 *
 * Safe beside a running mirror:
 * - uploads and pull-through transfers are not blobs until verified (the storage contract), so
 *   gc never sees them; the grace period protects a blob committed just before the manifest
 *   that will reference it;
 * - just before deleting, gc marks again from the manifests linked since the first pass and
 *   re-reads each candidate's touchedAt, which leaves only a window of one unlink wide.
 * Decisions:
 * - blob links do not mark: every pushed blob has one, so nothing
 *   would ever be freed. A link whose blob is gone (swept now, or lost earlier) is removed, so
 *   HEAD and cross-repository mounts stay truthful.
 * - a manifest link whose manifest blob is missing is reported (danglingManifests), not removed:
 *   that is damage to look at, not garbage.
 */
import type { Storage } from './storage.ts';
import { readManifestRefs } from './references.ts';

export interface GcOptions {
  /** Blobs younger than this (by touchedAt) are kept even when unreferenced. */
  graceMs: number;
  dryRun?: boolean;
  now?: () => number;
}

export interface GcReport {
  dryRun: boolean;
  repositories: number;
  manifests: number;
  /** Blobs reachable from some manifest. */
  markedBlobs: number;
  scannedBlobs: number;
  /** Unreferenced blobs deleted (or that would be, on a dry run). */
  deletedBlobs: number;
  freedBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  youngBlobs: number;
  youngBytes: number;
  /** Blob links removed (or that would be) because their blob is gone. */
  removedLinks: number;
  /** repository@digest of linked manifests whose blob is missing. */
  danglingManifests: string[];
}

interface MarkState {
  marked: Set<string>;
  visited: Set<string>;
  manifests: number;
  dangling: Set<string>;
}

/** Marks from every manifest and tag of every repository; reuses state so a second pass only reads what is new. */
export async function markReachable(store: Storage, state: MarkState = newMarkState()): Promise<MarkState> {
  const visit = async (repo: string, digest: string): Promise<void> => {
    if (state.visited.has(digest)) return;
    state.visited.add(digest);
    state.marked.add(digest);
    state.manifests++;
    const refs = await readManifestRefs(store, digest);
    if (!refs) {
      if (!(await store.blobs.has(digest))) state.dangling.add(`${repo}@${digest}`);
      return;
    }
    for (const b of refs.blobs) state.marked.add(b.digest);
    for (const c of refs.children) await visit(repo, c.digest);
  };
  for (const repo of await store.repositories.listRepositories()) {
    for (const digest of await store.repositories.listManifests(repo)) await visit(repo, digest);
    for (const tag of await store.repositories.listTags(repo)) {
      const digest = await store.repositories.getTag(repo, tag);
      if (digest) await visit(repo, digest);
    }
  }
  return state;
}

export function newMarkState(): MarkState {
  return { marked: new Set(), visited: new Set(), manifests: 0, dangling: new Set() };
}

export async function collectGarbage(store: Storage, opts: GcOptions): Promise<GcReport> {
  const now = opts.now ?? Date.now;
  const dryRun = opts.dryRun ?? false;
  const state = await markReachable(store);
  const report: GcReport = {
    dryRun,
    repositories: 0,
    manifests: 0,
    markedBlobs: 0,
    scannedBlobs: 0,
    deletedBlobs: 0,
    freedBytes: 0,
    youngBlobs: 0,
    youngBytes: 0,
    removedLinks: 0,
    danglingManifests: [],
  };
  const candidates: Array<{ digest: string; size: number }> = [];
  for await (const blob of store.blobs.list()) {
    report.scannedBlobs++;
    if (state.marked.has(blob.digest)) continue;
    if (now() - blob.touchedAt < opts.graceMs) {
      report.youngBlobs++;
      report.youngBytes += blob.size;
      continue;
    }
    candidates.push({ digest: blob.digest, size: blob.size });
  }

  // Manifests pushed while we listed may reference an old blob (a mount, or a layer the client skipped).
  await markReachable(store, state);
  const gone = new Set<string>();
  for (const c of candidates) {
    if (state.marked.has(c.digest)) continue;
    const fresh = await store.blobs.stat(c.digest);
    if (!fresh) continue;
    if (now() - fresh.touchedAt < opts.graceMs) {
      report.youngBlobs++;
      report.youngBytes += fresh.size;
      continue;
    }
    if (!dryRun) await store.blobs.delete(c.digest);
    gone.add(c.digest);
    report.deletedBlobs++;
    report.freedBytes += fresh.size;
  }

  for (const repo of await store.repositories.listAllRepositories()) {
    for (const digest of await store.repositories.listBlobs(repo)) {
      const missing = gone.has(digest) || !(await store.blobs.has(digest));
      if (!missing) continue;
      if (!dryRun) await store.repositories.unlinkBlob(repo, digest);
      report.removedLinks++;
    }
  }
  report.repositories = (await store.repositories.listRepositories()).length;
  report.manifests = state.manifests;
  report.markedBlobs = state.marked.size;
  report.danglingManifests = [...state.dangling].sort();
  return report;
}

/** `90s`, `15m`, `1h`, `2d`, `500ms` or a bare number of seconds, in milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(text)} (e.g. 30m, 1h, 2d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * unit);
}
