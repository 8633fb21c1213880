/**
 * The one typed schema of ferry's configuration (mirror and relay roles). The JSON Schema for
 * editors (registry.schema.json) is generated from this file: `npm run schema`.
 */
import { z } from 'zod';
import { TRANSFER_DEFAULTS } from '../transfer/tuning.ts';

const listen = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'host:port, e.g. 0.0.0.0:4000');
const bytes = z.number().int().positive();

const httpUrl = z.url({ protocol: /^https?$/ });

/** One relay of an upstream with several (`relays`): its own VPS, token and CA. */
export const relayEndpointSchema = z.strictObject({
  url: httpUrl.describe('Base URL of this ferry relay, e.g. https://relay-a.example.com:5443'),
  token: z.string().optional().describe('Bearer token for this relay (default: the upstream\'s token)'),
  tokenEnv: z.string().optional().describe('Environment variable holding this relay\'s token'),
  tokenFile: z.string().optional().describe('File whose first line is this relay\'s token'),
  caFile: z.string().optional().describe('PEM file of a CA to trust for this relay (default: the upstream\'s caFile)'),
});

export const upstreamSchema = z.strictObject({
  url: httpUrl.optional().describe('Base URL of the v2 registry, e.g. https://quay.io (with relays: left out, the first relay\'s URL)'),
  kind: z.enum(['registry', 'dockerhub', 'relay']).default('registry')
    .describe('dockerhub adds library/ to one-component names; relay sends the relay bearer token'),
  hosts: z.array(z.string().min(1)).default([])
    .describe('Registry host names that route here from a host-prefixed name (the URL host is always included)'),
  username: z.string().optional(),
  password: z.string().optional(),
  passwordEnv: z.string().optional().describe('Environment variable holding the password'),
  token: z.string().optional().describe('Bearer token for a ferry relay'),
  tokenEnv: z.string().optional().describe('Environment variable holding the relay token'),
  tokenFile: z.string().optional().describe('File whose first line is the relay token'),
  caFile: z.string().optional().describe('PEM file of a CA to trust (a self-signed relay)'),
  connections: z.number().int().min(1).max(256).default(40)
    .describe('Most TCP connections to this upstream, shared by its transfers (the link caps each connection: 32 x 1 MB/s fills a 32 MB/s link). At most transfer.maxConnections of them deliver at once; the rest (a quarter of those) carry the next request, asked in the last round trip of one ending, so its round trip is hidden'),
  headersTimeoutMs: z.number().int().positive().default(30_000),
  bodyTimeoutMs: z.number().int().positive().default(30_000),
  retries: z.number().int().min(0).max(50).default(5),
  relays: z.array(relayEndpointSchema).min(1).optional()
    .describe('Several ferry relays for this upstream (kind relay; each VPS with its own token): blob ranges go to all in proportion to their goodput, a failing one is drained'),
}).superRefine((u, ctx) => {
  if (!u.relays) {
    if (u.url === undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'required (or list relays)' });
    return;
  }
  if (u.url !== undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'leave out when relays are listed (relays names every relay)' });
  if (u.kind !== 'relay') ctx.addIssue({ code: 'custom', path: ['kind'], message: 'must be "relay" when relays are listed' });
  const seen = new Set<string>();
  u.relays.forEach((r, i) => {
    const key = new URL(r.url).href;
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['relays', i, 'url'], message: `${r.url} is listed twice` });
    seen.add(key);
  });
}).transform((u) => ({ ...u, url: u.url ?? (u.relays?.[0]?.url as string) }));

export const rewriteRuleSchema = z.strictObject({
  match: z.string().min(1).describe('Requested name pattern; one trailing * captures the rest, e.g. kollaglue/*'),
  local: z.string().min(1).optional().describe('Local name to serve from, e.g. lokolla/*'),
  upstream: z.string().min(1).optional().describe('Name of an entry of upstreams to fetch from when local has nothing'),
  upstreamName: z.string().min(1).optional().describe('Name on the upstream, e.g. kolla/*; defaults to the requested name'),
  tags: z.record(z.string(), z.string()).optional().describe('Tag map: requested tag -> served tag'),
});

