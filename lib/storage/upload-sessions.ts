/**
 * What every UploadStorage backend decides the same way: the session limits (who holds how many
 * open sessions, kept in memory), one request at a time per session, where a chunk may start,
 * and the session record's shape.
 */
import type { Hash } from 'node:crypto';
import { newHash, requireDigest } from '../oci/digest.ts';
import { RegistryError } from '../oci/errors.ts';
import type { ByteRange, UploadLimits } from './storage.ts';

/** The session record a backend keeps (state.json). */
export interface SessionRecord {
  name: string;
  startedAt: string;
  client?: string;
}

/** The headers that tell a client where an upload stands. */
export function uploadHeaders(name: string, state: { uuid: string; offset: number }): Record<string, string> {
  return {
    Location: `/v2/${name}/blobs/uploads/${state.uuid}`,
    'Docker-Upload-UUID': state.uuid,
    Range: `0-${Math.max(0, state.offset - 1)}`,
  };
}

export const UPLOAD_ID = /^[0-9a-f-]{36}$/;

export function unknownUpload(uuid: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${uuid} is unknown`, { uuid });
}

export function newSessionRecord(name: string, client?: string): SessionRecord {
  return { name, startedAt: new Date().toISOString(), ...(client === undefined ? {} : { client }) };
}

export function parseSessionRecord(text: string): SessionRecord | undefined {
  try {
    const s = JSON.parse(text) as { name?: unknown; startedAt?: unknown; client?: unknown };
    if (typeof s.name !== 'string' || typeof s.startedAt !== 'string') return undefined;
    return { name: s.name, startedAt: s.startedAt, ...(typeof s.client === 'string' ? { client: s.client } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * A chunk with a Content-Range must start at the offset held (else RANGE_INVALID with the Range
 * the registry holds, so the client can resume) and agree with its Content-Length.
 */
export function checkChunkStart(name: string, state: { uuid: string; offset: number }, range?: ByteRange, length?: number): void {
  if (range && (range.start !== state.offset || range.end < range.start)) {
    throw new RegistryError('RANGE_INVALID', `chunk starts at ${range.start}, upload holds ${state.offset} bytes`, { offset: state.offset }, {
      headers: uploadHeaders(name, state),
    });
  }
  if (range && length !== undefined && range.end - range.start + 1 !== length) {
    throw new RegistryError('SIZE_INVALID', `Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`);
  }
}

/** A session's sha256 as its bytes arrived (kept in memory by the process that received them). */
export interface RunningHash {
  hash: Hash;
  /** How many bytes it has seen. */
  offset: number;
}

/**
 * Completion's check: the session's bytes must have `digest`. The running hash serves when it is
 * sha256 and `inStep` (it saw exactly the bytes held); else the bytes are read back and hashed.
 * DIGEST_INVALID otherwise.
 */
export async function verifyUpload(digest: string, running: RunningHash | undefined, inStep: boolean, bytes: () => AsyncIterable<Buffer>): Promise<void> {
  const { algorithm } = requireDigest(digest);
  let actual: string;
  if (algorithm === 'sha256' && running && inStep) {
    actual = `sha256:${running.hash.digest('hex')}`;
  } else {
    const h = newHash(algorithm);
    for await (const chunk of bytes()) h.update(chunk);
    actual = `${algorithm}:${h.digest('hex')}`;
  }
  if (actual !== digest) {
    throw new RegistryError('DIGEST_INVALID', `upload digest ${actual} does not match ${digest}`, { expected: digest, actual });
  }
}

/** A complete chunk must fill its Content-Range. */
export function checkChunkLength(written: number, range?: ByteRange): void {
  if (range && written !== range.end - range.start + 1) {
    throw new RegistryError('SIZE_INVALID', `chunk had ${written} bytes, Content-Range said ${range.end - range.start + 1}`);
  }
}

/** The open sessions known here (for the limits: this process's, or a bucket's as last listed) and the ones a request is working on. */
export class UploadSessions {
  private readonly open = new Map<string, { name: string; client?: string }>();
  private readonly busy = new Set<string>();

  constructor(private readonly limits: UploadLimits = { perClient: Infinity, perRepository: Infinity }) {}

  count(of: { name?: string; client?: string } = {}): number {
    let n = 0;
    for (const uuid of this.open.keys()) if (this.matches(uuid, of)) n++;
    return n;
  }

  /**
   * Counts a new session in (before the first await of its creation, so concurrent starts cannot
   * pass the limits together), unless the client or the repository holds as many as allowed.
   */
  admit(uuid: string, name: string, client?: string): void {
    this.refuseOverLimits(name, client);
    this.add(uuid, { name, ...(client === undefined ? {} : { client }) });
  }

  /** Whether any limit is set (else nothing needs counting). */
  get limited(): boolean {
    return Number.isFinite(this.limits.perRepository) || Number.isFinite(this.limits.perClient);
  }

  /** UPLOAD_SESSIONS_EXHAUSTED when the sessions counted here (but `except`) leave no room for one more of name and client. */
  refuseOverLimits(name: string, client?: string, except?: string): void {
    const others = (of: { name?: string; client?: string }): number => this.count(of) - (except !== undefined && this.matches(except, of) ? 1 : 0);
    const byRepository = others({ name });
    if (byRepository >= this.limits.perRepository) {
      throw new RegistryError('UPLOAD_SESSIONS_EXHAUSTED', `${name} has ${byRepository} open upload sessions, the most allowed; complete or cancel one, or wait for idle ones to expire`, { limit: this.limits.perRepository });
    }
    const byClient = client === undefined ? 0 : others({ client });
    if (byClient >= this.limits.perClient) {
      throw new RegistryError('UPLOAD_SESSIONS_EXHAUSTED', `you have ${byClient} open upload sessions, the most allowed; complete or cancel one, or wait for idle ones to expire`, { limit: this.limits.perClient });
    }
  }

  has(uuid: string): boolean {
    return this.open.has(uuid);
  }

  private matches(uuid: string, of: { name?: string; client?: string }): boolean {
    const s = this.open.get(uuid);
    return s !== undefined && (of.name === undefined || s.name === of.name) && (of.client === undefined || s.client === of.client);
  }

  /** A session found in the store (at start). */
  add(uuid: string, record: { name: string; client?: string }): void {
    this.open.set(uuid, { name: record.name, ...(record.client === undefined ? {} : { client: record.client }) });
  }

  forget(uuid: string): void {
    this.open.delete(uuid);
  }

  uuids(): string[] {
    return [...this.open.keys()];
  }

  isBusy(uuid: string): boolean {
    return this.busy.has(uuid);
  }

  /** fn with the session held; a second request meanwhile is UPLOAD_BUSY. */
  async exclusive<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(uuid)) throw new RegistryError('UPLOAD_BUSY', `upload ${uuid} is busy with another request`, { uuid });
    this.busy.add(uuid);
    try {
      return await fn();
    } finally {
      this.busy.delete(uuid);
    }
  }
}
