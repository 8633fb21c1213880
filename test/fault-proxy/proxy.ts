/**
 * A TCP proxy that behaves like the firewalled link: a rate cap per connection and in total,
 * latency, resets, stalls, truncation, flipped bytes and going dark. Faults act on the response
 * direction (upstream -> client), where the blob bytes flow, and can be changed while
 * connections are open (`setFaults`). Every connection draws its faults from its own PRNG,
 * seeded from the proxy's seed and the connection's number, at positions in its own byte
 * stream: the n-th connection meets the same faults at the same offsets whatever the other
 * connections do and however the bytes are sliced. Memory stays bounded: the upstream socket
 * is paused while more than HIGH_WATER bytes wait to be forwarded.
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pacer } from './pacer.ts';
import { exponential, mulberry32, type Random } from './prng.ts';

export interface Faults {
  /** Bytes/s per connection, response direction. */
  rateBytesPerSec?: number;
  /** Bytes/s shared by all connections, response direction. */
  aggregateBytesPerSec?: number;
  /** Round-trip time added: each direction is delayed by half of it. */
  latencyMs?: number;
  /** Reset (RST) each connection after an exponential number of response bytes with this mean. */
  resetMeanBytes?: number;
  /** Stop forwarding (without closing) after an exponential number of bytes with this mean... */
  stallMeanBytes?: number;
  /** ...for this long; Infinity (the default) stalls for good. */
  stallMs?: number;
  /** Close each connection cleanly (FIN) after this many response bytes. */
  truncateAfterBytes?: number;
  /** Flipped bytes per MiB of response stream, on average (exponential gaps; 0.05 = one every ~20 MiB). */
  corruptPerMiB?: number;
  /** Offsets in each connection's response stream (headers included) where a byte is flipped. */
  corruptOffsets?: number[];
  /**
   * The route is gone: nothing is forwarded either way, on open connections or new ones (which
   * are accepted and then hear nothing), until it is switched off again; what waits is then
   * delivered. No timer of the link itself: only the client's own can end the wait.
   */
  dark?: boolean;
}

export interface ProxyOptions {
  target: { host: string; port: number } | string;
  seed?: number;
  faults?: Faults;
}

export interface ConnectionLog {
  id: number;
  bytesDown: number;
  bytesUp: number;
  events: string[];
  closed: boolean;
}

export interface ProxyStats {
  connections: number;
  bytesFromUpstream: number;
  bytesToClient: number;
  /**
   * Read from upstream but never forwarded: what the link held when a connection ended (a reset,
   * the client going away). Once no connection is open, bytesFromUpstream = bytesToClient + this.
   */
  bytesDropped: number;
  /** Of bytesDropped, what the link held at its own resets (the rest: connections the client or the far end closed). */
  bytesDroppedAtResets: number;
  bytesFromClient: number;
  resets: number;
  stalls: number;
  truncations: number;
  corruptions: number;
}

/**
 * What crossed one connection when (FaultProxy.trace, for timelines): `up`, request bytes as the
 * client sent them (they reach the far end half the RTT later); `down`, response bytes as they
 * are delivered to the client.
 */
export interface TraceEvent {
  /** performance.now() */
  at: number;
  connection: number;
  dir: 'up' | 'down';
  bytes: number;
  /** Of an `up` event: its first bytes as text (the request line and headers). */
  text?: string;
}

const MiB = 1024 * 1024;
const SLICE = 16 * 1024;
const HIGH_WATER = 256 * 1024;
const MAX_LOGS = 2000;

function parseTarget(t: ProxyOptions['target']): { host: string; port: number } {
  if (typeof t !== 'string') return t;
  const i = t.lastIndexOf(':');
  return { host: t.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(t.slice(i + 1)) };
}

