/**
 * The ferry command line: one program, several roles and tools. Each command loads the code it
 * runs when it runs (a dynamic import in its action), so a long-running mirror or relay does not
 * hold the modules of the others (~6 MB of the mirror's resident memory; test/ops/command-modules).
 */
import { Command } from 'commander';
import { ferryVersion } from '../lib/project-files.ts';
import { CONFIG_OPTION_HELP, commandConfig } from './command-config.ts';
import { prewarmCommand } from './prewarm.ts';
import { configCommand } from './config-check.ts';
import { importCommand } from './import.ts';
import { exportCommand } from './export.ts';
import { gcCommand } from './gc.ts';
import { relayCommand } from './relay.ts';
import { reportCliError } from './cli-errors.ts';
import { installSignalHandlers } from '../server/ops/shutdown.ts';

const program = new Command('ferry')
  .description('A container-registry mirror and relay for slow, throttled, reset-prone links')
  .version(ferryVersion())
  .showHelpAfterError('(run with --help for usage)')
  .addHelpText('after', `
Examples:
  ferry mirror                                    # the mirror, with /etc/ferry/mirror.json (else the embedded default: 0.0.0.0:4000, ./data)
  ferry prewarm --kolla-globals /etc/kolla/globals.yml   # what kolla-ansible pull will pull
  ferry import images.tar                         # docker save tarballs, rewritten by the rules
  ferry relay --config /etc/ferry/relay.json      # the relay, on a VPS beyond the link
  ferry config check --config /etc/ferry/mirror.json

Each command has --help with its own examples. Exit status: 0 success, 1 failure, 2 bad usage or config. --debug (or FERRY_DEBUG=1) adds the stack trace to an error.`);

program
  .command('mirror')
  .description('Serve the registry API (pull and push) from the local store, fetching what is missing upstream')
  .option('-c, --config <file>', CONFIG_OPTION_HELP)
  .addHelpText('after', `
Examples:
  ferry mirror                             # config: $FERRY_CONFIG, /etc/ferry/mirror.json, else the embedded one (0.0.0.0:4000, ./data)
  ferry mirror --config /etc/ferry/mirror.json
  FERRY_LISTEN=127.0.0.1:5000 FERRY_DATA_DIR=/srv/ferry ferry mirror`)
  .action(async (opts: { config?: string }) => {
    const config = commandConfig('mirror', opts.config);
    const { startMirror } = await import('../server/mirror.ts');
    const mirror = await startMirror(config);
    installSignalHandlers(mirror);
  });

program.addCommand(prewarmCommand());
program.addCommand(importCommand());
program.addCommand(exportCommand());
program.addCommand(gcCommand());
program.addCommand(configCommand());
program.addCommand(relayCommand());
// Usage errors exit 2, runtime failures 1: commander's own exits go through the catch below.
const overrideAll = (c: Command): void => {
  c.exitOverride().showHelpAfterError('(run with --help for usage)');
  c.commands.forEach(overrideAll);
};
overrideAll(program);

try {
  await program.parseAsync(process.argv.filter((a) => a !== '--debug'));
} catch (e) {
  process.exit(reportCliError(e));
}
