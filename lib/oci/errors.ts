/**
 * The one table of what a registry client can be told. A *situation* is what happened
 * (MANIFEST_TOO_LARGE, UPLOAD_BUSY, UPSTREAM_UNREACHABLE...); the table gives each one its wire
 * code (OCI Distribution Spec "Error Codes", plus the Docker registry's extras) and its HTTP
 * status, declared here and nowhere else. lib/ throws RegistryError(situation) and never picks a
 * status; server/errors.ts renders it, and maps upstream and transfer failures to situations.
 */

/** Wire codes and the spec's default message for each. */
export const WIRE_CODES = {
  BLOB_UNKNOWN: 'blob unknown to registry',
  BLOB_UPLOAD_INVALID: 'blob upload invalid',
  BLOB_UPLOAD_UNKNOWN: 'blob upload unknown to registry',
  DIGEST_INVALID: 'provided digest did not match uploaded content',
  MANIFEST_BLOB_UNKNOWN: 'manifest references a manifest or blob unknown to registry',
  MANIFEST_INVALID: 'manifest invalid',
  MANIFEST_UNKNOWN: 'manifest unknown to registry',
  NAME_INVALID: 'invalid repository name',
  NAME_UNKNOWN: 'repository name not known to registry',
  SIZE_INVALID: 'provided length did not match content length',
  TAG_INVALID: 'manifest tag did not match URI',
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
  UNSUPPORTED: 'the operation is unsupported',
  TOOMANYREQUESTS: 'too many requests',
  RANGE_INVALID: 'requested range not satisfiable',
  PAGINATION_NUMBER_INVALID: 'invalid number of results requested',
  UNAVAILABLE: 'service unavailable',
  UPSTREAM_ERROR: 'upstream registry failed',
  UNKNOWN: 'unknown error',
} as const;

export type ErrorCode = keyof typeof WIRE_CODES;

interface Entry { code: ErrorCode; status: number }
const at = (code: ErrorCode, status: number): Entry => ({ code, status });

