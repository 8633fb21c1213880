/** How every command finds its config (lib/config/locate.ts) and says which config and store it uses. */
import { loadConfig, type LoadedConfig } from '../lib/config/load.ts';
import { describeChoice, locateConfig, type ConfigRole } from '../lib/config/locate.ts';
import { describeStorage } from '../lib/storage/open-storage.ts';

export const CONFIG_OPTION_HELP = 'config file (default: $FERRY_CONFIG, then /etc/ferry/mirror.json, then the embedded registry.config.json)';

/**
 * Loads the command's config and prints (stderr) `ferry CMD: config FILE (why), store DIR`.
 * `uses` replaces the store part for commands that work through the mirror (prewarm).
 */
export function commandConfig(command: string, flag: string | undefined, opts: { role?: ConfigRole; uses?: (cfg: LoadedConfig) => string; quiet?: boolean } = {}): LoadedConfig {
  const choice = locateConfig(flag, { role: opts.role ?? 'mirror' });
  const config = loadConfig(choice.file);
  if (!opts.quiet) console.error(describeChoice(command, choice, opts.uses ? opts.uses(config) : `store ${describeStorage(config)}`));
  return config;
}
