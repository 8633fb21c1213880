/** `ferry import`: docker save tarballs and OCI layouts into the store, as local (pinned) images. */
import { Command } from 'commander';
import { CONFIG_OPTION_HELP, commandConfig } from './command-config.ts';
import { openStorage } from '../lib/storage/open-storage.ts';

interface ImportFlags {
  config?: string;
  as?: string;
  prefix?: string;
  rewrite: boolean;
  quiet?: boolean;
}

export function importCommand(): Command {
  return new Command('import')
    .description('Import docker save tarballs or OCI image layouts (tar or directory) into the store, pinned')
    .argument('<bundle...>', 'docker save / docker-tar files, OCI layout tarballs or directories')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('--as <name[:tag]>', 'import the one image of the bundle under this name (and tag)')
    .option('--prefix <prefix>', 'name = prefix + the image\'s last path component, e.g. lokolla/')
    .option('--no-rewrite', 'do not map names through the rewrite rules')
    .option('-q, --quiet', 'no progress')
    .addHelpText('after', `
Names: --as wins, then --prefix, then where a pull of the image looks first as the config's
routing says (an image a rewrite rule serves goes to that rule's local name: kolla/x -> lokolla/x
with a kolla/* -> lokolla/* rule), else the name a mirror would ask for (docker.io/kolla/x ->
kolla/x, ubuntu -> library/ubuntu, a host:port is dropped).

Examples:
  docker save kolla/centos-binary-nova-api:2.0.2 -o nova-api.tar
  ferry import nova-api.tar                      # -> lokolla/centos-binary-nova-api:2.0.2 with a kolla/* -> lokolla/* rule
  ferry import --prefix lokolla/ images/*.tar
  ferry import --as lokolla/heka:2.0.2 heka.tar
  ferry import /mnt/usb/bundle                   # an OCI layout directory from ferry export
  ferry import --config /etc/ferry/mirror.json bundle.tar

Importing while the mirror runs is safe. A truncated or damaged bundle is refused whole: no tag
and no manifest appear (blobs verified before the damage stay for ferry gc).`)
    .action(async (bundles: string[], flags: ImportFlags, cmd: Command) => {
      const config = commandConfig('import', flags.config);
      const [{ importBundle }, { consoleProgress }] = await Promise.all([import('../lib/archive/import.ts'), import('../lib/archive/progress.ts')]);
      const store = await openStorage(config);
      for (const bundle of bundles) {
        try {
          const result = await importBundle(store, bundle, {
            ...(flags.as !== undefined ? { as: flags.as } : {}),
            ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
            routing: flags.rewrite ? config : { ...config, rewrite: [] },
            ...(flags.quiet ? {} : { progress: consoleProgress() }),
          });
          for (const i of result.images) console.log(`imported ${i.name}:${i.tag} ${i.digest}${i.source ? ` (was ${i.source})` : ''}`);
        } catch (e) {
          cmd.error(`ferry import: ${(e as Error).message}`, { exitCode: 1 });
        }
      }
    });
}