export class FaultProxy {
  readonly stats: ProxyStats = {
    connections: 0, bytesFromUpstream: 0, bytesToClient: 0, bytesDropped: 0, bytesDroppedAtResets: 0, bytesFromClient: 0,
    resets: 0, stalls: 0, truncations: 0, corruptions: 0,
  };
  readonly logs: ConnectionLog[] = [];
  readonly seed: number;
  readonly aggregate = new Pacer(0);
  /** Every connection's traffic in time order, once trace() switched it on (benches draw timelines from it). */
  traceEvents: TraceEvent[] | undefined;
  private faultsNow: Faults;
  private readonly target: { host: string; port: number };
  private readonly server: net.Server;
  private readonly live = new Set<ProxyConnection>();
  private nextId = 1;

  constructor(opts: ProxyOptions) {
    this.target = parseTarget(opts.target);
    this.seed = opts.seed ?? 1;
    this.faultsNow = { ...opts.faults };
    // Half-open on both sides, so a client that ends its request still gets the whole answer.
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this.accept(client));
  }

  get faults(): Readonly<Faults> {
    return this.faultsNow;
  }

  get bytesFromUpstream(): number {
    return this.stats.bytesFromUpstream;
  }

  /** Connections not yet closed on both sides. */
  get openConnections(): number {
    return this.live.size;
  }

  get port(): number {
    const a = this.server.address();
    if (!a || typeof a === 'string') throw new Error('proxy is not listening');
    return a.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return this.port;
  }

  /** Merges (or with replace, swaps) the faults; open connections pick them up at once. */
  setFaults(patch: Faults, opts: { replace?: boolean } = {}): void {
    this.faultsNow = opts.replace ? { ...patch } : { ...this.faultsNow, ...patch };
    for (const c of this.live) c.replan();
  }

  /** Records the traffic of every connection from now on (traceEvents). */
  trace(): void {
    this.traceEvents ??= [];
  }

  /** @internal */
  traced(connection: number, dir: TraceEvent['dir'], buf: Uint8Array): void {
    if (!this.traceEvents) return;
    const e: TraceEvent = { at: performance.now(), connection, dir, bytes: buf.length };
    if (dir === 'up') e.text = Buffer.from(buf.subarray(0, 512)).toString('latin1');
    this.traceEvents.push(e);
  }

  clearFaults(): void {
    this.setFaults({}, { replace: true });
  }

  async close(): Promise<void> {
    for (const c of this.live) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    this.stats.connections++;
    const log: ConnectionLog = { id: this.nextId++, bytesDown: 0, bytesUp: 0, events: [], closed: false };
    this.logs.push(log);
    if (this.logs.length > MAX_LOGS) this.logs.shift();
    const upstream = net.connect({ ...this.target, allowHalfOpen: true });
    const conn = new ProxyConnection(this, client, upstream, log, connectionRandom(this.seed, log.id));
    this.live.add(conn);
    conn.onClose = () => this.live.delete(conn);
  }
}

/** The PRNG of the proxy's id-th connection: its own stream, so faults do not depend on interleaving. */
function connectionRandom(seed: number, id: number): Random {
  return mulberry32((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(id, 0x85ebca77)) >>> 0);
}

interface Plan {
  resetAt?: number;
  stallAt?: number;
  truncateAt?: number;
  corruptAt?: number;
}

class ProxyConnection {
  onClose: () => void = () => {};
  private readonly pacer = new Pacer(0);
  private readonly queue: Array<{ at: number; buf: Buffer; off: number }> = [];
  private queued = 0;
  private pos = 0;
  private plan: Plan = {};
  private pumping = false;
  private stalledForever = false;
  /** Paused by a dark link: the pump waits for replan() to light it again. */
  private waitingForLight = false;
  /** Client -> upstream bytes held while the link is dark; null stands for the client's end. */
  private readonly heldUp: Array<Buffer | null> = [];
  private upstreamEnded = false;
  /** No more bytes are forwarded. */
  private dead = false;
  private destroyed = false;

