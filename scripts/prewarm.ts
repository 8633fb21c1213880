/** `ferry prewarm`: fill a running mirror from an image list or a Kolla profile. */
import { OperatorError } from '../lib/operator-error.ts';
import { Command, Option } from 'commander';
import { KollaError } from '../lib/kolla/kolla-error.ts';
import type { KollaPullList } from '../lib/kolla/pull-list.ts';
import { localMirrorUrl } from '../lib/config/locate.ts';
import { CONFIG_OPTION_HELP, commandConfig } from './command-config.ts';

interface PrewarmFlags {
  mirror?: string;
  config?: string;
  list?: string[];
  kollaProfile?: string[];
  kollaRelease?: string;
  kollaDistro?: string;
  kollaInstallType?: 'binary' | 'source';
  kollaDistroVersion?: string;
  kollaTag?: string;
  kollaNamespace?: string;
  kollaRegistry?: string;
  kollaGlobals?: string;
  kollaInventory?: string;
  kollaGroup?: string;
  platform: string[];
  concurrency: string;
  dryRun?: boolean;
}

export function prewarmCommand(): Command {
  return new Command('prewarm')
    .description('Fill a running mirror with images (from lists, a Kolla deploy or a Kolla build profile) before a deploy')
    .argument('[images...]', 'image references, e.g. kolla/centos-binary-nova-api:2.0.2')
    .option('-m, --mirror <url>', "the running mirror (default: the config's listen address, e.g. http://127.0.0.1:4000)")
    .option('-c, --config <file>', CONFIG_OPTION_HELP)
    .option('-f, --list <file...>', 'image list files: one reference a line, # comments')
    .option('--kolla-globals <file>', 'what kolla-ansible pull pulls for this globals.yml, e.g. /etc/kolla/globals.yml')
    .option('--kolla-inventory <file>', "with --kolla-globals: the Ansible inventory (default: kolla-ansible's multinode)")
    .option('--kolla-group <group>', 'with --kolla-globals: only the images the hosts of this group run, e.g. compute')
    .option('--kolla-profile <name...>', 'Kolla build profile(s), e.g. default: what kolla-build builds')
    .option('--kolla-release <release>', 'Kolla release: mitaka ... 2026.1, master, or a version (2.0.2); with --kolla-globals, overrides openstack_release')
    .option('--kolla-distro <distro>', 'centos, ubuntu, debian, rocky')
    .addOption(new Option('--kolla-install-type <type>', 'binary or source (before Zed)').choices(['binary', 'source']))
    .option('--kolla-distro-version <v>', 'distro version in Zed+ tags, e.g. 9, noble')
    .option('--kolla-tag <tag>', "overrides the release's tag (kolla-ansible openstack_tag)")
    .option('--kolla-namespace <ns>', 'overrides docker_namespace')
    .option('--kolla-registry <host>', "overrides docker_registry ('' for Docker Hub)")
    .option('-p, --platform <os/arch...>', 'platforms to keep from an index', ['linux/amd64'])
    .option('-j, --concurrency <n>', 'images at once', '3')
    .option('--dry-run', 'print the image references and exit')
    .addHelpText('after', `
Examples:
  ferry prewarm -f images.txt
  ferry prewarm --kolla-globals /etc/kolla/globals.yml --kolla-inventory /etc/kolla/multinode --dry-run
  ferry prewarm --kolla-globals /etc/kolla/globals.yml --kolla-inventory /etc/kolla/multinode --kolla-group compute
  ferry prewarm --kolla-profile default --kolla-release 2025.1 --kolla-distro rocky
  ferry prewarm --kolla-profile default --kolla-release 2.0.2 --kolla-distro centos --kolla-install-type source --dry-run
  ferry prewarm --kolla-profile default --kolla-release wallaby --kolla-distro centos
  ferry prewarm --kolla-profile default --kolla-release zed --kolla-distro rocky
  ferry prewarm --kolla-profile default main --kolla-release 2024.2 --kolla-distro ubuntu
  ferry prewarm --kolla-profile infra --kolla-release master --kolla-distro rocky --dry-run
  ferry prewarm -m http://mirror.lan:4000 quay.io/openstack.kolla/nova-api:2025.1-rocky-9

Exit status: 0 when every image is in the mirror, 1 when any failed (the report says why), 2 on bad usage.`)
    .action(async (images: string[], flags: PrewarmFlags, cmd: Command) => {
      const [{ kollaImageRefs }, { formatPullList, kollaPullList, pullListThroughMirror }, { readImageList }, { parsePlatform }, { MirrorUnreachableError, Prewarm }, { attachProgress, formatReport }] = await Promise.all([
        import('../lib/kolla/naming.ts'), import('../lib/kolla/pull-list.ts'), import('../lib/prewarm/image-list.ts'),
        import('../lib/prewarm/platforms.ts'), import('../lib/prewarm/prewarm.ts'), import('../lib/prewarm/progress.ts'),
      ]);
      const refs = [...images];
      for (const file of flags.list ?? []) refs.push(...(await readImageList(file)));
      const { kollaProfile: profile, kollaRelease: release, kollaDistro: distro, kollaGlobals: globals } = flags;
      let deploy: KollaPullList | undefined;
      if (globals) {
        deploy = await kollaInput(() => kollaPullList({ globalsFile: globals, inventoryFile: flags.kollaInventory, group: flags.kollaGroup, release }));
        for (const warning of deploy.warnings) console.error(`ferry prewarm: warning: ${warning}`);
        if (flags.dryRun) console.log(formatPullList(deploy));
      } else if (flags.kollaInventory !== undefined || flags.kollaGroup !== undefined) {
        throw usage('--kolla-inventory and --kolla-group need --kolla-globals');
      }
      if (profile) {
        if (!release || !distro) throw usage('--kolla-profile needs --kolla-release and --kolla-distro');
        refs.push(...kollaInput(() => kollaImageRefs({
          profile,
          release,
          distro,
          installType: flags.kollaInstallType,
          distroVersion: flags.kollaDistroVersion,
          tag: flags.kollaTag,
          namespace: flags.kollaNamespace,
          registry: flags.kollaRegistry,
        })));
      }
      if (refs.length === 0 && !deploy) throw usage('no images: give references, --list, --kolla-globals or --kolla-profile');
      if (flags.dryRun) {
        if (refs.length > 0) console.log([...new Set(refs)].join('\n'));
        return;
      }
      const concurrency = Number(flags.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1) throw usage('--concurrency must be a positive integer');
      const mirror = mirrorUrl(flags);
      if (deploy) {
        const through = pullListThroughMirror(deploy, new URL(mirror).host);
        if (through.note) console.error(`ferry prewarm: ${through.note}`);
        console.log(`prewarm: ${deploy.summary}`);
        refs.push(...through.refs);
      }
      const unique = [...new Set(refs)];
      const prewarm = new Prewarm({ mirror, refs: unique, platforms: flags.platform.map(parsePlatform), concurrency });
      const detach = attachProgress(prewarm, unique, { mirror });
      let report;
      try {
        report = await prewarm.run();
      } catch (e) {
        if (e instanceof MirrorUnreachableError) cmd.error(`ferry prewarm: ${e.message}`, { exitCode: 1 });
        throw e;
      } finally {
        detach();
      }
      console.log(formatReport(report));
      if (report.images.some((i) => !i.ok)) process.exitCode = 1;
    });
}

/** -m, else the mirror its config describes (the line printed says which). */
function mirrorUrl(flags: PrewarmFlags): string {
  if (flags.mirror !== undefined) {
    console.error(`ferry prewarm: mirror ${flags.mirror} (-m)`);
    return flags.mirror;
  }
  return localMirrorUrl(commandConfig('prewarm', flags.config, { uses: (cfg) => `mirror ${localMirrorUrl(cfg)} (its listen)` }));
}

export class UsageError extends OperatorError {
  constructor(message: string) {
    super(message, 'usage');
    this.name = 'UsageError';
  }
}

function usage(message: string): UsageError {
  return new UsageError(message);
}

/** Kolla's answer to the operator's Kolla options; a release, profile, group or file it cannot use is bad usage (one line, exit 2). */
function kollaInput<T>(answer: () => T): T {
  const asUsage = (e: unknown): never => {
    throw e instanceof KollaError ? usage(e.message) : e;
  };
  try {
    const result = answer();
    return (result instanceof Promise ? result.catch(asUsage) : result) as T;
  } catch (e) {
    return asUsage(e);
  }
}
