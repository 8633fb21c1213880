/**
 * The relay's accepted bearer tokens: from the config and from a token file (one a line, `#`
 * comments), several at once so a new token can be deployed to the mirrors before the old one is
 * removed. The file is re-read when it changes (checked at most once per interval, on use), so a
 * rotation needs no restart. Comparison hashes both sides to equal length and compares every
 * accepted token with timingSafeEqual, so the time taken says nothing about any of them.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/** Shorter tokens are refused when read from the file (the config schema asks 16 too). */
export const MIN_TOKEN_LENGTH = 16;

/** A new random token: 32 bytes, base64url (43 characters). */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The tokens of a token file's text: one a line, blank lines and `#` comments skipped. */
export function parseTokenFile(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it is. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header) : null;
  return m?.[1];
}

const hash = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export interface TokenSetOptions {
  tokens?: readonly string[];
  tokenFile?: string | undefined;
  /** Least time between two checks of the file for changes (default 1000 ms). */
  checkIntervalMs?: number;
  /** Told when the file cannot be read or holds a short token (its tokens are then refused). */
  onFileError?: (err: Error) => void;
  /** Told each time the file is read with a change (at start too): how many tokens it holds. */
  onFileRead?: (tokens: number) => void;
  now?: () => number;
}

export class TokenSet {
  private readonly fixed: Buffer[];
  private fromFile: Buffer[] = [];
  private fileStamp = '';
  private checkedAt = -Infinity;
  private readonly now: () => number;

  constructor(private readonly opts: TokenSetOptions) {
    this.now = opts.now ?? Date.now;
    this.fixed = (opts.tokens ?? []).map(hash);
    this.reload();
  }

  /** How many tokens are accepted now. */
  get size(): number {
    this.refresh();
    return this.fixed.length + this.fromFile.length;
  }

  /** True when `presented` is one of the accepted tokens. */
  verify(presented: string | undefined): boolean {
    this.refresh();
    const h = hash(presented ?? '');
    let ok = false;
    // No early exit: every token is compared whatever matched.
    for (const t of [...this.fixed, ...this.fromFile]) ok = timingSafeEqual(h, t) || ok;
    return ok && presented !== undefined;
  }

  /** Reads the token file again now (SIGHUP), whatever its timestamps say. */
  reload(): void {
    this.fileStamp = '';
    this.checkedAt = -Infinity;
    this.refresh();
  }

  private refresh(): void {
    const file = this.opts.tokenFile;
    if (file === undefined) return;
    const now = this.now();
    if (now - this.checkedAt < (this.opts.checkIntervalMs ?? 1000)) return;
    this.checkedAt = now;
    try {
      const s = statSync(file);
      const stamp = `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      if (stamp === this.fileStamp) return;
      const tokens = parseTokenFile(readFileSync(file, 'utf8'));
      const short = tokens.find((t) => t.length < MIN_TOKEN_LENGTH);
      if (short !== undefined) throw new Error(`${file}: a token is shorter than ${MIN_TOKEN_LENGTH} characters`);
      this.fromFile = tokens.map(hash);
      this.fileStamp = stamp;
      this.opts.onFileRead?.(tokens.length);
    } catch (e) {
      // Fail closed: a removed or unreadable file revokes its tokens (said once per change).
      if (this.fileStamp !== 'error') this.opts.onFileError?.(e as Error);
      this.fromFile = [];
      this.fileStamp = 'error';
    }
  }
}
