/**
 * Presigned GET URLs of objects: the request the SDK would send for GetObject (endpoint, path
 * style, key encoding all as configured), signed in its query string instead of its headers
 * (SigV4 query authentication, payload UNSIGNED-PAYLOAD), so a client that holds the URL may
 * fetch the object itself until it expires. Done with the client's own middleware stack and
 * signer, as @aws-sdk/s3-request-presigner does (not installed: no new package for ~30 lines):
 * the request is taken just before the SDK would sign and send it, and never sent.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** The serialized request at the finalize step (the SDK's HttpRequest, the fields used here). */
interface SerializedRequest {
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string | string[] | null>;
  headers: Record<string, string>;
}

/** What the client's configured signer (SignatureV4MultiRegion) offers besides sign. */
interface QuerySigner {
  presign(request: SerializedRequest, options: { expiresIn: number; signingRegion: string; signingService: string }): Promise<SerializedRequest>;
}

/** Headers the SDK adds for its own retries and statistics: not part of a URL handed out. */
const SDK_HEADERS = ['amz-sdk-invocation-id', 'amz-sdk-request', 'x-amz-user-agent', 'user-agent'];

export async function presignGet(client: S3Client, bucket: string, key: string, expiresInSeconds: number): Promise<string> {
  const stack = client.middlewareStack.clone();
  stack.addRelativeTo(() => async (args: { request: unknown }) => {
    const request = args.request as SerializedRequest;
    for (const h of SDK_HEADERS) delete request.headers[h];
    request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    const signer = (await client.config.signer()) as unknown as QuerySigner;
    const signed = await signer.presign(request, { expiresIn: expiresInSeconds, signingRegion: await client.config.region(), signingService: 's3' });
    return { response: {}, output: { $metadata: {}, url: formatUrl(signed) } };
  }, { name: 'ferryPresignGet', relation: 'before', toMiddleware: 'httpSigningMiddleware', override: true });
  const command = new GetObjectCommand({ Bucket: bucket, Key: key });
  const handler = command.resolveMiddleware(stack as unknown as typeof client.middlewareStack, client.config, {});
  const { output } = await handler({ input: command.input });
  return (output as unknown as { url: string }).url;
}

function formatUrl(r: SerializedRequest): string {
  const query = Object.entries(r.query)
    .flatMap(([k, v]) => (v === null ? [rfc3986(k)] : (Array.isArray(v) ? v : [v]).map((x) => `${rfc3986(k)}=${rfc3986(x)}`)))
    .join('&');
  return `${r.protocol}//${r.hostname}${r.port ? `:${r.port}` : ''}${r.path}${query ? `?${query}` : ''}`;
}

/** Query encoding as SigV4 signs it (RFC 3986: encodeURIComponent leaves !'()* alone). */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
