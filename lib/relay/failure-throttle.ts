/**
 * Slows down token guessing: each address has a failure score that grows by one per refused
 * request and halves every `halfLifeMs` without failures; a refused request is answered only
 * after `baseMs * 2^(score - 2)` (the first failure is free), capped at `maxDelayMs`. Memory is
 * bounded by an LRU of `maxAddresses` entries, so a flood of addresses only forgets old scores.
 */
import { LRUCache } from 'lru-cache';

export interface FailureThrottleOptions {
  baseMs?: number;
  maxDelayMs?: number;
  halfLifeMs?: number;
  maxAddresses?: number;
  now?: () => number;
}

interface Score {
  value: number;
  at: number;
}

export class FailureThrottle {
  private readonly scores: LRUCache<string, Score>;
  private readonly baseMs: number;
  private readonly maxDelayMs: number;
  private readonly halfLifeMs: number;
  private readonly now: () => number;

  constructor(opts: FailureThrottleOptions = {}) {
    this.baseMs = opts.baseMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 10_000;
    this.halfLifeMs = opts.halfLifeMs ?? 60_000;
    this.now = opts.now ?? Date.now;
    this.scores = new LRUCache({ max: opts.maxAddresses ?? 10_000 });
  }

  /** The decayed failure score of an address now. */
  score(address: string): number {
    const s = this.scores.get(address);
    if (!s) return 0;
    return s.value * 0.5 ** ((this.now() - s.at) / this.halfLifeMs);
  }

  /** Books one refused request; returns how long to wait before answering it. */
  fail(address: string): number {
    const value = this.score(address) + 1;
    this.scores.set(address, { value, at: this.now() });
    return this.delayFor(value);
  }

  /** The delay a failure at this score earns. */
  delayFor(score: number): number {
    if (score < 2) return 0;
    return Math.min(this.maxDelayMs, Math.round(this.baseMs * 2 ** (score - 2)));
  }

  get addresses(): number {
    return this.scores.size;
  }
}
