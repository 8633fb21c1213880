/**
 * The fs backend's UploadStorage. Each session lives on disk (uploads/<uuid>/data + state.json)
 * so it survives a restart of the mirror. The running hash is kept in memory as an optimisation
 * only: when it is missing (after a restart) or out of step, completion re-hashes the data from
 * disk. Completion moves the data file into blobs/ by rename (FsBlobStorage.commitFile).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat, truncate } from 'node:fs/promises';
import { randomUUID, type Hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RegistryError } from '../oci/errors.ts';
import { newHash, requireDigest } from '../oci/digest.ts';
import { isNotFound, readIfExists, writeFileAtomic } from './atomic.ts';
import { readdirOr, type FsBlobStorage } from './blobs.ts';
import type { StorePaths } from './paths.ts';
import type { ByteRange, RepositoryStorage, StoredBlob, UploadLimits, UploadState, UploadStorage } from './storage.ts';

interface RunningHash {
  hash: Hash;
  offset: number;
}

/** Who holds an open session, kept in memory for the limits (rebuilt from disk at start). */
interface OpenSession {
  name: string;
  client?: string;
}

export class FsUploadStorage implements UploadStorage {
  private readonly hashes = new Map<string, RunningHash>();
  private readonly busy = new Set<string>();
  private readonly sessions = new Map<string, OpenSession>();

  constructor(
    private readonly paths: StorePaths,
    private readonly blobs: FsBlobStorage,
    private readonly repositories: RepositoryStorage,
    private readonly limits: UploadLimits = { perClient: Infinity, perRepository: Infinity },
  ) {}

  async init(): Promise<void> {
    await mkdir(this.paths.uploadsDir, { recursive: true });
    for (const uuid of await readdirOr(this.paths.uploadsDir)) {
      const text = await readIfExists(this.paths.uploadState(uuid)).catch(() => undefined);
      const state = text === undefined ? undefined : parseState(text);
      if (state) this.sessions.set(uuid, { name: state.name, ...(state.client === undefined ? {} : { client: state.client }) });
    }
  }

  /** Open sessions: all of them, or those of one repository or one client. */
  count(of: { name?: string; client?: string } = {}): number {
    let n = 0;
    for (const s of this.sessions.values()) if ((of.name === undefined || s.name === of.name) && (of.client === undefined || s.client === of.client)) n++;
    return n;
  }

