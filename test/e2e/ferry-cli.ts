/** Runs the ferry CLI as a child process (node + tsx), as a user would, and collects its output. */
import { spawn } from 'node:child_process';
import { REPO_ROOT, ferryArgs } from '../helpers/ferry-entry.ts';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `as`: run as this user (the tests run as root; an operator's service user is not).
 * `compiled`: run dist/ (benchmarks, after ensureBuilt()) rather than the sources through tsx.
 */
export function runFerry(args: string[], opts: { as?: { uid: number; gid: number }; compiled?: boolean } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...ferryArgs(opts.compiled), ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts.as });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
