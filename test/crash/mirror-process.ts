/**
 * Crash-test support: the mirror as a real child process (`tsx scripts/ferry.ts mirror` with the
 * shipped registry.config.json) on a given data dir, killed with SIGKILL mid-request, and checks
 * of the store it leaves on disk.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import supertest from 'supertest';
import { freePort, startProcess, type ManagedProcess } from '../helpers/processes.ts';
import type { Api, RawResponse } from '../api/fixture.ts';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Repositories under a registry host no upstream serves are local-only in the mirror's routing,
 * so nothing these tests ask for can leave 127.0.0.1.
 */
export const CRASH_HOST = 'crash.test';

export interface MirrorProcess {
  port: number;
  api: Api;
  proc: ManagedProcess;
  /** SIGKILL to the whole process group (tsx runs node as its child); resolves once it is gone. */
  kill9(): Promise<void>;
  stop(): Promise<void>;
}

export async function startMirrorProcess(dataDir: string): Promise<MirrorProcess> {
  const port = await freePort();
  const proc = await startProcess({
    name: 'ferry-mirror-crash',
    command: join(ROOT, 'node_modules', '.bin', 'tsx'),
    args: ['scripts/ferry.ts', 'mirror', '--config', 'registry.config.json'],
    cwd: ROOT,
    env: { ...process.env, FERRY_LISTEN: `127.0.0.1:${port}`, FERRY_DATA_DIR: dataDir },
    ready: { url: `http://127.0.0.1:${port}/v2/`, statuses: [200] },
    readyTimeoutMs: 30_000,
  });
  return {
    port,
    api: supertest(`http://127.0.0.1:${port}`),
    proc,
    async kill9() {
      process.kill(-proc.pid, 'SIGKILL');
      await proc.exited;
    },
    async stop() {
      await proc.stop(2000);
    },
  };
}

/** The node process that serves: tsx runs the script in a child of its own. */
export async function serverPid(m: MirrorProcess): Promise<number> {
  const children = (await readFile(`/proc/${m.proc.pid}/task/${m.proc.pid}/children`, 'utf8').catch(() => '')).trim().split(/\s+/);
  const child = Number(children[0]);
  return Number.isSafeInteger(child) && child > 0 ? child : m.proc.pid;
}

/** Peak resident memory of a process so far (VmHWM), in bytes. */
export async function peakRss(pid: number): Promise<number> {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `no VmHWM for ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * Hashes every file under blobs/ and asserts it is named for its content (blobs/<alg>/<hh>/<hex>);
 * returns the digests.
 */
export async function verifyBlobStore(dataDir: string): Promise<string[]> {
  const root = join(dataDir, 'blobs');
  const digests: string[] = [];
  for (const algorithm of await readdir(root)) {
    for (const prefix of await readdir(join(root, algorithm))) {
      for (const hex of await readdir(join(root, algorithm, prefix))) {
        assert.equal(hex.slice(0, 2), prefix, `blob ${algorithm}/${prefix}/${hex} is in the wrong folder`);
        const hash = createHash(algorithm);
        await pipeline(createReadStream(join(root, algorithm, prefix, hex)), hash);
        assert.equal(hash.digest('hex'), hex, `blob ${algorithm}:${hex} does not hash to its name`);
        digests.push(`${algorithm}:${hex}`);
      }
    }
  }
  return digests;
}

export interface PartialRequest {
  req: ClientRequest;
  /** Settles when an answer comes or the connection dies (after a kill: never an answer). */
  outcome: Promise<number | Error>;
}

/** Opens a request whose body the caller writes piece by piece (and may never finish). */
export function openRequest(port: number, method: string, path: string, headers: Record<string, string>): PartialRequest {
  const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false });
  const outcome = new Promise<number | Error>((resolve) => {
    req.once('error', resolve);
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
  });
  return { req, outcome };
}

/** Writes buffer to req in pieces, waiting for each to drain. */
export async function writeInPieces(req: ClientRequest, buffer: Buffer, piece = 1024 * 1024): Promise<void> {
  for (let i = 0; i < buffer.length; i += piece) {
    if (!req.write(buffer.subarray(i, i + piece))) await new Promise((r) => req.once('drain', r));
  }
}

/**
 * Content that is not there: BLOB_UNKNOWN / MANIFEST_UNKNOWN, or the mirror's NAME_UNKNOWN for a
 * repository under a registry host it does not serve (its answer for anything missing there).
 */
export function expectAbsent(res: RawResponse, code: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN'): void {
  assert.equal(res.status, 404, `expected 404, got ${res.status} ${res.text}`);
  if (res.req.method === 'HEAD') return;
  const body = JSON.parse(res.text) as { errors: Array<{ code: string; detail?: { host?: string } }> };
  const e = body.errors[0];
  assert.ok(e?.code === code || (e?.code === 'NAME_UNKNOWN' && e.detail?.host === CRASH_HOST), `unexpected error ${res.text}`);
}
