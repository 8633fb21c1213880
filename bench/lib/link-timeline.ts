/**
 * Where a run lost the link's cap, from the link's own trace (FaultProxy.trace): each connection's
 * requests (request bytes sent, then response bytes until the next request on it), and, every
 * bin, how many requests were outstanding, how many still waited for their first byte, and what
 * the link delivered. The cap's connection-seconds (connections x wall time) not spent delivering
 * at the per-connection rate are split into: before the link's first request (the client's own
 * start, the mirror's manifest work), slots with no request outstanding, requests waiting for
 * their first byte (a round trip each), requests delivering below the rate, and after the link's
 * last byte (verification, the client's last reads). For bench/link.ts --timeline.
 */
import type { TraceEvent } from '../../test/fault-proxy/proxy.ts';
import type { ProxiedRequest } from '../../test/helpers/counting-proxy.ts';

export interface LinkRequest {
  connection: number;
  sentAt: number;
  /** First response byte (undefined: none came). */
  firstAt: number | undefined;
  lastAt: number | undefined;
  bytes: number;
  /** The request line's path (its last 8 characters) and Range header, where the trace has them. */
  asked: string;
}

/** The requests of every connection, in the order they were sent (times: performance.now()). */
export function requestsOf(events: readonly TraceEvent[]): LinkRequest[] {
  const open = new Map<number, LinkRequest>();
  const out: LinkRequest[] = [];
  for (const e of events) {
    let r = open.get(e.connection);
    if (e.dir === 'up') {
      // Request bytes after response bytes start the next request on this connection.
      if (!r || r.bytes > 0) {
        r = { connection: e.connection, sentAt: e.at, firstAt: undefined, lastAt: undefined, bytes: 0, asked: askedIn(e.text ?? '') };
        open.set(e.connection, r);
        out.push(r);
      }
      continue;
    }
    if (!r) continue;
    r.firstAt ??= e.at;
    r.lastAt = e.at;
    r.bytes += e.bytes;
  }
  return out;
}

function askedIn(text: string): string {
  const path = /^[A-Z]+ (\S+)/.exec(text)?.[1] ?? '?';
  const range = /\r\nrange: *bytes=(\S+)/i.exec(text)?.[1];
  return `${path.slice(-8)}${range ? ` ${range}` : ''}`;
}

export interface TimelineInput {
  events: readonly TraceEvent[];
  /** The client's requests to the mirror (Date.now() times). */
  client: readonly ProxiedRequest[];
  /** Connections the cap counts, and each one's rate (bytes/s). */
  connections: number;
  perConnection: number;
  binMs?: number;
  /** List every link request too. */
  requests?: boolean;
}

const ms = (n: number): string => n.toFixed(0).padStart(6);

