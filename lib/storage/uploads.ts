/**
 * The fs backend's UploadStorage. Each session lives on disk (uploads/<uuid>/data + state.json)
 * so it survives a restart of the mirror. The running hash is kept in memory as an optimisation
 * only: when it is missing (after a restart) or out of step, completion re-hashes the data from
 * disk. Completion moves the data file into blobs/ by rename (FsBlobStorage.commitFile).
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat, truncate } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { newHash, requireDigest } from '../oci/digest.ts';
import { isNotFound, readIfExists, writeFileAtomic } from './atomic.ts';
import { readdirOr, type FsBlobStorage } from './blobs.ts';
import type { StorePaths } from './paths.ts';
import type { ByteRange, RepositoryStorage, StoredBlob, UploadLimits, UploadState, UploadStorage } from './storage.ts';
import {
  UPLOAD_ID, UploadSessions, checkChunkLength, checkChunkStart, newSessionRecord, parseSessionRecord, unknownUpload, verifyUpload, type RunningHash,
} from './upload-sessions.ts';

export { uploadHeaders } from './upload-sessions.ts';

export class FsUploadStorage implements UploadStorage {
  private readonly hashes = new Map<string, RunningHash>();
  /** Who holds an open session, kept in memory for the limits (rebuilt from disk at start). */
  private readonly sessions: UploadSessions;

  constructor(
    private readonly paths: StorePaths,
    private readonly blobs: FsBlobStorage,
    private readonly repositories: RepositoryStorage,
    limits?: UploadLimits,
  ) {
    this.sessions = new UploadSessions(limits);
  }

  async init(): Promise<void> {
    await mkdir(this.paths.uploadsDir, { recursive: true });
    for (const uuid of await readdirOr(this.paths.uploadsDir)) {
      const text = await readIfExists(this.paths.uploadState(uuid)).catch(() => undefined);
      const state = text === undefined ? undefined : parseSessionRecord(text);
      if (state) this.sessions.add(uuid, state);
    }
  }

  /** Open sessions: all of them, or those of one repository or one client. */
  async count(of: { name?: string; client?: string } = {}): Promise<number> {
    return this.sessions.count(of);
  }

  /** A new session, unless the client or the repository already holds as many as the limits allow. */
  async create(name: string, client?: string): Promise<UploadState> {
    const uuid = randomUUID();
    this.sessions.admit(uuid, name, client);
    const dir = this.paths.upload(uuid);
    const state = newSessionRecord(name, client);
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
    const unknown = unknownUpload(uuid);
    if (!UPLOAD_ID.test(uuid)) throw unknown;
    const text = await readIfExists(this.paths.uploadState(uuid));
    if (text === undefined) throw unknown;
    const state = parseSessionRecord(text);
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
    return this.sessions.exclusive(uuid, async () => {
      const state = await this.get(name, uuid);
      checkChunkStart(name, state, range, length);
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
        checkChunkLength(written, range);
      }
      return { ...state, offset: state.offset + written };
    });
  }

  /** Verifies the whole upload against digest and moves it into the blob store. */
  async complete(name: string, uuid: string, digest: string): Promise<StoredBlob> {
    requireDigest(digest);
    return this.sessions.exclusive(uuid, async () => {
      const state = await this.get(name, uuid);
      const dataPath = this.paths.uploadData(uuid);
      const running = this.hashes.get(uuid);
      this.hashes.delete(uuid);
      await verifyUpload(digest, running, running?.offset === state.offset, () => createReadStream(dataPath, { highWaterMark: 1024 * 1024 }));
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
      if (this.sessions.isBusy(uuid)) continue;
      let dir: string;
      try {
        dir = this.paths.upload(uuid);
      } catch {
        continue;
      }
      const s = await stat(this.paths.uploadData(uuid)).catch(() => stat(dir).catch(() => undefined));
      if (s && Date.now() - s.mtimeMs > maxIdleMs && !this.sessions.isBusy(uuid)) {
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
    this.sessions.forget(uuid);
    this.hashes.delete(uuid);
  }
}
