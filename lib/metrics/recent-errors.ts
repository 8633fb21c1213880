/** The last N failures (requests and transfers) for the status page: a fixed-size ring. */

export interface RecentError {
  at: number;
  kind: 'request' | 'transfer';
  /** "GET manifest 404" or "transfer sha256:ab…". */
  what: string;
  message: string;
  repository?: string;
  digest?: string;
  status?: number;
}

export class RecentErrors {
  private readonly ring: RecentError[] = [];
  private next = 0;

  constructor(readonly capacity = 50) {}

  push(e: RecentError): void {
    if (this.ring.length < this.capacity) this.ring.push(e);
    else this.ring[this.next] = e;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first. */
  list(): RecentError[] {
    const n = this.ring.length;
    const out: RecentError[] = [];
    for (let i = 1; i <= n; i++) out.push(this.ring[(this.next - i + n) % n] as RecentError);
    return out;
  }
}
