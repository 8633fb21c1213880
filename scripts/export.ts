/** `ferry export`: images from the store into a bundle (OCI layout directory or docker save tarball). */
import { Command, Option } from 'commander';
import { CONFIG_OPTION_HELP, commandConfig } from './command-config.ts';
import type { ExportFormat } from '../lib/archive/export.ts';
import { openStorage } from '../lib/storage/open-storage.ts';

interface ExportFlags {
  config?: string;
  output: string;
  format?: ExportFormat;
  since?: string;
  includeCache?: boolean;
  platform: string;
  quiet?: boolean;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('Export images from the store into a bundle another site imports (ferry import) or loads (docker load)')
    .argument('[images...]', 'name:tag, name@digest or name (all its tags); none: every local image')
    .requiredOption('-o, --output <path>', "a directory (oci-dir) or a file (docker-tar; '-' is stdout)")
    .addOption(new Option('-f, --format <format>', 'bundle format (default: docker-tar when the output ends in .tar or is -, else oci-dir)').choices(['oci-dir', 'docker-tar']))
    .option('--since <index>', "what the other side has: its index.json, its OCI layout directory, or a list of digests; those blobs are left out")
    .option('--include-cache', 'with no image named: also pull-through cached images')
    .option('--platform <os/arch>', 'docker-tar: the platform manifest.json lists for a multi-platform image', 'linux/amd64')
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('-q, --quiet', 'no progress')
    .addHelpText('after', `
oci-dir writes one file per blob (rsync-friendly) and resumes: blobs already there at the right
size are kept, every blob written is verified. docker-tar is what docker save writes (Docker 25
layout: an OCI layout plus manifest.json), so docker load takes it too, unless --since left
layers out (then it is for ferry import only).

Examples:
  ferry export -o /mnt/usb/bundle                                  # every local image, OCI layout directory
  ferry export -o kolla.tar lokolla/centos-binary-nova-api:2.0.2 lokolla/centos-binary-keystone:2.0.2
  ferry export -o /mnt/usb/bundle --since /mnt/usb/other-side/index.json lokolla/nova-api
  ferry export -o - lokolla/x:1 | ssh far 'cat > x.tar && ferry import x.tar'`)
    .action(async (refs: string[], flags: ExportFlags, cmd: Command) => {
      const config = commandConfig('export', flags.config);
      const [{ exportDockerTar, exportOciDir }, { formatBytes, consoleProgress }, { selectImages }, { readSince }] = await Promise.all([
        import('../lib/archive/export.ts'), import('../lib/archive/progress.ts'), import('../lib/archive/select.ts'), import('../lib/archive/since.ts'),
      ]);
      const store = await openStorage(config);
      const format: ExportFormat = flags.format ?? (flags.output === '-' || flags.output.endsWith('.tar') ? 'docker-tar' : 'oci-dir');
      try {
        const images = await selectImages(store, refs, { includeCache: flags.includeCache === true });
        if (images.length === 0) throw new Error('no image to export');
        const since = flags.since !== undefined ? await readSince(store, flags.since) : undefined;
        const opts = { ...(since ? { since } : {}), platform: flags.platform, ...(flags.quiet ? {} : { progress: consoleProgress() }) };
        const r = format === 'oci-dir' ? await exportOciDir(store, images, flags.output, opts) : await exportDockerTar(store, images, flags.output, opts);
        const out = flags.output === '-' ? console.error : console.log;
        out(`exported ${r.images} image(s) to ${flags.output} (${format}): ${r.blobsWritten} blobs written (${formatBytes(r.bytesWritten)}), ${r.blobsPresent} already there, ${r.blobsOmitted} left out (--since)`);
      } catch (e) {
        cmd.error(`ferry export: ${(e as Error).message}`, { exitCode: 1 });
      }
    });
}
