/**
 * An htpasswd file of bcrypt entries (`user:$2y$...`, as `htpasswd -B` writes). bcrypt costs tens
 * of milliseconds per check and a push sends dozens of requests, so a successful check is
 * remembered for a few minutes (keyed by a hash of user and password, never the password).
 * The file is re-read when its mtime changes, checked at most every few seconds.
 */
import { OperatorError } from '../../lib/operator-error.ts';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';

export class HtpasswdError extends OperatorError {
  constructor(message: string) {
    super(message, 'config', { configKey: 'auth.htpasswd' });
    this.name = 'HtpasswdError';
  }
}

/** user -> bcrypt hash. Throws on lines that are not bcrypt entries (other schemes are refused, not ignored). */
export function parseHtpasswd(text: string, file = 'htpasswd'): Map<string, string> {
  const users = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new HtpasswdError(`${file}:${i + 1}: not a "user:bcrypt-hash" line (create entries with htpasswd -B)`);
    }
    users.set(user, hash);
  });
  return users;
}

export class Htpasswd {
  private users = new Map<string, string>();
  private mtimeMs = -1;
  private checkedAt = 0;
  private readonly verified = new LRUCache<string, true>({ max: 1000, ttl: 5 * 60_000 });

  constructor(readonly file: string, private readonly recheckMs = 5000) {
    this.reload();
  }

  /** Reads the file when it changed. Throws HtpasswdError when it cannot be read or parsed. */
  reload(): void {
    let st;
    try {
      st = statSync(this.file);
    } catch (e) {
      throw new HtpasswdError(`${this.file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    this.checkedAt = Date.now();
    if (st.mtimeMs === this.mtimeMs) return;
    this.users = parseHtpasswd(readFileSync(this.file, 'utf8'), this.file);
    this.mtimeMs = st.mtimeMs;
    this.verified.clear();
  }

  get size(): number {
    return this.users.size;
  }

  async verify(user: string, password: string): Promise<boolean> {
    if (Date.now() - this.checkedAt > this.recheckMs) {
      // A broken edit keeps the users of the last good file rather than locking everyone out.
      try { this.reload(); } catch { this.checkedAt = Date.now(); }
    }
    const hash = this.users.get(user);
    if (hash === undefined) return false;
    const key = createHash('sha256').update(`${hash}\0${user}\0${password}`).digest('hex');
    if (this.verified.has(key)) return true;
    const ok = await bcrypt.compare(password, hash.replace(/^\$2y\$/, '$2b$'));
    if (ok) this.verified.set(key, true);
    return ok;
  }
}
