/** One log line per request: requestId, method, path, repository, reference, status, bytes, durationMs. */
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import type { Logger } from '../lib/log/logger.ts';
import './request-context.ts';

export interface RequestObserver {
  (info: { method: string; route: string; status: number; bytes: number; durationMs: number; path: string; repository?: string; errorCode?: string }): void;
}

export function accessLog(logger: Logger, observe?: RequestObserver): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const incoming = req.headers['x-request-id'];
    req.id = typeof incoming === 'string' && /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    req.log = logger.child({ requestId: req.id });
    res.setHeader('X-Request-Id', req.id);
    let bytes = 0;
    const write = res.write.bind(res);
    // Count body bytes as they leave, whatever writes them (pipe, end, write).
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (chunk) bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
    const end = res.end.bind(res);
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (chunk && typeof chunk !== 'function') bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Buffer).length;
      return (end as (...a: unknown[]) => typeof res)(chunk, ...rest);
    }) as typeof res.end;
    const done = (aborted: boolean): void => {
      const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
      const route = (res.locals.route as string | undefined) ?? 'other';
      const fields = {
        method: req.method,
        path: req.originalUrl,
        route,
        repository: res.locals.repository as string | undefined,
        reference: res.locals.reference as string | undefined,
        status: res.statusCode,
        bytes,
        durationMs: Math.round(durationMs * 10) / 10,
        errorCode: res.locals.errorCode as string | undefined,
        aborted: aborted || undefined,
      };
      if (res.statusCode >= 500) req.log.error(fields, 'request');
      else req.log.info(fields, 'request');
      observe?.({ method: req.method, route, status: res.statusCode, bytes, durationMs, path: req.originalUrl, repository: fields.repository, errorCode: fields.errorCode });
    };
    let logged = false;
    res.on('finish', () => { if (!logged) { logged = true; done(false); } });
    res.on('close', () => { if (!logged) { logged = true; done(true); } });
    next();
  };
}
