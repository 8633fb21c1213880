/**
 * Last success and failure per upstream, fed by the mirror's real calls (record) and, optionally,
 * by a periodic ping of each upstream's /v2/ (through its upstream client) so an idle link still
 * shows its state.
 */
import type { UpstreamHealthRecorder } from './mirror-metrics.ts';

export interface UpstreamState {
  name: string;
  url?: string;
  /** undefined until the first outcome. */
  ok: boolean | undefined;
  lastOkAt?: number;
  lastFailureAt?: number;
  lastError?: string;
  consecutiveFailures: number;
  /** Duration of the last ping, ms. */
  pingMs?: number;
}

export class UpstreamHealth implements UpstreamHealthRecorder {
  private readonly states = new Map<string, UpstreamState>();

  constructor(upstreams: Array<{ name: string; url?: string }> = []) {
    for (const u of upstreams) this.states.set(u.name, { name: u.name, url: u.url, ok: undefined, consecutiveFailures: 0 });
  }

  record(upstream: string, ok: boolean, err?: unknown, now = Date.now()): void {
    const s = this.states.get(upstream) ?? { name: upstream, ok: undefined, consecutiveFailures: 0 };
    s.ok = ok;
    if (ok) {
      s.lastOkAt = now;
      s.consecutiveFailures = 0;
    } else {
      s.lastFailureAt = now;
      s.consecutiveFailures++;
      s.lastError = errorText(err);
    }
    this.states.set(upstream, s);
  }

  get(upstream: string): UpstreamState | undefined {
    const s = this.states.get(upstream);
    return s && { ...s };
  }

  list(): UpstreamState[] {
    return [...this.states.values()].map((s) => ({ ...s }));
  }

  setPing(upstream: string, ms: number): void {
    const s = this.states.get(upstream);
    if (s) s.pingMs = ms;
  }
}

export interface PingTarget {
  name: string;
  url: string;
  /**
   * One GET /v2/ through the upstream's own client (its auth, relay token and TLS settings);
   * rejects when the upstream cannot be reached or refuses us. Without it, never pinged (a relay
   * lists the upstreams it does not allow, and leaves them alone).
   */
  ping?: (signal: AbortSignal) => Promise<void>;
}

/**
 * Pings each target every `intervalMs` (the first after one interval, so short-lived processes
 * never ping). Returns a stop function.
 */
export function startUpstreamPings(health: UpstreamHealth, all: PingTarget[], intervalMs: number, timeoutMs = 10_000): () => void {
  const targets = all.filter((t) => t.ping !== undefined);
  if (intervalMs <= 0 || targets.length === 0) return () => {};
  let running = false;
  const tick = async (): Promise<void> => {
    if (running) return;
    running = true;
    await Promise.all(targets.map((t) => pingOnce(health, t, timeoutMs)));
    running = false;
  };
  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

export async function pingOnce(health: UpstreamHealth, t: PingTarget, timeoutMs = 10_000): Promise<boolean> {
  const started = performance.now();
  try {
    await t.ping?.(AbortSignal.timeout(timeoutMs));
    health.setPing(t.name, Math.round(performance.now() - started));
    health.record(t.name, true);
    return true;
  } catch (e) {
    health.record(t.name, false, `ping: ${errorText(e)}`);
    return false;
  }
}

function errorText(err: unknown): string | undefined {
  if (err === undefined) return undefined;
  if (typeof err === 'string') return err;
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } };
  const base = e.message || e.code || String(err);
  const cause = e.cause?.code ?? e.cause?.message;
  return cause && !base.includes(cause) ? `${base} (${cause})` : base;
}
