/**
 * Runs docker-sdk.py: a pull through the Docker Python SDK exactly as Kolla's deploy does it.
 * The interpreter is $FERRY_PYTHON, else python3 from PATH (it needs the `docker` module:
 * Debian's python3-docker or pip's docker).
 */
import path from 'node:path';
import { run } from './processes.ts';

export interface DockerSdkPullSummary {
  ok: boolean;
  sdkVersion: string;
  repository: string;
  tag: string;
  /** Progress events received. */
  events: number;
  /** Distinct statuses without a layer id ("Pulling from ...", "Digest: ...", "Status: ..."). */
  statuses: string[];
  /** Last status per layer id. */
  layers: Record<string, string>;
  digest: string | null;
  error: string | null;
  seconds: number;
}

export interface DockerSdkPullOptions {
  /** Path of the docker unix socket (Dockerd.socketPath). */
  socketPath: string;
  /** e.g. '127.0.0.1:5000/kolla/base' */
  repository: string;
  tag?: string;
  auth?: { username: string; password: string };
  /** The SDK's socket timeout (no progress for this long fails the pull); default 120. */
  timeoutSeconds?: number;
  /** Kill the script after this long; default 10 minutes. */
  overallTimeoutMs?: number;
}

const SCRIPT = path.join(import.meta.dirname, 'docker-sdk.py');

/** Returns the summary whether the pull succeeded or not; throws only if the script itself broke. */
export async function pullWithDockerSdk(opts: DockerSdkPullOptions): Promise<DockerSdkPullSummary> {
  const python = process.env.FERRY_PYTHON ?? 'python3';
  const timeout = opts.timeoutSeconds ?? 120;
  const res = await run(python, [
    SCRIPT,
    '--socket', opts.socketPath,
    '--repository', opts.repository,
    '--tag', opts.tag ?? 'latest',
    '--timeout', String(timeout),
    ...(opts.auth ? ['--username', opts.auth.username, '--password', opts.auth.password] : []),
  ], { timeoutMs: opts.overallTimeoutMs ?? 600_000 });
  const line = res.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as DockerSdkPullSummary;
  } catch {
    throw new Error(`docker-sdk.py gave no summary (exit ${res.code ?? res.signal}):\n${res.stderr.trim() || res.stdout.trim()}`);
  }
}
