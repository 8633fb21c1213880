/** Shared pieces of the pull-through end-to-end tests: teardown stacks, docker pulls, raw requests. */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import dc from 'node:diagnostics_channel';
import type { Dockerd } from '../helpers/dockerd.ts';
import type { TestMirror } from './mirror-fixture.ts';
import { fsPaths } from './mirror-fixture.ts';

/** Things to stop after a describe block, last started first stopped. */
export class Teardown {
  private readonly steps: Array<() => Promise<unknown>> = [];

  /** Registers the stop of something just started and returns it. */
  add<T>(thing: T, stop: (t: T) => Promise<unknown>): T {
    this.steps.push(() => stop(thing));
    return thing;
  }

  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) await step().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw errors[0];
  }
}

/** The digest dockerd reports for a pull ("Digest: sha256:..."). */
export function pulledDigest(output: string): string {
  const m = /Digest: (sha256:[a-f0-9]{64})/.exec(output);
  if (!m?.[1]) throw new Error(`no digest in docker pull output:\n${output}`);
  return m[1];
}

/**
 * `docker pull` that fails rather than hangs: dockerd may fall back to Docker Hub, which cannot
 * answer here. Returns the pulled digest.
 */
export async function dockerPull(d: Dockerd, ref: string, timeoutMs = 90_000): Promise<string> {
  return pulledDigest(await d.docker(['pull', ref], { timeoutMs }));
}

/** Whether the mirror's store holds the blob file, or any transfer part of it. */
export async function storeTraces(m: TestMirror, digest: string): Promise<{ blob: boolean; parts: string[] }> {
  const paths = fsPaths(m.mirror.store);
  const hex = digest.slice(digest.indexOf(':') + 1);
  const parts = (await readdir(paths.transfersDir).catch(() => [] as string[])).filter((f) => f.includes(hex));
  return { blob: existsSync(paths.blob(digest)), parts };
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One GET over a connection opened before `watch` starts, so every client socket the process
 * opens while the request runs is the server's own doing. Returns the answer and those sockets.
 */
export async function getWatchingSockets(host: string, path: string): Promise<{ answer: RawAnswer; sockets: number }> {
  const [hostname, port] = host.split(':') as [string, string];
  const sock = await new Promise<Socket>((resolve, reject) => {
    const s = connect(Number(port), hostname, () => resolve(s));
    s.once('error', reject);
  });
  let sockets = 0;
  const onSocket = (): void => {
    sockets++;
  };
  dc.subscribe('net.client.socket', onSocket);
  try {
    const raw = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      sock.on('data', (c: Buffer) => chunks.push(c));
      sock.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      sock.once('error', reject);
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept: */*\r\nConnection: close\r\n\r\n`);
    });
    return { answer: parseRaw(raw), sockets };
  } finally {
    dc.unsubscribe('net.client.socket', onSocket);
    sock.destroy();
  }
}

function parseRaw(raw: string): RawAnswer {
  const split = raw.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = raw.slice(split + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

function dechunk(text: string): string {
  let out = '';
  for (let at = 0; ;) {
    const eol = text.indexOf('\r\n', at);
    const size = parseInt(text.slice(at, eol), 16);
    if (!size) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** The registry error codes of an error body. */
export function errorCodes(body: string): string[] {
  const json = JSON.parse(body) as { errors?: Array<{ code: string }> };
  return (json.errors ?? []).map((e) => e.code);
}
