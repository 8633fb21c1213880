/** `ferry gc`: remove blobs no manifest references. */
import { Command } from 'commander';
import { CONFIG_OPTION_HELP, commandConfig } from './command-config.ts';
import { collectGarbage, parseDuration } from '../lib/storage/gc.ts';
import { openStorage } from '../lib/storage/open-storage.ts';

interface GcFlags {
  config?: string;
  grace: string;
  dryRun?: boolean;
  json?: boolean;
}

export function gcCommand(): Command {
  return new Command('gc')
    .description('Remove blobs that no manifest of any repository references (safe while the mirror runs)')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('--grace <duration>', 'keep unreferenced blobs younger than this (s, m, h, d)', '1h')
    .option('-n, --dry-run', 'report what would be removed, remove nothing')
    .option('--json', 'print the report as JSON')
    .addHelpText('after', `
Marks every blob reachable from a manifest or tag of any repository (configs, layers, child
manifests of an index, referrers), then removes the others older than --grace. Uploads and
downloads in progress are not blobs yet; the grace period protects a blob committed just before
its manifest. Blob links left pointing at nothing are removed too; manifest links whose manifest
is missing are listed, not removed.

Examples:
  ferry gc --dry-run
  ferry gc --grace 24h --config /etc/ferry/mirror.json
  ferry gc --json | jq .freedBytes`)
    .action(async (flags: GcFlags, cmd: Command) => {
      let graceMs: number;
      try {
        graceMs = parseDuration(flags.grace);
      } catch (e) {
        cmd.error(`ferry gc: --grace: ${(e as Error).message}`, { exitCode: 2 });
      }
      const config = commandConfig('gc', flags.config);
      const store = await openStorage(config);
      const r = await collectGarbage(store, { graceMs, dryRun: flags.dryRun === true });
      const { formatBytes } = await import('../lib/archive/progress.ts');
      if (flags.json) {
        console.log(JSON.stringify(r, null, 2));
        return;
      }
      const verb = r.dryRun ? 'would free' : 'freed';
      console.log(`${verb} ${formatBytes(r.freedBytes)} (${r.freedBytes} bytes) in ${r.deletedBlobs} blobs; scanned ${r.scannedBlobs} blobs, ${r.markedBlobs} referenced by ${r.manifests} manifests in ${r.repositories} repositories`);
      if (r.youngBlobs > 0) console.log(`kept ${r.youngBlobs} unreferenced blobs (${formatBytes(r.youngBytes)}) younger than ${flags.grace}`);
      if (r.removedLinks > 0) console.log(`${r.dryRun ? 'would remove' : 'removed'} ${r.removedLinks} blob links to missing blobs`);
      for (const d of r.danglingManifests) console.log(`warning: manifest ${d} is linked but its blob is missing`);
    });
}
