/**
 * Makes one object from a sequence of pieces already in the bucket (the chunks of a push, the
 * pieces of a pull-through transfer), server side where S3 allows it, and visible only whole.
 *
 * S3 wants every part but the last to be at least 5 MiB, and a part copied server side
 * (UploadPartCopy) comes from one source object. So: a piece (or what is left of it) of 5 MiB or
 * more becomes copied parts; smaller ones are gathered, with the head of the next piece if need
 * be, into a part of exactly 5 MiB that is streamed through (ranged GETs, one after the other:
 * never more than a socket buffer in memory). A docker push of one PATCH per layer is one
 * CopyObject; pieces of a transfer (4 MiB and up) copy nearly all their bytes server side.
 */
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { MAX_PART_BYTES, MIN_PART_BYTES, type CompletedPart, type S3Bucket } from './bucket.ts';

export interface Piece {
  key: string;
  size: number;
}

/** A byte range (inclusive) of an object. */
export interface Segment {
  key: string;
  start: number;
  end: number;
}

/** Each piece whole, as segments. */
export function wholePieces(pieces: readonly Piece[]): Segment[] {
  return pieces.filter((p) => p.size > 0).map((p) => ({ key: p.key, start: 0, end: p.size - 1 }));
}

/** One part: copied from its one segment, or streamed from several. */
export interface PlannedPart {
  segments: Segment[];
  copy: boolean;
}

/** Parts copied server side are cut at this size so that several can run at once. */
const COPY_PART_BYTES = 512 * 1024 * 1024;
const PARALLEL_PARTS = 4;

/** The parts that make the segments one object, in order (see the header). */
export function planParts(segments: readonly Segment[], minPart = MIN_PART_BYTES, copyPart = COPY_PART_BYTES): PlannedPart[] {
  const parts: PlannedPart[] = [];
  let gathering: Segment[] = [];
  let gathered = 0;
  for (const segment of segments) {
    let at = segment.start;
    while (at <= segment.end) {
      const left = segment.end + 1 - at;
      if (gathered === 0 && left >= minPart) {
        const n = Math.min(left, copyPart);
        parts.push({ segments: [{ key: segment.key, start: at, end: at + n - 1 }], copy: true });
        at += n;
        continue;
      }
      const n = Math.min(left, minPart - gathered);
      gathering.push({ key: segment.key, start: at, end: at + n - 1 });
      gathered += n;
      at += n;
      if (gathered === minPart) {
        parts.push({ segments: gathering, copy: false });
        gathering = [];
        gathered = 0;
      }
    }
  }
  if (gathered > 0) parts.push({ segments: gathering, copy: false });
  return parts;
}

/** Writes the pieces whole, in order, as the object target (replacing it if it exists). */
export async function assemble(bucket: S3Bucket, pieces: readonly Piece[], target: string): Promise<void> {
  const nonEmpty = pieces.filter((p) => p.size > 0);
  if (nonEmpty.length === 1 && (nonEmpty[0] as Piece).size <= MAX_PART_BYTES) {
    await bucket.copy((nonEmpty[0] as Piece).key, target);
    return;
  }
  await assembleSegments(bucket, wholePieces(nonEmpty), target);
}

/** Writes the segments (byte ranges of objects), in order, as the object target. */
export async function assembleSegments(bucket: S3Bucket, segments: readonly Segment[], target: string): Promise<void> {
  if (segments.length === 0) {
    await bucket.put(target, Buffer.alloc(0));
    return;
  }
  const plan = planParts(segments);
  if (plan.length === 1 && !(plan[0] as PlannedPart).copy) {
    // All of it below one part (a small blob): one PutObject of its bytes, not a multipart upload
    // (create, part, complete: two requests more, one after the other).
    const { body, length, feeding } = feed(bucket, (plan[0] as PlannedPart).segments);
    await Promise.all([bucket.put(target, { stream: body, length }), feeding]);
    return;
  }
  const uploadId = await bucket.createMultipart(target);
  try {
    const done: CompletedPart[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < plan.length) {
        const i = next++;
        done.push(await uploadPlanned(bucket, target, uploadId, i + 1, plan[i] as PlannedPart));
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, plan.length) }, worker));
    await bucket.completeMultipart(target, uploadId, done);
  } catch (e) {
    await bucket.abortMultipart(target, uploadId).catch(() => undefined);
    throw e;
  }
}

async function uploadPlanned(bucket: S3Bucket, target: string, uploadId: string, partNumber: number, part: PlannedPart): Promise<CompletedPart> {
  if (part.copy) {
    const s = part.segments[0] as Segment;
    return bucket.uploadPartCopy(target, uploadId, partNumber, s.key, { start: s.start, end: s.end });
  }
  const { body, length, feeding } = feed(bucket, part.segments);
  const [uploaded] = await Promise.all([bucket.uploadPart(target, uploadId, partNumber, { stream: body, length }), feeding]);
  return uploaded;
}

/** The segments' bytes as one stream (ranged GETs, one after the other), and the promise of feeding it. */
function feed(bucket: S3Bucket, segments: readonly Segment[]): { body: PassThrough; length: number; feeding: Promise<void> } {
  const length = segments.reduce((n, s) => n + s.end - s.start + 1, 0);
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  // A failed feed reaches the caller through `feeding`; the request reading `body` may have no
  // listener for its 'error' (unhandled, it would end the process).
  body.on('error', () => undefined);
  const feeding = (async () => {
    for (const s of segments) {
      const got = await bucket.get(s.key, { start: s.start, end: s.end });
      if (!got) throw new Error(`piece ${s.key} vanished while it was being assembled`);
      for await (const chunk of got.body) {
        if (!body.write(chunk)) await once(body, 'drain');
      }
    }
    body.end();
  })();
  feeding.catch((e: unknown) => body.destroy(e as Error));
  return { body, length, feeding };
}
