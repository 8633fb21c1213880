/**
 * Wraps an UpstreamPort so every call's outcome feeds the upstream health registry: an answer
 * (a "not found" included) means the upstream is healthy; a network error, a timeout, a 5xx, a
 * rate limit or refused credentials mean it is failing. Calls we aborted ourselves say nothing about the upstream.
 */
import type { UpstreamPort } from '../mirror/upstream-port.ts';
import type { RangeResponse, RangeSource } from '../transfer/range-source.ts';
import type { UpstreamHealthRecorder } from './mirror-metrics.ts';

export function recordingPort(name: string, port: UpstreamPort, health: UpstreamHealthRecorder): UpstreamPort {
  const watch = <T>(p: Promise<T>, signal?: AbortSignal): Promise<T> => {
    p.then(() => health.record(name, true), (e: unknown) => {
      if (signal?.aborted) return;
      health.record(name, isAnswer(e), e);
    });
    return p;
  };
  return {
    getManifest: (repository, reference, signal) => watch(port.getManifest(repository, reference, signal), signal),
    headManifest: (repository, reference, signal) => watch(port.headManifest(repository, reference, signal), signal),
    headBlob: (repository, digest, signal) => watch(port.headBlob(repository, digest, signal), signal),
    listTags: (repository, signal) => watch(port.listTags(repository, signal), signal),
    rangeSource: (repository, digest) => recordingSource(name, port.rangeSource(repository, digest), health),
  };
}

function recordingSource(name: string, source: RangeSource, health: UpstreamHealthRecorder): RangeSource {
  const watch = (p: Promise<RangeResponse>, signal: AbortSignal): Promise<RangeResponse> => {
    p.then((res) => health.record(name, res.status < 500, res.status < 500 ? undefined : `HTTP ${res.status}`), (e: unknown) => {
      if (!signal.aborted) health.record(name, false, e);
    });
    return p;
  };
  // Everything else of the source (chunkDigests, rejected) passes as it is.
  return {
    ...source,
    fetchRange: (start, end, signal) => watch(source.fetchRange(start, end, signal), signal),
    fetchAll: (signal, from) => watch(source.fetchAll(signal, from), signal),
  };
}

/** "Not found" is a healthy upstream's answer; refused credentials and rate limits are worth showing. */
function isAnswer(e: unknown): boolean {
  return (e as { status?: number } | undefined)?.status === 404;
}