  constructor(
    private readonly proxy: FaultProxy,
    private readonly client: net.Socket,
    private readonly upstream: net.Socket,
    private readonly log: ConnectionLog,
    private readonly random: Random,
  ) {
    this.replan();
    client.on('data', (buf: Buffer) => this.forwardUp(buf));
    client.on('end', () => this.forwardUp(null));
    upstream.on('data', (buf: Buffer) => this.enqueueDown(buf));
    upstream.on('end', () => {
      this.upstreamEnded = true;
      void this.pump();
    });
    // An upstream that closes cleanly still has queued bytes to deliver; anything else ends both sides.
    upstream.on('close', (hadError) => {
      if (hadError) return this.destroy();
      this.upstreamEnded = true;
      void this.pump();
    });
    upstream.on('error', () => this.destroy());
    client.on('error', () => this.destroy());
    client.on('close', () => this.destroy());
  }

  private get faults(): Readonly<Faults> {
    return this.proxy.faults;
  }

  replan(): void {
    const f = this.faults;
    const r = this.random;
    this.plan = {
      resetAt: f.resetMeanBytes ? this.pos + exponential(r, f.resetMeanBytes) : undefined,
      stallAt: f.stallMeanBytes ? this.pos + exponential(r, f.stallMeanBytes) : undefined,
      truncateAt: f.truncateAfterBytes !== undefined ? Math.max(f.truncateAfterBytes, this.pos) : undefined,
      corruptAt: f.corruptPerMiB ? this.pos + exponential(r, MiB / f.corruptPerMiB) - 1 : undefined,
    };
    if (this.stalledForever && !f.stallMeanBytes) {
      this.stalledForever = false;
      this.pumping = false;
      void this.pump();
    }
    if (!f.dark) this.light();
  }