export const transferSchema = z.strictObject({
  chunksPerBlob: z.number().int().positive().default(TRANSFER_DEFAULTS.chunksPerBlob).describe('Chunk size starts at nextPow2(size / chunksPerBlob)'),
  minChunkBytes: bytes.default(TRANSFER_DEFAULTS.minChunkBytes),
  maxChunkBytes: bytes.default(TRANSFER_DEFAULTS.maxChunkBytes),
  pieceBytes: bytes.multipleOf(64 * 1024).default(TRANSFER_DEFAULTS.pieceBytes)
    .describe('A corrupted byte costs a piece of this size fetched again (checked against a relay\'s piece digests; at most a chunk)'),
  smallBlobBytes: bytes.default(TRANSFER_DEFAULTS.smallBlobBytes).describe('Blobs up to this size are fetched in one request'),
  minConnections: z.number().int().min(1).default(TRANSFER_DEFAULTS.minConnections).describe('Parallel chunk requests per upstream link, floor (it doubles from there while goodput follows)'),
  maxConnections: z.number().int().min(1).default(TRANSFER_DEFAULTS.maxConnections).describe('Parallel chunk requests per upstream link (all its transfers together) and per blob, cap; the upstream connections caps it too'),
  stallSeconds: z.number().positive().default(TRANSFER_DEFAULTS.stallSeconds).describe('A connection with no byte for this long is aborted and resumed'),
  retries: z.number().int().min(0).default(TRANSFER_DEFAULTS.retries).describe('Attempts per chunk before the transfer fails'),
  deadlineSeconds: z.number().positive().default(TRANSFER_DEFAULTS.deadlineSeconds)
    .describe('A transfer still running after this long fails (clients get 503 UNAVAILABLE); what it fetched stays, and the next request resumes it (formerly fillDeadlineSeconds, still accepted with a warning)'),
  repairSeconds: z.number().positive().default(TRANSFER_DEFAULTS.repairSeconds)
    .describe('Corrupted pieces are fetched again for as long as one arrived intact within this long (a link that flips bytes costs pieces, not the pull)'),
  holdUnverified: z.boolean().optional()
    .describe('Send a client no byte of a blob fetched without piece digests (a direct upstream) until the whole blob matched its digest: a flipped byte on the link then costs a repair, never the pull (skopeo does not retry a cut body). Default: true on a mirror; false on a relay, whose clients are mirrors that check every piece against its /chunks'),
  partMaxAgeHours: z.number().positive().default(72).describe('Unfinished transfers older than this are removed'),
  badContentHoldSeconds: z.number().min(0).default(60)
    .describe('After upstream content failed its digest, answer 502 for this long instead of fetching it again (clients retry at once)'),
});

/** What one client may hold of the server: time to send, open upload sessions. */
export const limitsSchema = z.strictObject({
  headersTimeoutSeconds: z.number().positive().max(600).default(20)
    .describe('A request whose headers are not complete after this long is cut'),
  bodyTimeoutSeconds: z.number().positive().max(3600).default(30)
    .describe('A request body is cut when one such window passes with fewer than bodyMinBytesPerSecond x this many bytes (a stall or a dribble)'),
  bodyMinBytesPerSecond: z.number().int().min(1).default(1024)
    .describe('Slowest accepted request body, averaged over bodyTimeoutSeconds (clients are on the local network)'),
  uploadSessionsPerClient: z.number().int().positive().default(64)
    .describe('Open push sessions one client (user, else address) may hold; more is TOOMANYREQUESTS'),
  uploadSessionsPerRepository: z.number().int().positive().default(256)
    .describe('Open push sessions in one repository; more is TOOMANYREQUESTS'),
  uploadIdleMinutes: z.number().positive().default(30)
    .describe('A push session with no byte received for this long is removed'),
  tmpMaxAgeMinutes: z.number().positive().default(60)
    .describe('A temp file not written for this long is removed (its writer is gone)'),
});

/**
 * Where blobs, repositories and uploads live: the data dir (default) or an S3 bucket (Ceph RGW,
 * MinIO, AWS) that several mirrors can share. Credentials never sit in this file: they come from
 * the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or credentialsFile,
 * read when the store is opened (lib/storage/s3/settings.ts).
 */
export const s3StorageSchema = z.strictObject({
  kind: z.literal('s3'),
  endpoint: httpUrl.optional().describe('S3 endpoint, e.g. http://rgw.example.com:7480 (left out: AWS for region)'),
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, '3-63 lower-case letters, digits, dots and hyphens').describe('Bucket (created beforehand, unversioned)'),
  region: z.string().min(1).default('us-east-1').describe('Region to sign for (RGW accepts any)'),
  forcePathStyle: z.boolean().default(true).describe('Address the bucket in the path (http://host/bucket/key), as RGW without wildcard DNS needs'),
  prefix: z.string().regex(/^([A-Za-z0-9._-]+\/)*$/, 'empty, or path segments each ending in /, e.g. ferry/').default('')
    .describe('Key prefix for everything ferry writes, so one bucket can hold several stores'),
  credentialsFile: z.string().optional()
    .describe('AWS shared credentials file (aws_access_key_id, aws_secret_access_key) read at start; without it the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY environment variables'),
  profile: z.string().min(1).default('default').describe('Section of credentialsFile to read'),
  requestTimeoutSeconds: z.number().positive().max(600).default(30)
    .describe('A request to the store with no byte moving for this long fails (a full RGW hangs writes rather than failing them)'),
  maxSockets: z.number().int().min(1).max(4096).default(256).describe('Most connections open to the endpoint (blob reads stream, one connection each)'),
  redirect: z.strictObject({
    expirySeconds: z.number().int().min(10).max(3600).default(300)
      .describe('How long a redirect URL may be used (the fetch must start within it; it then runs to its end)'),
    endpoint: httpUrl.optional().describe('The store as clients reach it, when not at endpoint (URLs are signed for this address)'),
  }).optional()
    .describe('Off when left out (the mirror streams every blob). Set: a GET of a stored blob is answered 307 to a presigned URL of its object, after the repository check, so clients fetch from the store itself; they must reach it'),
});

