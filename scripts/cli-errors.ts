/**
 * Every way a ferry command ends in failure, in one place, with its exit status: 2 for bad usage
 * or config, 1 for the rest. What an operator caused gets one line saying what to do; a stack
 * trace only for the unforeseen, or with --debug (FERRY_DEBUG=1).
 */
import { CommanderError } from 'commander';
import { ConfigError } from '../lib/config/load.ts';
import { OperatorError } from '../lib/operator-error.ts';
import { DataDirInUseError } from '../lib/storage/data-dir-lock.ts';
import { HtpasswdError } from '../server/auth/htpasswd.ts';
import { UsageError } from './prewarm.ts';

interface Outcome { exitCode: number; line?: string }

const TABLE: Array<[new (...args: never[]) => Error, (e: Error) => Outcome]> = [
  [ConfigError, (e) => ({ exitCode: 2, line: `config error: ${e.message}` })],
  [HtpasswdError, (e) => ({ exitCode: 2, line: `config error: auth.htpasswd: ${e.message}` })],
  [UsageError, (e) => ({ exitCode: 2, line: `${e.message} (run with --help for usage)` })],
  [DataDirInUseError, (e) => ({ exitCode: 1, line: e.message })],
  [OperatorError, (e) => ({ exitCode: 1, line: e.message })],
  // --help and --version exit 0; help shown for a missing command, like any usage error, exits 2;
  // cmd.error(message, { exitCode }) of a command keeps its own exit status.
  [CommanderError, (e) => {
    const c = e as CommanderError;
    const own = c.code === 'commander.helpDisplayed' || c.code === 'commander.version' || c.code === 'commander.error';
    return { exitCode: own ? c.exitCode : 2 };
  }],
];

/** Prints what `e` means for the operator and returns the exit status. */
export function reportCliError(e: unknown, debug = process.argv.includes('--debug') || process.env.FERRY_DEBUG === '1'): number {
  const row = TABLE.find(([type]) => e instanceof type);
  if (!row) {
    console.error(`ferry: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
  const outcome = row[1](e as Error);
  if (outcome.line !== undefined) console.error(`ferry: ${outcome.line}`);
  if (debug && !(e instanceof CommanderError)) console.error((e as Error).stack);
  return outcome.exitCode;
}
