/** /v2/ itself, tags/list, _catalog and referrers. */
import type { Request, Response } from 'express';
import { RegistryError } from '../../lib/oci/errors.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import type { Page, PullBackend } from '../../lib/registry/types.ts';
import { requestContext } from './manifests.ts';
import type { MethodTable } from './router.ts';

const MAX_PAGE = 10_000;

function parsePage(req: Request): Page {
  const page: Page = {};
  if (req.query.n !== undefined) {
    const n = Number(req.query.n);
    if (typeof req.query.n !== 'string' || !/^\d+$/.test(req.query.n) || !Number.isSafeInteger(n)) {
      throw new RegistryError('PAGINATION_NUMBER_INVALID', `invalid n ${JSON.stringify(req.query.n)}`);
    }
    page.n = Math.min(n, MAX_PAGE);
  }
  if (typeof req.query.last === 'string') page.last = req.query.last;
  return page;
}

function sendJson(res: Response, body: unknown, contentType = 'application/json; charset=utf-8'): void {
  const text = JSON.stringify(body);
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.status(200).end(text);
}

function nextLink(path: string, n: number | undefined, last: string): string {
  const q = new URLSearchParams();
  if (n !== undefined) q.set('n', String(n));
  q.set('last', last);
  return `<${path}?${q.toString()}>; rel="next"`;
}

type Handler = NonNullable<MethodTable['GET']>;

/** Catalog and referrers only where the backend lists (not the relay): the router answers the rest UNSUPPORTED. */
export function listingHandlers(backend: PullBackend): { base: Handler; tags: Handler; catalog?: Handler; referrers?: Handler } {
  const catalog = backend.catalog?.bind(backend);
  const referrers = backend.referrers?.bind(backend);
  return {
    async base(_req, res) {
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.status(200).end('{}');
    },

    async tags(req, res, { name = '' }) {
      const page = parsePage(req);
      const result = await backend.listTags(name, page, requestContext(req));
      if (result.next !== undefined) res.setHeader('Link', nextLink(`/v2/${name}/tags/list`, page.n, result.next));
      sendJson(res, { name, tags: result.items });
    },

    ...(catalog && {
      async catalog(req, res) {
        const page = parsePage(req);
        const result = await catalog(page);
        if (result.next !== undefined) res.setHeader('Link', nextLink('/v2/_catalog', page.n, result.next));
        sendJson(res, { repositories: result.items });
      },
    } satisfies Record<string, Handler>),

    ...(referrers && {
      async referrers(req, res, { name = '', digest = '' }) {
        const artifactType = typeof req.query.artifactType === 'string' ? req.query.artifactType : undefined;
        const result = await referrers(name, digest, artifactType);
        if (result.filtered) res.setHeader('OCI-Filters-Applied', 'artifactType');
        sendJson(res, { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: result.manifests }, MEDIA.ociIndex);
      },
    } satisfies Record<string, Handler>),
  };
}
