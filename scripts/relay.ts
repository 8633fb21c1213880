/** `ferry relay`: the authenticated, range-serving front on the far side of the link; `ferry relay token`. */
import { Command } from 'commander';
import { commandConfig } from './command-config.ts';
import { generateToken } from '../lib/relay/tokens.ts';
import { installSignalHandlers } from '../server/ops/shutdown.ts';

export interface RelayCommandIo {
  /** Where `relay token` writes (default stdout). */
  out?: (line: string) => void;
}

export function relayCommand(io: RelayCommandIo = {}): Command {
  const out = io.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  const relay = new Command('relay')
    .description('Serve upstream registries to ferry mirrors: token auth, host allowlist, byte ranges, bounded cache')
    .option('-c, --config <file>', 'config file with upstreams, relay (tokens, allow, cacheMaxBytes) and tls (default: $FERRY_CONFIG, then /etc/ferry/relay.json)')
    .addHelpText('after', `
Examples:
  ferry relay token > /etc/ferry/relay.tokens     # a new random token (32 bytes, base64url)
  ferry relay --config /etc/ferry/relay.json

Signals: SIGHUP reloads the TLS certificate and the token file (the file is also re-read when it
changes); SIGTERM and SIGINT stop.`)
    .action(async (opts: { config?: string }) => {
      const config = commandConfig('relay', opts.config, { role: 'relay' });
      const { startRelay } = await import('../server/relay.ts');
      const running = await startRelay(config);
      installSignalHandlers(running);
    });
  relay
    .command('token')
    .description('Print a new random relay token (add it to relay.tokens or the token file, and to the mirror)')
    .action(() => {
      out(generateToken());
    });
  return relay;
}