  /** The link is back: what waited in either direction goes on. */
  private light(): void {
    for (const buf of this.heldUp.splice(0)) this.forwardUp(buf);
    if (this.waitingForLight) {
      this.waitingForLight = false;
      void this.pump();
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.dead = true;
    this.log.closed = true;
    for (const q of this.queue) this.proxy.stats.bytesDropped += q.buf.length - q.off;
    this.queue.length = 0;
    this.queued = 0;
    this.client.destroy();
    this.upstream.destroy();
    this.onClose();
  }

  private later(fn: () => void): void {
    const half = (this.faults.latencyMs ?? 0) / 2;
    if (half > 0) setTimeout(fn, half);
    else fn();
  }

  /** Client -> upstream, after half the RTT (held while the link is dark); null ends the upstream side. */
  private forwardUp(buf: Buffer | null): void {
    if (this.faults.dark) {
      this.heldUp.push(buf);
      return;
    }
    if (buf === null) return this.later(() => this.upstream.end());
    this.proxy.stats.bytesFromClient += buf.length;
    this.log.bytesUp += buf.length;
    this.proxy.traced(this.log.id, 'up', buf);
    this.later(() => {
      if (this.dead) return;
      if (!this.upstream.write(buf)) {
        this.client.pause();
        this.upstream.once('drain', () => this.client.resume());
      }
    });
  }

  private enqueueDown(buf: Buffer): void {
    this.proxy.stats.bytesFromUpstream += buf.length;
    const at = performance.now() + (this.faults.latencyMs ?? 0) / 2;
    this.queue.push({ at, buf, off: 0 });
    this.queued += buf.length;
    if (this.queued > HIGH_WATER) this.upstream.pause();
    void this.pump();
  }

  private event(text: string): void {
    if (this.log.events.length < 100) this.log.events.push(`${text} at ${this.pos}`);
  }

  /** Applies a fault due at the current position; false when the connection stops forwarding. */
  private async applyDueFaults(): Promise<boolean> {
    const { plan, proxy } = this;
    if (plan.resetAt !== undefined && this.pos >= plan.resetAt) {
      proxy.stats.resets++;
      for (const q of this.queue) proxy.stats.bytesDroppedAtResets += q.buf.length - q.off;
      this.event('reset');
      this.client.resetAndDestroy();
      this.destroy();
      return false;
    }
    if (plan.truncateAt !== undefined && this.pos >= plan.truncateAt) {
      proxy.stats.truncations++;
      this.event('truncate');
      this.upstream.destroy();
      this.client.end();
      this.dead = true;
      return false;
    }
    if (plan.stallAt !== undefined && this.pos >= plan.stallAt) {
      proxy.stats.stalls++;
      const ms = this.faults.stallMs ?? Infinity;
      this.event(`stall ${ms}ms`);
      if (!Number.isFinite(ms)) {
        this.stalledForever = true;
        return false;
      }
      await sleep(ms);
      const mean = this.faults.stallMeanBytes;
      plan.stallAt = mean ? this.pos + exponential(this.random, mean) : undefined;
    }
    return !this.dead;
  }

  private nextFaultDistance(): number {
    let d = Infinity;
    for (const at of [this.plan.resetAt, this.plan.stallAt, this.plan.truncateAt]) {
      if (at !== undefined) d = Math.min(d, at - this.pos);
    }
    return d;
  }

  /** Flips the bytes due in this slice (it starts at this.pos): the planned ones and corruptOffsets. */
  private corrupt(slice: Buffer): Buffer {
    const f = this.faults;
    const r = this.random;
    let out = slice;
    const flip = (i: number): void => {
      if (out === slice) out = Buffer.from(slice);
      out[i] = (out[i] as number) ^ (1 + Math.floor(r() * 255));
      this.proxy.stats.corruptions++;
      this.event('corrupt');
    };
    const end = this.pos + slice.length;
    while (this.plan.corruptAt !== undefined && this.plan.corruptAt < end && f.corruptPerMiB) {
      flip(this.plan.corruptAt - this.pos);
      this.plan.corruptAt += exponential(r, MiB / f.corruptPerMiB);
    }
    for (const o of f.corruptOffsets ?? []) {
      if (o >= this.pos && o < this.pos + slice.length) flip(o - this.pos);
    }
    return out;
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.stalledForever) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.dead) {
        const head = this.queue[0] as { at: number; buf: Buffer; off: number };
        const wait = head.at - performance.now();
        if (wait > 0) await sleep(wait);
        if (this.faults.dark) {
          this.waitingForLight = true;
          return;
        }
        if (!(await this.applyDueFaults())) return;
        const n = Math.min(head.buf.length - head.off, SLICE, this.nextFaultDistance());
        this.pacer.bytesPerSecond = this.faults.rateBytesPerSec ?? 0;
        this.proxy.aggregate.bytesPerSecond = this.faults.aggregateBytesPerSec ?? 0;
        const delay = Math.max(this.pacer.reserve(n), this.proxy.aggregate.reserve(n));
        if (delay > 0) await sleep(delay);
        if (this.dead) return;
        const slice = this.corrupt(head.buf.subarray(head.off, head.off + n));
        this.pos += n;
        this.log.bytesDown += n;
        this.proxy.stats.bytesToClient += n;
        this.proxy.traced(this.log.id, 'down', slice);
        head.off += n;
        if (head.off === head.buf.length) {
          this.queue.shift();
          this.queued -= head.buf.length;
          if (this.queued <= HIGH_WATER / 2) this.upstream.resume();
        }
        if (!this.client.write(slice)) await this.drained();
      }
      if (this.queue.length === 0 && this.upstreamEnded && !this.dead) {
        if (this.faults.dark) this.waitingForLight = true;
        else this.client.end();
      }
    } finally {
      if (!this.stalledForever) this.pumping = false;
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.client.off('drain', done);
        this.client.off('close', done);
        resolve();
      };
      this.client.on('drain', done);
      this.client.on('close', done);
    });
  }
}
