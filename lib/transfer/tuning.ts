/**
 * The engine's own settings, with their defaults: what a transfer needs, independent of the
 * config file (lib/config/schema.ts's `transfer` section takes its defaults from here and adds
 * what the mirror decides: partMaxAgeHours, badContentHoldSeconds).
 */
export interface TransferTuning {
  /** The chunk size starts at nextPow2(size / chunksPerBlob), clamped to min..maxChunkBytes. */
  chunksPerBlob: number;
  minChunkBytes: number;
  maxChunkBytes: number;
  /**
   * What a corrupted byte costs: pieces of this size (at most a chunk; more for a blob of more than
   * MAX_PIECES of them) are checked against the relay's piece digests and fetched again alone.
   * A multiple of 64 KiB (the relay's /chunks unit).
   */
  pieceBytes: number;
  /** Blobs up to this size are fetched in one request. */
  smallBlobBytes: number;
  /** Parallel requests per link: floor and cap (a transfer alone on a link of its own, or per blob). */
  minConnections: number;
  maxConnections: number;
  /** A connection with no byte for this long is cut and resumed. */
  stallSeconds: number;
  /** Attempts per chunk before the transfer fails. */
  retries: number;
  /** A transfer still running after this long fails (TransferDeadlineError); what it holds stays. */
  deadlineSeconds: number;
  /** Corrupted pieces are fetched again for as long as one arrived intact within this long. */
  repairSeconds: number;
  /**
   * Readers get no byte of a blob whose pieces are not checked against piece digests (a direct
   * upstream) until the whole blob verified: only its digest proves those bytes good, and a client
   * cut after bad bytes (skopeo) fails its pull. Off, such bytes stream as they arrive and a
   * mismatch cuts the readers (a relay's readers are mirrors that check each piece themselves).
   * No default here: the role decides where the config does not say (Role.holdsUnverified,
   * server/service.ts: a relay says false). A transfer started without it holds: a caller that
   * forgets it never sends a client unchecked bytes.
   */
  holdUnverified?: boolean;
}

export const TRANSFER_DEFAULTS: Readonly<TransferTuning> = {
  chunksPerBlob: 500,
  minChunkBytes: 4 * 1024 * 1024,
  maxChunkBytes: 64 * 1024 * 1024,
  pieceBytes: 256 * 1024,
  smallBlobBytes: 4 * 1024 * 1024,
  minConnections: 8,
  maxConnections: 32,
  stallSeconds: 20,
  retries: 1000,
  deadlineSeconds: 6 * 3600,
  repairSeconds: 300,
};

/** The defaults under what is given (keys given as undefined keep their default). */
export function tuningOf(given: Partial<TransferTuning> = {}): TransferTuning {
  const out: TransferTuning = { ...TRANSFER_DEFAULTS };
  for (const [key, v] of Object.entries(given)) {
    if (v !== undefined) Object.assign(out, { [key]: v });
  }
  return out;
}