/** Situation -> wire code and HTTP status. Each wire code is also a situation of its own. */
export const SITUATIONS = {
  BLOB_UNKNOWN: at('BLOB_UNKNOWN', 404),
  BLOB_UPLOAD_INVALID: at('BLOB_UPLOAD_INVALID', 400),
  BLOB_UPLOAD_UNKNOWN: at('BLOB_UPLOAD_UNKNOWN', 404),
  DIGEST_INVALID: at('DIGEST_INVALID', 400),
  MANIFEST_BLOB_UNKNOWN: at('MANIFEST_BLOB_UNKNOWN', 400),
  MANIFEST_INVALID: at('MANIFEST_INVALID', 400),
  MANIFEST_UNKNOWN: at('MANIFEST_UNKNOWN', 404),
  NAME_INVALID: at('NAME_INVALID', 400),
  NAME_UNKNOWN: at('NAME_UNKNOWN', 404),
  SIZE_INVALID: at('SIZE_INVALID', 400),
  TAG_INVALID: at('TAG_INVALID', 400),
  UNAUTHORIZED: at('UNAUTHORIZED', 401),
  DENIED: at('DENIED', 403),
  UNSUPPORTED: at('UNSUPPORTED', 405),
  TOOMANYREQUESTS: at('TOOMANYREQUESTS', 429),
  RANGE_INVALID: at('RANGE_INVALID', 416),
  PAGINATION_NUMBER_INVALID: at('PAGINATION_NUMBER_INVALID', 400),
  UNAVAILABLE: at('UNAVAILABLE', 503),
  UPSTREAM_ERROR: at('UPSTREAM_ERROR', 502),
  UNKNOWN: at('UNKNOWN', 500),

  // --- requests ----------------------------------------------------------------------------
  /** A manifest body past the limit. */
  MANIFEST_TOO_LARGE: at('SIZE_INVALID', 413),
  /** Any other request body past its limit. */
  BODY_TOO_LARGE: at('SIZE_INVALID', 413),
  /**
   * A client or repository holds as many open upload sessions as allowed. 429, not DENIED: it is
   * not a matter of permission and clears once sessions complete, are cancelled or expire.
   */
  UPLOAD_SESSIONS_EXHAUSTED: at('TOOMANYREQUESTS', 429),
  /** Request bodies being read hold as much memory as allowed together: try again shortly. */
  BODIES_BUFFERED_BUDGET: at('TOOMANYREQUESTS', 429),
  /** Two requests at once on one upload session. */
  UPLOAD_BUSY: at('BLOB_UPLOAD_INVALID', 409),
  /** A path no route serves. */
  NO_SUCH_ENDPOINT: at('NAME_UNKNOWN', 404),
  /** GET/HEAD of a manifest by a reference that is not a valid tag: it cannot exist (PUT: MANIFEST_INVALID). */
  MANIFEST_REFERENCE_IMPOSSIBLE: at('MANIFEST_UNKNOWN', 404),
  /** A push whose name routes into a pull-through cache repository, or to no local repository. */
  PUSH_NOT_LOCAL: at('DENIED', 403),

  // --- upstream failures (server/errors.ts maps UpstreamError here) ----------------------------
  /** The upstream has no such repository (a tag list). */
  UPSTREAM_NAME_UNKNOWN: at('NAME_UNKNOWN', 404),
  /** The upstream refused us (never a 401: docker would ask for the mirror's credentials). */
  UPSTREAM_DENIED: at('DENIED', 403),
  UPSTREAM_RATE_LIMITED: at('TOOMANYREQUESTS', 429),
  /** Could not reach it at all: refused, reset, timed out, TLS not trusted. */
  UPSTREAM_UNREACHABLE: at('UNAVAILABLE', 503),
  /** It answered, badly: a 5xx, a wrong digest, something we must not pass on. */
  UPSTREAM_FAILED: at('UPSTREAM_ERROR', 502),

  // --- transfers (server/errors.ts maps TransferError here) ----------------------------------------
  /** The upstream's bytes did not verify (digest or size). */
  UPSTREAM_BAD_CONTENT: at('UPSTREAM_ERROR', 502),
  /** A transfer ran past its deadline or out of attempts: ask again later. */
  TRANSFER_GAVE_UP: at('UNAVAILABLE', 503),
  /** The mirror is stopping; the transfer resumes at the next start. */
  SHUTTING_DOWN: at('UNAVAILABLE', 503),
  /** The mirror's own disk failed (ENOSPC, EACCES...): the message names the errno and the path. */
  STORAGE_FAILED: at('UNKNOWN', 500),
  /** The object store (S3) did not answer, timed out or failed: it may be back shortly. */
  STORAGE_UNAVAILABLE: at('UNAVAILABLE', 503),

  /** Anything not foreseen: a bug. The client sees `internal error`, the log the stack. */
  INTERNAL: at('UNKNOWN', 500),
} as const satisfies Record<string, Entry>;

export type Situation = keyof typeof SITUATIONS;

export interface RegistryErrorOptions {
  /** Extra response headers (Range for a 416 on an upload, WWW-Authenticate for a 401, Retry-After). */
  headers?: Record<string, string>;
  cause?: unknown;
}

/** A failure a registry client is told about, by situation; code and status come from the table. */
export class RegistryError extends Error {
  readonly situation: Situation;
  readonly detail: unknown;
  readonly headers: Record<string, string>;

  constructor(situation: Situation, message?: string, detail?: unknown, opts: RegistryErrorOptions = {}) {
    super(message ?? WIRE_CODES[SITUATIONS[situation].code], opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'RegistryError';
    this.situation = situation;
    this.detail = detail;
    this.headers = opts.headers ?? {};
  }

  get code(): ErrorCode {
    return SITUATIONS[this.situation].code;
  }

  get status(): number {
    return SITUATIONS[this.situation].status;
  }

  toJSON(): { errors: Array<{ code: string; message: string; detail?: unknown }> } {
    const entry: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) entry.detail = this.detail;
    return { errors: [entry] };
  }
}

export const isRegistryError = (e: unknown): e is RegistryError => e instanceof RegistryError;

/** The codes that say "no such thing here" (asking elsewhere may find it). */
export function isNotFoundCode(code: ErrorCode): boolean {
  return code === 'BLOB_UNKNOWN' || code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN' || code === 'BLOB_UPLOAD_UNKNOWN';
}