  /** A new session, unless the client or the repository already holds as many as the limits allow. */
  async create(name: string, client?: string): Promise<UploadState> {
    const byRepository = this.count({ name });
    if (byRepository >= this.limits.perRepository) {
      throw new RegistryError('UPLOAD_SESSIONS_EXHAUSTED', `${name} has ${byRepository} open upload sessions, the most allowed; complete or cancel one, or wait for idle ones to expire`, { limit: this.limits.perRepository });
    }
    const byClient = client === undefined ? 0 : this.count({ client });
    if (byClient >= this.limits.perClient) {
      throw new RegistryError('UPLOAD_SESSIONS_EXHAUSTED', `you have ${byClient} open upload sessions, the most allowed; complete or cancel one, or wait for idle ones to expire`, { limit: this.limits.perClient });
    }
    const uuid = randomUUID();
    // Counted from now, before the first await, so concurrent starts cannot pass the limits together.
    this.sessions.set(uuid, { name, ...(client === undefined ? {} : { client }) });
    const dir = this.paths.upload(uuid);
    const state = { name, startedAt: new Date().toISOString(), ...(client === undefined ? {} : { client }) };
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(this.paths.uploadData(uuid), 'wx');
      await fh.close();
      await writeFileAtomic(this.paths.tmpDir, this.paths.uploadState(uuid), JSON.stringify(state));
    } catch (e) {
      this.forget(uuid);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw e;
    }
    this.hashes.set(uuid, { hash: newHash('sha256'), offset: 0 });
    return { uuid, name, startedAt: state.startedAt, offset: 0 };
  }

  /** The session, or BLOB_UPLOAD_UNKNOWN when it does not exist or belongs to another repository. */
  async get(name: string, uuid: string): Promise<UploadState> {
    const unknown = new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${uuid} is unknown`, { uuid });
    if (!/^[0-9a-f-]{36}$/.test(uuid)) throw unknown;
    const text = await readIfExists(this.paths.uploadState(uuid));
    if (text === undefined) throw unknown;
    const state = parseState(text);
    if (state?.name !== name) throw unknown;
    try {
      const s = await stat(this.paths.uploadData(uuid));
      return { uuid, name, startedAt: state.startedAt, offset: s.size };
    } catch (e) {
      if (isNotFound(e)) throw unknown;
      throw e;
    }
  }

  /**
   * Appends a chunk. With a Content-Range its start must be the current offset (else 416 with
   * the Range the registry holds, so the client can resume).
   */
  async append(name: string, uuid: string, source: Readable, range?: ByteRange, length?: number): Promise<UploadState> {
    return this.exclusive(uuid, async () => {
      const state = await this.get(name, uuid);
      if (range && (range.start !== state.offset || range.end < range.start)) {
        throw new RegistryError('RANGE_INVALID', `chunk starts at ${range.start}, upload holds ${state.offset} bytes`, { offset: state.offset }, {
          headers: uploadHeaders(name, state),
        });
      }
      if (range && length !== undefined && range.end - range.start + 1 !== length) {
        throw new RegistryError('SIZE_INVALID', `Content-Range ${range.start}-${range.end} does not match Content-Length ${length}`);
      }
      const running = this.hashes.get(uuid);
      const inStep = running !== undefined && running.offset === state.offset;
      if (!inStep) this.hashes.delete(uuid);
      let written = 0;
      const tap = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          written += chunk.length;
          if (inStep) running.hash.update(chunk);
          cb(null, chunk);
        },
      });
      const dataPath = this.paths.uploadData(uuid);
      const out = createWriteStream(dataPath, { flags: 'r+', start: state.offset });
      try {
        await pipeline(source, tap, out);
      } catch (e) {
        // What arrived of a cut chunk stays: the client resumes from the offset GET reports.
        this.hashes.delete(uuid);
        throw e;
      }
      if (inStep) running.offset += written;
      if (range && written !== range.end - range.start + 1) {
        // A complete chunk that contradicts its Content-Range is refused whole, not kept in part.
        this.hashes.delete(uuid);
        await truncate(dataPath, state.offset);
        throw new RegistryError('SIZE_INVALID', `chunk had ${written} bytes, Content-Range said ${range.end - range.start + 1}`);
      }
      return { ...state, offset: state.offset + written };
    });
  }

  /** Verifies the whole upload against digest and moves it into the blob store. */
  async complete(name: string, uuid: string, digest: string): Promise<StoredBlob> {
    const parsed = requireDigest(digest);
    return this.exclusive(uuid, async () => {
      const state = await this.get(name, uuid);
      const dataPath = this.paths.uploadData(uuid);
      const running = this.hashes.get(uuid);
      let actual: string;
      if (parsed.algorithm === 'sha256' && running && running.offset === state.offset) {
        actual = `sha256:${running.hash.digest('hex')}`;
      } else {
        const h = newHash(parsed.algorithm);
        await pipeline(createReadStream(dataPath, { highWaterMark: 1024 * 1024 }), async (src: AsyncIterable<Buffer>) => {
          for await (const chunk of src) h.update(chunk);
        });
        actual = `${parsed.algorithm}:${h.digest('hex')}`;
      }
      this.hashes.delete(uuid);
      if (actual !== digest) {
        throw new RegistryError('DIGEST_INVALID', `upload digest ${actual} does not match ${digest}`, { expected: digest, actual });
      }
      await this.blobs.commitFile(dataPath, digest);
      await this.repositories.linkBlob(name, digest);
      await this.remove(uuid);
      return { digest, size: state.offset };
    });
  }

  async cancel(name: string, uuid: string): Promise<void> {
    await this.get(name, uuid);
    await this.remove(uuid);
  }

  /** Removes sessions that received nothing for longer than maxIdleMs (a request on one is never cut). */
  async sweep(maxIdleMs: number): Promise<number> {
    let removed = 0;
    for (const uuid of await readdirOr(this.paths.uploadsDir)) {
      if (this.busy.has(uuid)) continue;
      let dir: string;
      try {
        dir = this.paths.upload(uuid);
      } catch {
        continue;
      }
      const s = await stat(this.paths.uploadData(uuid)).catch(() => stat(dir).catch(() => undefined));
      if (s && Date.now() - s.mtimeMs > maxIdleMs && !this.busy.has(uuid)) {
        await this.remove(uuid);
        removed++;
      }
    }
    return removed;
  }

  private async remove(uuid: string): Promise<void> {
    this.forget(uuid);
    await rm(this.paths.upload(uuid), { recursive: true, force: true });
  }

  private forget(uuid: string): void {
    this.sessions.delete(uuid);
    this.hashes.delete(uuid);
  }

  private async exclusive<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(uuid)) throw new RegistryError('UPLOAD_BUSY', `upload ${uuid} is busy with another request`, { uuid });
    this.busy.add(uuid);
    try {
      return await fn();
    } finally {
      this.busy.delete(uuid);
    }
  }
}

function parseState(text: string): { name: string; startedAt: string; client?: string } | undefined {
  try {
    const s = JSON.parse(text) as { name?: unknown; startedAt?: unknown; client?: unknown };
    if (typeof s.name !== 'string' || typeof s.startedAt !== 'string') return undefined;
    return { name: s.name, startedAt: s.startedAt, ...(typeof s.client === 'string' ? { client: s.client } : {}) };
  } catch {
    return undefined;
  }
}

/** The headers that tell a client where an upload stands. */
export function uploadHeaders(name: string, state: { uuid: string; offset: number }): Record<string, string> {
  return {
    Location: `/v2/${name}/blobs/uploads/${state.uuid}`,
    'Docker-Upload-UUID': state.uuid,
    Range: `0-${Math.max(0, state.offset - 1)}`,
  };
}
