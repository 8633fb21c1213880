/**
 * The S3 backend's UploadStorage: a push session lives in the bucket, so its PATCH requests may
 * land on any replica (haproxy round robin) and its PUT on yet another.
 *
 *   uploads/<uuid>/state.json            repository, client, start
 *   uploads/<uuid>/chunks/<offset>       each PATCH's bytes as one object, keyed by where they start
 *
 * The offset is the end of the chunks' contiguous run, read by one LIST. A chunk is written by
 * the object writer (one put, or a multipart upload for a big one: visible only whole); a chunk
 * cut midway keeps what arrived, as the fs backend does. Completion hashes the chunks (from the
 * running hash when this replica received them all, else by reading them back), then assembles
 * them into blobs/<alg>/<hex> server side (assemble.ts: S3's 5 MiB minimum part is met by
 * streaming small chunks together, never by buffering), links the blob and removes the session.
 *
 * The session limits hold across replicas: they count the sessions in the bucket (one LIST of
 * uploads/, each session's record read once per replica). A new session's record is written first,
 * then the others are counted, and it is removed again when they leave no room: two replicas
 * starting sessions at once may both refuse at the limit, never both admit past it. Starts on one
 * replica go one at a time.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RegistryError } from '../../oci/errors.ts';
import { newHash, requireDigest } from '../../oci/digest.ts';
import type { ByteRange, RepositoryStorage, StoredBlob, UploadLimits, UploadState, UploadStorage } from '../storage.ts';
import {
  UPLOAD_ID, UploadSessions, checkChunkLength, checkChunkStart, newSessionRecord, parseSessionRecord, unknownUpload, verifyUpload,
  type RunningHash, type SessionRecord,
} from '../upload-sessions.ts';
import { assemble, type Piece } from './assemble.ts';
import type { ObjectInfo, S3Bucket } from './bucket.ts';
import { keys } from './keys.ts';
import { writeObject } from './object-writer.ts';

interface ChunksHash extends RunningHash {
  /** The chunks this replica wrote, in order, by key and etag: the hash is valid only over exactly them. */
  chunks: Array<{ key: string; etag: string }>;
}

