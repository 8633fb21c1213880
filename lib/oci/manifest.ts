/**
 * Manifest parsing: what a manifest is, what it references and what it says about itself.
 * The bytes are never re-serialized: ferry stores and serves them exactly as received.
 */
import { z } from 'zod';
import { RegistryError } from './errors.ts';
import { isDigest } from './digest.ts';
import { JsonDepthScan } from './json-depth.ts';
import { MEDIA, isIndexMediaType, isManifestMediaType } from './media-types.ts';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/**
 * Deepest nesting of objects and arrays a manifest may have. The OCI and Docker formats need 4
 * (index > manifests > descriptor > platform.features); 64 leaves room for any artifact's own
 * fields and stays under every client's decoder: Rust's serde_json stops at 128, Go's
 * encoding/json at 10,000. What ferry stores, every client can read.
 */
export const MAX_MANIFEST_DEPTH = 64;

const descriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest: z.string().refine(isDigest, 'not a valid digest'),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
  artifactType: z.string().optional(),
  platform: z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() }).loose().optional(),
  urls: z.array(z.string()).optional(),
}).loose();

export type Descriptor = z.infer<typeof descriptorSchema>;

const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
}).loose();

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
}).loose();

export interface ParsedManifest {
  mediaType: string;
  /** Blobs this manifest needs (config and layers). */
  blobs: Descriptor[];
  /** Child manifests (for an index or manifest list). */
  manifests: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
  config?: Descriptor;
}

/**
 * A check of manifest bytes read piece by piece, in order: throws MANIFEST_INVALID at the first
 * piece that nests past MAX_MANIFEST_DEPTH, so a body can be refused while it arrives rather than
 * once held whole (parseManifest runs it over the whole text).
 */
export function manifestDepthCheck(): (piece: Uint8Array) => void {
  const scan = new JsonDepthScan(MAX_MANIFEST_DEPTH);
  return (piece) => {
    if (scan.push(piece)) throw new RegistryError('MANIFEST_INVALID', `manifest nests deeper than ${MAX_MANIFEST_DEPTH} levels`, { limit: MAX_MANIFEST_DEPTH });
  };
}

/**
 * Parses manifest bytes. contentType is the request's Content-Type; the body's own mediaType wins
 * when present and they must agree.
 */
export function parseManifest(bytes: Buffer, contentType?: string): ParsedManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new RegistryError('MANIFEST_TOO_LARGE', `manifest exceeds ${MAX_MANIFEST_BYTES} bytes`, { size: bytes.length, limit: MAX_MANIFEST_BYTES });
  }
  manifestDepthCheck()(bytes);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', 'manifest is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new RegistryError('MANIFEST_INVALID', 'manifest is not a JSON object');
  const obj = json as Record<string, unknown>;
  if (obj.schemaVersion === 1) throw new RegistryError('MANIFEST_INVALID', 'schema 1 manifests are not supported');
  const ct = contentType?.split(';')[0]?.trim();
  const bodyType = typeof obj.mediaType === 'string' ? obj.mediaType : undefined;
  if (bodyType && ct && isManifestMediaType(ct) && bodyType !== ct) {
    throw new RegistryError('MANIFEST_INVALID', `mediaType ${bodyType} does not match Content-Type ${ct}`);
  }
  const mediaType = bodyType ?? (ct && isManifestMediaType(ct) ? ct : undefined) ?? ('manifests' in obj ? MEDIA.ociIndex : MEDIA.ociManifest);
  if (!isManifestMediaType(mediaType)) throw new RegistryError('MANIFEST_INVALID', `unsupported manifest media type ${mediaType}`);

  if (isIndexMediaType(mediaType)) {
    const r = indexSchema.safeParse(obj);
    if (!r.success) throw invalid(r.error);
    // Distribution spec, referrers: an index without artifactType (or an empty one) has none.
    return { mediaType, blobs: [], manifests: r.data.manifests, subject: r.data.subject, artifactType: r.data.artifactType || undefined, annotations: r.data.annotations };
  }
  const r = imageManifestSchema.safeParse(obj);
  if (!r.success) throw invalid(r.error);
  const m = r.data;
  // Distribution spec, referrers: artifactType when set and not empty, else the config's media
  // type, an ordinary image config included.
  const artifactType = m.artifactType || m.config.mediaType;
  return { mediaType, blobs: [m.config, ...m.layers], manifests: [], subject: m.subject, artifactType, annotations: m.annotations, config: m.config };
}

function invalid(err: z.ZodError): RegistryError {
  const issue = err.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : '(root)';
  return new RegistryError('MANIFEST_INVALID', `manifest invalid at ${where}: ${issue?.message ?? 'invalid'}`, { path: where });
}
