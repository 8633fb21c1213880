/**
 * skopeo wrappers for tests. TLS verification is off (registries here speak plain HTTP on
 * 127.0.0.1), the signature policy is ignored, and no credentials leak in from the machine's
 * auth files: only those passed explicitly are used.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { writeSkopeoDir, type BuiltImage, type BuiltIndex } from './oci-image.ts';
import { onExitSync, runChecked } from './processes.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface CopyOptions {
  /** Converts the manifest; without it skopeo keeps the source manifest byte for byte when it can. */
  format?: 'v2s2' | 'oci';
  srcCreds?: Credentials;
  destCreds?: Credentials;
  /** Also copy every image of a manifest list / index. */
  all?: boolean;
  extraArgs?: string[];
  timeoutMs?: number;
}

export interface InspectOptions {
  creds?: Credentials;
  timeoutMs?: number;
}

let emptyAuthFile: string | undefined;

/** Points skopeo at an empty auth file so ~/.docker/config.json and friends are never consulted. */
export function skopeoEnv(): NodeJS.ProcessEnv {
  if (!emptyAuthFile) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-skopeo-'));
    onExitSync(() => rmSync(dir, { recursive: true, force: true }));
    emptyAuthFile = path.join(dir, 'auth.json');
    writeFileSync(emptyAuthFile, '{"auths":{}}');
  }
  return { ...process.env, REGISTRY_AUTH_FILE: emptyAuthFile };
}

const credsArg = (flag: string, c: Credentials | undefined): string[] => (c ? [`${flag}=${c.username}:${c.password}`] : []);

/** `skopeo copy SRC DEST`, e.g. `oci:/dir:tag` -> `docker://127.0.0.1:5000/name:tag`. Returns skopeo's output. */
export function skopeoCopy(src: string, dest: string, opts: CopyOptions = {}): Promise<string> {
  return runChecked('skopeo', [
    '--insecure-policy',
    'copy',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    ...(opts.format ? ['--format', opts.format] : []),
    ...(opts.all ? ['--all'] : []),
    ...credsArg('--src-creds', opts.srcCreds),
    ...credsArg('--dest-creds', opts.destCreds),
    ...(opts.extraArgs ?? []),
    src,
    dest,
  ], { env: skopeoEnv(), timeoutMs: opts.timeoutMs ?? 120_000 });
}

/** Pushes `oci:layoutDir:ref` to `docker://host/repository:tag`. */
export function pushLayout(layoutDir: string, ref: string, host: string, repository: string, tag: string, opts: CopyOptions = {}): Promise<string> {
  return skopeoCopy(`oci:${layoutDir}:${ref}`, `docker://${host}/${repository}:${tag}`, opts);
}

/**
 * Pushes a built image (or index: all its images) to `docker://host/repository:tag`, keeping its
 * manifest bytes and so its digest, in either format.
 */
export async function pushImage(image: BuiltImage | BuiltIndex, host: string, repository: string, tag: string, opts: CopyOptions = {}): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-push-'));
  try {
    await writeSkopeoDir(dir, image);
    return await skopeoCopy(`dir:${dir}`, `docker://${host}/${repository}:${tag}`, { ...('images' in image ? { all: true } : {}), ...opts });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function inspectArgs(ref: string, opts: InspectOptions, extra: string[]): string[] {
  return ['--insecure-policy', 'inspect', '--tls-verify=false', ...credsArg('--creds', opts.creds), ...extra, ref];
}

/** `skopeo inspect --raw`: the manifest bytes exactly as the registry serves them. */
export async function skopeoInspectRaw(ref: string, opts: InspectOptions = {}): Promise<Buffer> {
  const out = await runChecked('skopeo', inspectArgs(ref, opts, ['--raw']), { env: skopeoEnv(), timeoutMs: opts.timeoutMs ?? 60_000 });
  // runChecked decodes as UTF-8; manifests are JSON, so this round-trips.
  return Buffer.from(out, 'utf8');
}

export interface SkopeoInspectResult {
  Name: string;
  Digest: string;
  RepoTags: string[];
  Architecture: string;
  Os: string;
  Layers: string[];
  [key: string]: unknown;
}

/** `skopeo inspect`: the parsed summary (digest, tags, layers, platform). */
export async function skopeoInspect(ref: string, opts: InspectOptions = {}): Promise<SkopeoInspectResult> {
  const out = await runChecked('skopeo', inspectArgs(ref, opts, []), { env: skopeoEnv(), timeoutMs: opts.timeoutMs ?? 60_000 });
  return JSON.parse(out) as SkopeoInspectResult;
}

/** `skopeo inspect --config --raw`: the image config bytes. */
export async function skopeoInspectConfig(ref: string, opts: InspectOptions = {}): Promise<Buffer> {
  const out = await runChecked('skopeo', inspectArgs(ref, opts, ['--config', '--raw']), { env: skopeoEnv(), timeoutMs: opts.timeoutMs ?? 60_000 });
  return Buffer.from(out, 'utf8');
}
