/** The memory backend's UploadStorage, for unit tests: each session's bytes in memory. */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { requireDigest } from '../../oci/digest.ts';
import type { ByteRange, RepositoryStorage, StoredBlob, UploadLimits, UploadState, UploadStorage } from '../storage.ts';
import { UPLOAD_ID, UploadSessions, checkChunkLength, checkChunkStart, unknownUpload, verifyUpload } from '../upload-sessions.ts';
import type { MemoryBlobStorage } from './blobs.ts';

interface Session {
  name: string;
  startedAt: string;
  parts: Buffer[];
  size: number;
  activeAt: number;
}

export class MemoryUploadStorage implements UploadStorage {
  private readonly data = new Map<string, Session>();
  private readonly sessions: UploadSessions;

  constructor(
    private readonly blobs: MemoryBlobStorage,
    private readonly repositories: RepositoryStorage,
    limits?: UploadLimits,
    private readonly now: () => number = Date.now,
  ) {
    this.sessions = new UploadSessions(limits);
  }

  async count(of: { name?: string; client?: string } = {}): Promise<number> {
    return this.sessions.count(of);
  }

  async create(name: string, client?: string): Promise<UploadState> {
    const uuid = randomUUID();
    this.sessions.admit(uuid, name, client);
    const startedAt = new Date(this.now()).toISOString();
    this.data.set(uuid, { name, startedAt, parts: [], size: 0, activeAt: this.now() });
    return { uuid, name, startedAt, offset: 0 };
  }

  async get(name: string, uuid: string): Promise<UploadState> {
    const s = UPLOAD_ID.test(uuid) ? this.data.get(uuid) : undefined;
    if (s?.name !== name) throw unknownUpload(uuid);
    return { uuid, name, startedAt: s.startedAt, offset: s.size };
  }

  async append(name: string, uuid: string, source: Readable, range?: ByteRange, length?: number): Promise<UploadState> {
    return this.sessions.exclusive(uuid, async () => {
      const state = await this.get(name, uuid);
      checkChunkStart(name, state, range, length);
      const s = this.data.get(uuid) as Session;
      const before = { parts: s.parts.length, size: s.size };
      // What arrives stays, even when the source is cut: the client resumes from the offset.
      for await (const chunk of source as AsyncIterable<Buffer>) {
        s.parts.push(Buffer.from(chunk));
        s.size += chunk.length;
        s.activeAt = this.now();
      }
      try {
        checkChunkLength(s.size - before.size, range);
      } catch (e) {
        // Refused whole, not kept in part.
        s.parts.length = before.parts;
        s.size = before.size;
        throw e;
      }
      return { ...state, offset: s.size };
    });
  }

  async complete(name: string, uuid: string, digest: string): Promise<StoredBlob> {
    requireDigest(digest);
    return this.sessions.exclusive(uuid, async () => {
      await this.get(name, uuid);
      const s = this.data.get(uuid) as Session;
      const bytes = Buffer.concat(s.parts);
      await verifyUpload(digest, undefined, false, () => Readable.from([bytes]));
      this.blobs.commit(digest, bytes);
      await this.repositories.linkBlob(name, digest);
      this.remove(uuid);
      return { digest, size: bytes.length };
    });
  }

  async cancel(name: string, uuid: string): Promise<void> {
    await this.get(name, uuid);
    this.remove(uuid);
  }

  async sweep(maxIdleMs: number): Promise<number> {
    let removed = 0;
    for (const [uuid, s] of [...this.data]) {
      if (this.sessions.isBusy(uuid) || this.now() - s.activeAt <= maxIdleMs) continue;
      this.remove(uuid);
      removed++;
    }
    return removed;
  }

  private remove(uuid: string): void {
    this.data.delete(uuid);
    this.sessions.forget(uuid);
  }
}
