/**
 * The clients of bench/link.ts and how a pull is timed: each pull goes through a counting HTTP
 * proxy in front of the server, so the wall time runs from the first request the client sends to
 * the last byte it is sent, whatever the client does before (start-up) or after (unpacking).
 * A failed pull is run again, as a user would, until the deadline.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCountingProxy, type ProxiedRequest } from '../../test/helpers/counting-proxy.ts';
import { startDockerd, type Dockerd } from '../../test/helpers/dockerd.ts';
import { skopeoCopy } from '../../test/helpers/skopeo.ts';

export type ClientName = 'docker' | 'skopeo';

export interface PullOutcome {
  ok: boolean;
  error?: string;
}

export interface PullClient {
  name: ClientName;
  /** One pull of host/repository:tag; never throws for a failed pull. */
  pull(host: string, repository: string, tag: string, timeoutMs: number): Promise<PullOutcome>;
  close(): Promise<void>;
}

/** The client's own words: skopeo's msg="..." or docker's last line, short. */
function reason(text: string): string {
  const line = text.trim().split('\n').filter(Boolean).at(-1) ?? '';
  return (/msg="((?:[^"\\]|\\.)*)"/.exec(line)?.[1] ?? line).slice(0, 200);
}

/** `docker pull` by a private dockerd (started once, shared by the runs); the image is removed after each pull. */
export function dockerClient(): PullClient {
  let dockerd: Promise<Dockerd> | undefined;
  return {
    name: 'docker',
    async pull(host, repository, tag, timeoutMs) {
      dockerd ??= startDockerd({ name: 'bench-link' });
      const d = await dockerd;
      const ref = `${host}/${repository}:${tag}`;
      const r = await d.dockerRaw(['pull', '-q', ref], { timeoutMs });
      await d.dockerRaw(['rmi', '-f', ref]);
      return r.code === 0 ? { ok: true } : { ok: false, error: reason(r.stderr) || `exit ${r.code}` };
    },
    async close() {
      if (dockerd) await (await dockerd).stop();
    },
  };
}

/** `skopeo copy docker://... dir:TMP`: one layer at a time (a dir: destination takes no concurrent blobs). */
export function skopeoClient(): PullClient {
  return {
    name: 'skopeo',
    async pull(host, repository, tag, timeoutMs) {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-skopeo-'));
      try {
        await skopeoCopy(`docker://${host}/${repository}:${tag}`, `dir:${dir}`, { timeoutMs });
        return { ok: true };
      } catch (e) {
        return { ok: false, error: reason((e as Error).message) };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    async close() {},
  };
}

export interface TimedPull {
  finished: boolean;
  /** Client pulls that failed before the deadline (each one run again while time was left). */
  failed: number;
  errors: string[];
  /** First request to the last byte sent to the client (ms); to the deadline when it did not finish. */
  wallMs: number;
  /** The client's requests, as the counting proxy saw them. */
  requests: ProxiedRequest[];
}

/** Pulls until one succeeds or the deadline passes, timed at a counting proxy in front of `url`. */
export async function timedPull(client: PullClient, url: string, repository: string, tag: string, deadlineMs: number): Promise<TimedPull> {
  const timing = await startCountingProxy(url);
  const started = Date.now();
  const end = started + deadlineMs;
  let failed = 0;
  let finished = false;
  const errors: string[] = [];
  try {
    while (!finished && Date.now() < end - 1000) {
      const r = await client.pull(timing.host, repository, tag, end - Date.now());
      finished = r.ok;
      // A pull still going at the deadline was stopped by us: not finished, but not a failure of the client.
      if (!r.ok && Date.now() < end - 500) {
        failed++;
        errors.push(r.error ?? 'failed');
      }
    }
  } finally {
    await timing.close();
  }
  const first = Math.min(...timing.requests.map((r) => r.at), end);
  const last = Math.max(...timing.requests.map((r) => r.doneAt || Date.now()));
  return { finished, failed, errors, wallMs: finished ? last - first : Date.now() - first, requests: timing.requests };
}