/** The timeline and the loss split, as text. */
export function timeline(input: TimelineInput): string {
  const bin = input.binMs ?? 500;
  // Date.now() of the client's requests on the performance.now() clock of the trace.
  const perf = (epochMs: number): number => epochMs - performance.timeOrigin;
  const clientStart = perf(Math.min(...input.client.map((r) => r.at)));
  const clientEnd = perf(Math.max(...input.client.map((r) => r.doneAt || r.at)));
  const reqs = requestsOf(input.events);
  const linkStart = Math.min(...reqs.map((r) => r.sentAt));
  const linkEnd = Math.max(...reqs.map((r) => r.lastAt ?? r.sentAt));
  const rate = input.perConnection / 1000; // bytes per ms
  const lines: string[] = [];
  lines.push(`    timeline (t=0: the client's first request; link requests ${reqs.length}; per connection ${(input.perConnection / 1024).toFixed(0)} KiB/s, ${input.connections} connections):`);
  lines.push('         t ms   MB/s  %cap  asked  no-byte-yet  delivering  new-requests');
  const bins = Math.ceil((clientEnd - clientStart) / bin);
  // Connection-ms of the cap, split.
  let noRequest = 0;
  let waiting = 0;
  let slow = 0;
  let delivered = 0;
  const downs = input.events.filter((e) => e.dir === 'down');
  let di = 0;
  for (let b = 0; b < bins; b++) {
    const from = clientStart + b * bin;
    const to = Math.min(from + bin, clientEnd);
    const span = to - from;
    let bytes = 0;
    while (di < downs.length && (downs[di] as TraceEvent).at < to) {
      if ((downs[di] as TraceEvent).at >= from) bytes += (downs[di] as TraceEvent).bytes;
      di++;
    }
    // Time-weighted counts over the bin: outstanding (sent, last byte not yet), of them waiting for a first byte.
    let asked = 0;
    let noByte = 0;
    let started = 0;
    for (const r of reqs) {
      const end = r.lastAt ?? to;
      const a = Math.max(0, Math.min(end, to) - Math.max(r.sentAt, from));
      asked += a;
      noByte += Math.max(0, Math.min(r.firstAt ?? to, to) - Math.max(r.sentAt, from));
      if (r.sentAt >= from && r.sentAt < to) started++;
    }
    const inside = from >= linkStart && to <= linkEnd + bin;
    if (inside) {
      noRequest += Math.max(0, input.connections * span - asked);
      waiting += noByte;
      delivered += bytes / rate;
      slow += Math.max(0, asked - noByte - bytes / rate);
    }
    const cap = input.connections * rate * span;
    lines.push(`      ${ms(from - clientStart)} ${((bytes / span) * 1000 / 1e6).toFixed(2).padStart(6)} ${((bytes / cap) * 100).toFixed(0).padStart(5)} ${(asked / span).toFixed(1).padStart(6)} ${(noByte / span).toFixed(1).padStart(12)} ${((asked - noByte) / span).toFixed(1).padStart(11)} ${String(started).padStart(13)}`);
  }
  const total = input.connections * (clientEnd - clientStart);
  const before = input.connections * Math.max(0, linkStart - clientStart);
  const after = input.connections * Math.max(0, clientEnd - linkEnd);
  const share = (n: number): string => `${((n / total) * 100).toFixed(1)}%`;
  lines.push(`    the cap's connection-seconds over ${((clientEnd - clientStart) / 1000).toFixed(2)} s: delivered at the rate ${share(delivered)}; lost: before the link's first request (${(linkStart - clientStart).toFixed(0)} ms) ${share(before)}, no request outstanding ${share(noRequest)}, waiting for a first byte ${share(waiting)}, delivering below the rate ${share(slow)}, after the link's last byte (${(clientEnd - linkEnd).toFixed(0)} ms) ${share(after)}`);
  // Per-connection gaps between one response's last byte and the next request on it.
  const byConn = new Map<number, LinkRequest[]>();
  for (const r of reqs) byConn.set(r.connection, [...(byConn.get(r.connection) ?? []), r]);
  const gaps: number[] = [];
  for (const list of byConn.values()) {
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1] as LinkRequest;
      if (prev.lastAt !== undefined) gaps.push((list[i] as LinkRequest).sentAt - prev.lastAt);
    }
  }
  const rtts = reqs.filter((r) => r.firstAt !== undefined).map((r) => (r.firstAt as number) - r.sentAt).sort((a, b) => a - b);
  const q = (a: number[], p: number): string => (a.length ? (a[Math.min(a.length - 1, Math.floor(a.length * p))] as number).toFixed(0) : '-');
  gaps.sort((a, b) => a - b);
  const sizes = reqs.map((r) => r.bytes).sort((a, b) => a - b);
  lines.push(`    ${byConn.size} connections; requests: ${reqs.length}, bytes median ${q(sizes, 0.5)} (p10 ${q(sizes, 0.1)}, p90 ${q(sizes, 0.9)}); first byte after median ${q(rtts, 0.5)} ms (p90 ${q(rtts, 0.9)}); a connection's next request after its last byte: median ${q(gaps, 0.5)} ms (p90 ${q(gaps, 0.9)}, ${gaps.length} reuses)`);
  const blobs = input.client.filter((r) => r.path.includes('/blobs/') || r.path.includes('/manifests/'));
  lines.push(`    client: ${blobs.map((r) => `${r.method} ${r.path.includes('/manifests/') ? 'manifest' : r.path.slice(-8)} ${(perf(r.at) - clientStart).toFixed(0)}-${(perf(r.doneAt || r.at) - clientStart).toFixed(0)} ms ${(r.bytes / 1e6).toFixed(1)} MB`).join('; ')}`);
  if (input.requests) {
    lines.push('    link requests (connection, sent, first byte, last byte in ms from t=0; bytes delivered; what was asked):');
    const t = (n: number | undefined): string => (n === undefined ? '     -' : ms(n - clientStart));
    for (const r of reqs) lines.push(`      ${String(r.connection).padStart(3)} ${t(r.sentAt)} ${t(r.firstAt)} ${t(r.lastAt)} ${String(r.bytes).padStart(9)} ${r.asked}`);
  }
  return lines.join('\n');
}
