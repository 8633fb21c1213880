/**
 * Every way a ferry command ends in failure, in one place, with its exit status: 2 for bad usage
 * or config, 1 for the rest. What an operator caused (OperatorError: ConfigError, UsageError,
 * DataDirInUseError, HtpasswdError, BundleError, a port in use...) gets one line saying what to
 * do; a stack trace only for the unforeseen, or with --debug (FERRY_DEBUG=1).
 */
import { CommanderError } from 'commander';
import { OperatorError, type OperatorErrorKind } from '../lib/operator-error.ts';

/** Kind -> exit status and the line printed after "ferry: ". */
const KINDS: Record<OperatorErrorKind, { exitCode: number; line: (e: OperatorError) => string }> = {
  usage: { exitCode: 2, line: (e) => `${e.message} (run with --help for usage)` },
  config: { exitCode: 2, line: (e) => `config error: ${e.configKey ? `${e.configKey}: ` : ''}${e.message}` },
  runtime: { exitCode: 1, line: (e) => e.message },
};

/** --help and --version exit 0; cmd.error(message, { exitCode }) keeps its own; any other usage error exits 2. */
function commanderExit(e: CommanderError): number {
  const own = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.error';
  return own ? e.exitCode : 2;
}

/** Prints what `e` means for the operator and returns the exit status. */
export function reportCliError(e: unknown, debug = process.argv.includes('--debug') || process.env.FERRY_DEBUG === '1'): number {
  if (e instanceof CommanderError) return commanderExit(e);
  if (!(e instanceof OperatorError)) {
    console.error(`ferry: ${(e as Error)?.stack ?? String(e)}`);
    return 1;
  }
  const kind = KINDS[e.kind];
  console.error(`ferry: ${kind.line(e)}`);
  if (debug) console.error(e.stack);
  return kind.exitCode;
}
