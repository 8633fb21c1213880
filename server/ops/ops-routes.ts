/** Mounts the ops endpoints beside /v2/: /metrics, the status page and its JSON, health checks. */
import { readFileSync } from 'node:fs';
import type { Express, Response } from 'express';
import { projectFile } from '../../lib/project-files.ts';
import type { MirrorOps } from '../../lib/metrics/ops.ts';

const STATUS_HTML = readFileSync(projectFile('server/ops/status.html'));

export interface OpsRoutesOptions {
  /** False once shutdown began: /readyz answers 503 so a load balancer stops sending. */
  ready?: () => boolean;
}

function named(res: Response, route: string): void {
  res.locals.route = route;
  res.setHeader('Cache-Control', 'no-store');
}

/** The mirror's: everything, open like its /v2/ (push protection guards writes only). */
export function mountOpsRoutes(app: Express, ops: MirrorOps, opts: OpsRoutesOptions = {}): void {
  mountFiguresRoutes(app, ops);
  const page = (_req: unknown, res: Response): void => {
    named(res, 'status-page');
    res.type('html').send(STATUS_HTML);
  };
  app.get('/', page);
  app.get('/status', page);
  mountHealthRoutes(app, opts);
}

/** /metrics (Prometheus text) and /status.json: what the service is doing. */
export function mountFiguresRoutes(app: Express, ops: MirrorOps): void {
  app.get('/metrics', async (_req, res, next) => {
    named(res, 'metrics');
    try {
      const body = await ops.metrics.text();
      res.type(ops.metrics.contentType).send(body);
    } catch (e) {
      next(e);
    }
  });
  app.get('/status.json', async (_req, res, next) => {
    named(res, 'status-json');
    try {
      res.json(await ops.status());
    } catch (e) {
      next(e);
    }
  });
}

/** /healthz and /readyz: reveal nothing but liveness, so they may stay open where the rest is guarded. */
export function mountHealthRoutes(app: Express, opts: OpsRoutesOptions = {}): void {
  app.get('/healthz', (_req, res) => {
    named(res, 'health');
    res.json({ ok: true });
  });
  app.get('/readyz', (_req, res) => {
    named(res, 'health');
    const ready = opts.ready?.() ?? true;
    res.status(ready ? 200 : 503).json({ ready });
  });
}