export const storageSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('fs').describe('The data dir (dataDir)') }),
  s3StorageSchema,
], { error: 'must be "fs" (the data dir) or "s3" (a bucket; with endpoint, bucket...)' }).default({ kind: 'fs' });

export const configSchema = z.strictObject({
  $schema: z.string().optional(),
  listen: listen.default('0.0.0.0:4000').describe('Address the server listens on (env FERRY_LISTEN)'),
  dataDir: z.string().min(1).default('./data').describe('Store directory, relative to the config file (env FERRY_DATA_DIR)'),
  storage: storageSchema.describe('Where the store lives: the data dir (kind fs, default) or an S3 bucket (kind s3)'),
  workers: z.number().int().min(1).max(64).default(1).describe('Reserved: processes serving the API'),
  log: z.strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    format: z.enum(['auto', 'json', 'pretty']).default('auto'),
  }).prefault({}),
  tls: z.strictObject({ cert: z.string(), key: z.string() }).optional().describe('Serve HTTPS with this certificate and key'),
  auth: z.strictObject({
    htpasswd: z.string().describe('htpasswd file (bcrypt) for push and delete'),
    protectPull: z.boolean().default(false).describe('Require credentials for pulls too'),
    realm: z.string().default('ferry'),
  }).optional(),
  upstreams: z.record(z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'lower-case letters and digits, joined by . _ or - (it names the cache repository)'), upstreamSchema).default({}),
  defaultUpstream: z.string().optional().describe('Upstream for names no rule and no host prefix matches (registry-mirrors mode)'),
  rewrite: z.array(rewriteRuleSchema).default([]),
  cache: z.strictObject({
    maxBytes: bytes.optional().describe('Evict pull-through content past this size (LRU); pushed content is pinned'),
    manifestTtlSeconds: z.number().int().min(0).default(300).describe('Revalidate cached tags upstream after this'),
  }).prefault({}),
  transfer: transferSchema.prefault({}),
  prefetch: z.strictObject({
    enabled: z.boolean().default(true).describe('When a manifest of an image is served, fetch its blobs not held ahead (skopeo and containerd pull one layer at a time)'),
    concurrency: z.number().int().min(1).max(64).default(16).describe('Blobs of one image fetched ahead at once (the link serves them oldest first, after the blobs clients read)'),
    maxTransfers: z.number().int().min(1).max(1024).default(64).describe('Blobs fetched ahead at once over every image (each holds a partial blob open): a prewarm of many images waits its turn, oldest image first'),
    maxBytes: bytes.default(4 * 1024 * 1024 * 1024).describe('Most bytes of one image fetched ahead; later layers wait for a client'),
    unclaimedSeconds: z.number().positive().default(60)
      .describe('Stop the prefetches of an image no client asked a blob of for this long (the parts stay; a request resumes them)'),
  }).prefault({}),
  limits: limitsSchema.prefault({}),
  relay: z.strictObject({
    tokens: z.array(z.string().min(16)).default([]).describe('Accepted bearer tokens (several, to rotate)'),
    tokenFile: z.string().optional().describe('File with one accepted token a line'),
    allow: z.array(z.string()).default([]).describe('Upstream names served; empty means all configured'),
    cacheMaxBytes: bytes.default(50 * 1024 * 1024 * 1024),
    chunkBytes: bytes.default(8 * 1024 * 1024).describe('Chunk size of the per-chunk digest list'),
  }).optional(),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type UpstreamConfig = z.infer<typeof upstreamSchema>;
export type RelayEndpointConfig = z.infer<typeof relayEndpointSchema>;
export type RewriteRule = z.infer<typeof rewriteRuleSchema>;
export type TransferConfig = z.infer<typeof transferSchema>;
export type LimitsConfig = z.infer<typeof limitsSchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
export type S3StorageConfig = z.infer<typeof s3StorageSchema>;
