/**
 * Typed errors of the transfer engine, each with a stable `code`. `retryable` tells the chunk
 * loop whether another attempt may help; the pull-through layer maps them to registry errors
 * (a digest or size mismatch and an upstream failure become UPSTREAM_ERROR for the client).
 */
import { isRetryableError, isRetryableStatus } from '../retry/policy.ts';

export abstract class TransferError extends Error {
  abstract readonly code: string;
  readonly retryable: boolean = false;
}

/**
 * The blob could not be made to match its digest. `sameBytes`: the upstream serves the same wrong
 * bytes again and again (every piece fetched twice agreed, or a piece came back wrong the same way
 * each time), so fetching again cannot help; otherwise the link kept corrupting pieces until the
 * repair deadline.
 */
export class DigestMismatchError extends TransferError {
  readonly code = 'DIGEST_MISMATCH';
  readonly sameBytes: boolean;
  constructor(readonly expected: string, readonly actual: string, opts: { sameBytes?: boolean; detail?: string } = {}) {
    super(opts.sameBytes
      ? `upstream serves the same wrong bytes for ${expected} again and again (got ${actual}${opts.detail ? `; ${opts.detail}` : ''})`
      : `blob digest mismatch: expected ${expected}, got ${actual}${opts.detail ? ` (${opts.detail})` : ''}`);
    this.name = 'DigestMismatchError';
    this.sameBytes = opts.sameBytes ?? false;
  }
}

/** The upstream declares or sends a size other than the descriptor's. */
export class SizeMismatchError extends TransferError {
  readonly code = 'SIZE_MISMATCH';
  constructor(readonly expected: number, readonly actual: number | string) {
    super(`blob size mismatch: expected ${expected} bytes, upstream says ${actual}`);
    this.name = 'SizeMismatchError';
  }
}

export class TransferAbortedError extends TransferError {
  readonly code = 'TRANSFER_ABORTED';
  constructor(reason = 'transfer aborted') {
    super(reason);
    this.name = 'TransferAbortedError';
  }
}


export class UpstreamStatusError extends TransferError {
  readonly code = 'UPSTREAM_STATUS';
  override readonly retryable: boolean;
  /**
   * `cause`: the upstream client's own failure this status stands for (an upstream it could not
   * reach is judged as a 503 here); its message, which says what to do, is kept.
   */
  constructor(readonly status: number, readonly retryAfterMs?: number, cause?: Error) {
    super(cause ? cause.message : `upstream answered ${status}`, cause ? { cause } : undefined);
    this.name = 'UpstreamStatusError';
    this.retryable = isRetryableStatus(status);
  }
}

/** A 206 whose Content-Range is not the range asked for (or unparseable). Retried. */
export class ContentRangeError extends TransferError {
  readonly code = 'CONTENT_RANGE_INVALID';
  override readonly retryable = true;
  constructor(readonly asked: string, readonly got: string | undefined) {
    super(`asked for bytes ${asked}, upstream sent Content-Range ${got ?? '(none)'}`);
    this.name = 'ContentRangeError';
  }
}

/** A 200 with the whole blob in answer to a Range request: the source does not do ranges. */
export class RangeIgnoredError extends TransferError {
  readonly code = 'RANGE_IGNORED';
  override readonly retryable = true;
  constructor() {
    super('upstream ignored the Range header (answered 200)');
    this.name = 'RangeIgnoredError';
  }
}

/** No byte arrived for stallSeconds. */
export class StallError extends TransferError {
  readonly code = 'STALLED';
  override readonly retryable = true;
  /** Cut by the stall watch (its peers delivered), not by the fixed timer. */
  readonly byWatch: boolean;
  constructor(seconds: number, detail?: string) {
    super(`no byte received for ${seconds}s${detail ? ` ${detail}` : ''}`);
    this.name = 'StallError';
    this.byWatch = detail !== undefined;
  }
}

/** A chunk or stream ended before its last byte. */
export class PrematureEndError extends TransferError {
  readonly code = 'PREMATURE_END';
  override readonly retryable = true;
  constructor(readonly at: number, readonly expectedEnd: number) {
    super(`body ended at byte ${at}, expected up to ${expectedEnd}`);
    this.name = 'PrematureEndError';
  }
}

/** Every attempt of a chunk failed. `cause` is the last failure. */
export class RetriesExhaustedError extends TransferError {
  readonly code = 'RETRIES_EXHAUSTED';
  constructor(attempts: number, cause: unknown) {
    super(`gave up after ${attempts} attempts: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'RetriesExhaustedError';
  }
}

/**
 * The mirror's own disk failed (ENOSPC, EACCES, EIO...): retrying cannot help, so the transfer fails
 * at once, and the message names the errno and the path.
 */
export class LocalIoError extends TransferError {
  readonly code = 'LOCAL_IO';
  readonly errno: string;
  readonly path: string;
  constructor(cause: NodeJS.ErrnoException, path: string, doing = 'writing') {
    const errno = cause.code ?? 'EIO';
    super(`${errno} ${doing} ${path}: ${describeErrno(errno)}`, { cause });
    this.name = 'LocalIoError';
    this.errno = errno;
    this.path = path;
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
};

function describeErrno(errno: string): string {
  return ERRNO_TEXT[errno] ?? 'local I/O error';
}

/** The transfer ran past its deadline (transfer.deadlineSeconds); asking again starts a new one. */
export class TransferDeadlineError extends TransferError {
  readonly code = 'TRANSFER_DEADLINE';
  constructor(readonly seconds: number) {
    super(`the transfer did not finish within ${seconds} s (transfer.deadlineSeconds); ask again to resume it`);
    this.name = 'TransferDeadlineError';
  }
}

/**
 * Typed errors say for themselves; otherwise only the network failures of the one list
 * (lib/retry/policy.ts) are retried: a local I/O error or a bug fails the transfer at once.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof TransferError) return err.retryable;
  return isRetryableError(err);
}