export class S3UploadStorage implements UploadStorage {
  private readonly hashes = new Map<string, ChunksHash>();
  /** The bucket's sessions as last listed, with their records (for the limits). */
  private readonly sessions: UploadSessions;
  /** Session starts on this replica, one at a time. */
  private starting: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly bucket: S3Bucket,
    private readonly repositories: RepositoryStorage,
    limits?: UploadLimits,
  ) {
    this.sessions = new UploadSessions(limits);
  }

  /** Lists the sessions already in the bucket. */
  async init(): Promise<void> {
    await this.listSessions();
  }

  async count(of: { name?: string; client?: string } = {}): Promise<number> {
    await this.listSessions();
    return this.sessions.count(of);
  }

  create(name: string, client?: string): Promise<UploadState> {
    const started = this.starting.then(() => this.start(name, client));
    this.starting = started.catch(() => {});
    return started;
  }

  private async start(name: string, client?: string): Promise<UploadState> {
    const uuid = randomUUID();
    const record = newSessionRecord(name, client);
    await this.bucket.put(keys.uploadState(uuid), JSON.stringify(record));
    if (this.sessions.limited) {
      try {
        await this.listSessions();
        this.sessions.add(uuid, record);
        this.sessions.refuseOverLimits(name, client, uuid);
      } catch (e) {
        await this.remove(uuid);
        throw e;
      }
    }
    this.sessions.add(uuid, record);
    this.hashes.set(uuid, { hash: newHash('sha256'), offset: 0, chunks: [] });
    return { uuid, name, startedAt: record.startedAt, offset: 0 };
  }

  /** The sessions in the bucket now (any replica's): records read once, those gone forgotten. */
  private async listSessions(): Promise<void> {
    const listed = new Set<string>();
    for await (const prefix of this.bucket.listPrefixes(keys.uploads)) listed.add(prefix.slice(keys.uploads.length, -1));
    for (const uuid of this.sessions.uuids()) if (!listed.has(uuid) && !this.sessions.isBusy(uuid)) this.forget(uuid);
    const unknown = [...listed].filter((uuid) => UPLOAD_ID.test(uuid) && !this.sessions.has(uuid));
    await Promise.all(unknown.map(async (uuid) => {
      const state = await this.readState(uuid).catch(() => undefined);
      if (state) this.sessions.add(uuid, state);
    }));
  }

  async get(name: string, uuid: string): Promise<UploadState> {
    return (await this.load(name, uuid)).state;
  }

  async append(name: string, uuid: string, source: Readable, range?: ByteRange, length?: number): Promise<UploadState> {
    return this.sessions.exclusive(uuid, async () => {
      const { state } = await this.load(name, uuid);
      checkChunkStart(name, state, range, length);
      const running = this.hashes.get(uuid);
      const inStep = running !== undefined && running.offset === state.offset;
      if (!inStep) this.hashes.delete(uuid);
      let bytes = 0;
      let written;
      try {
        written = await writeObject(this.bucket, source, {
          key: keys.uploadChunk(uuid, state.offset),
          tap: (chunk) => {
            bytes += chunk.length;
            if (inStep) running.hash.update(chunk);
          },
          seal: () => {
            // A complete chunk that contradicts its Content-Range is refused whole, not kept in part.
            checkChunkLength(bytes, range);
            return keys.uploadChunk(uuid, state.offset);
          },
          // What arrived of a cut chunk stays: the client resumes from the offset GET reports.
          keepOnSourceError: true,
        });
      } catch (e) {
        this.hashes.delete(uuid);
        throw e;
      }
      if (inStep) {
        running.offset += written.size;
        running.chunks.push({ key: written.key, etag: written.etag });
      }
      return { ...state, offset: state.offset + written.size };
    });
  }

  async complete(name: string, uuid: string, digest: string): Promise<StoredBlob> {
    requireDigest(digest);
    return this.sessions.exclusive(uuid, async () => {
      const { state, chunks } = await this.load(name, uuid);
      const running = this.hashes.get(uuid);
      this.hashes.delete(uuid);
      const inStep = running?.offset === state.offset && sameChunks(running.chunks, chunks);
      await verifyUpload(digest, running, inStep, () => this.readChunks(uuid, chunks));
      if ((await this.bucket.head(keys.blob(digest)))?.size !== state.offset) {
        await assemble(this.bucket, chunks.map((c): Piece => ({ key: c.key, size: c.size })), keys.blob(digest));
      }
      await this.repositories.linkBlob(name, digest);
      await this.remove(uuid);
      return { digest, size: state.offset };
    });
  }

  private async *readChunks(uuid: string, chunks: readonly ObjectInfo[]): AsyncGenerator<Buffer> {
    for (const c of chunks) {
      const got = await this.bucket.get(c.key);
      if (!got) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${uuid} lost a chunk while completing`, { uuid });
      for await (const b of got.body) yield b as Buffer;
    }
  }

  async cancel(name: string, uuid: string): Promise<void> {
    await this.load(name, uuid);
    await this.remove(uuid);
  }

  /**
   * Removes sessions (of any replica) whose last object, or chunk upload in progress, is older
   * than maxIdleMs; never one this replica is working on.
   */
  async sweep(maxIdleMs: number): Promise<number> {
    const lastActive = new Map<string, number>();
    const note = (key: string, at: number): void => {
      const uuid = key.slice(keys.uploads.length).split('/')[0] ?? '';
      lastActive.set(uuid, Math.max(lastActive.get(uuid) ?? 0, at));
    };
    for await (const o of this.bucket.list(keys.uploads)) note(o.key, o.lastModified);
    const inProgress = new Map<string, Array<{ key: string; uploadId: string }>>();
    for await (const u of this.bucket.listMultipart(keys.uploads)) {
      note(u.key, u.initiated);
      const uuid = u.key.slice(keys.uploads.length).split('/')[0] ?? '';
      inProgress.set(uuid, [...(inProgress.get(uuid) ?? []), u]);
    }
    for (const uuid of this.sessions.uuids()) if (!lastActive.has(uuid) && !this.sessions.isBusy(uuid)) this.forget(uuid);
    let removed = 0;
    const before = Date.now() - maxIdleMs;
    for (const [uuid, at] of lastActive) {
      if (at >= before || this.sessions.isBusy(uuid) || !UPLOAD_ID.test(uuid)) continue;
      for (const u of inProgress.get(uuid) ?? []) await this.bucket.abortMultipart(u.key, u.uploadId);
      await this.remove(uuid);
      removed++;
    }
    return removed;
  }

  /** The session's state and chunks (its offset: the end of their contiguous run from 0). */
  private async load(name: string, uuid: string): Promise<{ state: UploadState; chunks: ObjectInfo[] }> {
    if (!UPLOAD_ID.test(uuid)) throw unknownUpload(uuid);
    const [state, listed] = await Promise.all([this.readState(uuid), this.listChunks(uuid)]);
    if (state?.name !== name) throw unknownUpload(uuid);
    const chunks: ObjectInfo[] = [];
    let offset = 0;
    for (const c of listed) {
      if (keys.chunkOffset(c.key) !== offset) break;
      chunks.push(c);
      offset += c.size;
    }
    return { state: { uuid, name, startedAt: state.startedAt, offset }, chunks };
  }

  private async listChunks(uuid: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    for await (const o of this.bucket.list(keys.uploadChunks(uuid))) out.push(o);
    return out;
  }

  private async readState(uuid: string): Promise<SessionRecord | undefined> {
    const text = await this.bucket.getText(keys.uploadState(uuid));
    return text === undefined ? undefined : parseSessionRecord(text);
  }

  private async remove(uuid: string): Promise<void> {
    this.forget(uuid);
    const found: string[] = [];
    for await (const o of this.bucket.list(keys.upload(uuid))) found.push(o.key);
    // The state goes last: a session is gone for every replica only once nothing of it is left.
    const state = keys.uploadState(uuid);
    await this.bucket.deleteMany(found.filter((k) => k !== state));
    await this.bucket.delete(state);
  }

  private forget(uuid: string): void {
    this.sessions.forget(uuid);
    this.hashes.delete(uuid);
  }
}

function sameChunks(mine: ReadonlyArray<{ key: string; etag: string }>, listed: readonly ObjectInfo[]): boolean {
  return mine.length === listed.length && mine.every((c, i) => c.key === listed[i]?.key && c.etag === listed[i]?.etag);
}
