/**
 * Reads a tarball in one streaming pass, in whatever order its entries come: every content entry
 * goes straight into the blob store through BlobStore.ingest (hashed on the way, verified against
 * the digest its path names, content-addressed so order does not matter); metadata stays in
 * memory. Nothing is ever held whole in memory but metadata files. A truncated or corrupt
 * tarball throws a BundleError naming the file; blobs that fully verified before the damage stay
 * in the store, unreferenced, for gc.
 */
import { createReadStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { RegistryError } from '../oci/errors.ts';
import type { Storage } from '../storage/storage.ts';
import {
  BundleError,
  digestFromPath,
  isLegacyV1Metadata,
  MAX_METADATA_BYTES,
  METADATA_FILES,
  normalizeEntryPath,
  type Bundle,
  type StoredFile,
} from './bundle.ts';

/** Two zero blocks end every tar archive. */
const END_OF_ARCHIVE = 1024;

export class TarBundle implements Bundle {
  private readonly files = new Map<string, StoredFile>();
  private readonly metadata = new Map<string, Buffer>();
  /** Entry path -> the archive path it is a (sym or hard) link to. docker save links duplicate layers. */
  private readonly links = new Map<string, string>();

  private constructor(readonly label: string) {}

  /** Reads the whole tarball into the store; onBytes sees the tarball's bytes as they are read. */
  static async read(file: string, store: Storage, onBytes?: (n: number) => void): Promise<TarBundle> {
    const bundle = new TarBundle(file);
    const extract = tar.extract();
    const input = createReadStream(file, { highWaterMark: 1024 * 1024 });
    let tail = Buffer.alloc(0);
    let total = 0;
    let lastEntryEnd = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        onBytes?.(chunk.length);
        total += chunk.length;
        tail = Buffer.concat([tail, chunk.subarray(-END_OF_ARCHIVE)]).subarray(-END_OF_ARCHIVE);
        cb(null, chunk);
      },
    });
    let streamError: unknown;
    const piping = pipeline(input, counter, extract).catch((e: unknown) => {
      streamError ??= e;
    });
    try {
      for await (const entry of extract) {
        lastEntryEnd = entry.offset + 512 + Math.ceil((entry.header.size ?? 0) / 512) * 512;
        await bundle.add(entry.header, entry as unknown as AsyncIterable<Buffer>, store);
      }
    } catch (e) {
      input.destroy();
      extract.destroy();
      await piping;
      throw bundle.wrap(e);
    }
    await piping;
    if (streamError !== undefined) throw bundle.wrap(streamError);
    // Cut exactly between two entries, a tarball still parses: only its end marker tells.
    if (total - lastEntryEnd < END_OF_ARCHIVE || tail.some((b) => b !== 0)) {
      throw new BundleError(file, 'the tarball has no end-of-archive marker (it is truncated)');
    }
    return bundle;
  }

  meta(path: string): Buffer | undefined {
    return this.metadata.get(path);
  }

  async blob(path: string): Promise<StoredFile | undefined> {
    let p: string | undefined = path;
    for (let hops = 0; p !== undefined && hops < 16; hops++) {
      const f = this.files.get(p);
      if (f) return f;
      p = this.links.get(p);
    }
    return undefined;
  }

  private wrap(e: unknown): Error {
    if (e instanceof BundleError) return e;
    const msg = (e as Error).message ?? String(e);
    const hint = /unexpected end|premature|truncat/i.test(msg) ? ' (the tarball is truncated)' : '';
    return new BundleError(this.label, `${msg}${hint}`);
  }

  private async add(header: tar.Header, body: AsyncIterable<Buffer>, store: Storage): Promise<void> {
    const path = normalizeEntryPath(header.name);
    const type = header.type ?? 'file';
    if (path !== undefined && (type === 'symlink' || type === 'link') && header.linkname) {
      const base = type === 'symlink' ? path.split('/').slice(0, -1).join('/') : '';
      const target = normalizeEntryPath(base ? `${base}/${header.linkname}` : header.linkname);
      if (target !== undefined) this.links.set(path, target);
    }
    if (path === undefined || (type !== 'file' && type !== 'contiguous-file')) return drain(body);
    const size = header.size ?? 0;
    if (METADATA_FILES.has(path)) {
      if (size > MAX_METADATA_BYTES) throw new BundleError(this.label, `${path} is ${size} bytes, more than a metadata file can be`);
      this.metadata.set(path, await readAll(body));
      return;
    }
    if (isLegacyV1Metadata(path)) return drain(body);
    const expected = digestFromPath(path);
    if (expected !== undefined) {
      const have = await store.blobs.stat(expected);
      if (have && have.size === size) {
        // Already verified in the store: this copy need not be written again.
        await drain(body);
        this.files.set(path, { digest: expected, size });
        return;
      }
    }
    try {
      const stored = await store.blobs.ingest(body, { ...(expected ? { digest: expected } : {}), size });
      this.files.set(path, stored);
    } catch (e) {
      if (e instanceof RegistryError) throw new BundleError(this.label, `entry ${path}: ${e.message}`);
      throw e;
    }
  }
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _chunk of body) {
    // discarding
  }
}

async function readAll(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}
