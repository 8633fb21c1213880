/**
 * The README's whole deployment, tried together with every client it names: the relay (TLS from
 * the README's openssl recipe, a token file, an allowlist: relay.example.json), the mirror (the
 * README's "The mirror side" config) with the relay as its only upstream, and two reference
 * registries (distribution 2.8) standing in for Docker Hub and quay.io. Then dockerd (the README's
 * daemon.json), the Docker SDK (as Kolla pulls), skopeo, podman and buildah (the README's
 * registries.conf) and containerd (`ctr --hosts-dir` with the README's two hosts.toml) pull through
 * it, each its own image, so every pull crosses mirror -> relay -> registry.
 *
 * The files are taken from README.md and relay.example.json as written; only these are substituted:
 *   mirror.example.lan:4000          -> the mirror's 127.0.0.1:port
 *   https://relay.example.com:5443   -> the relay's https://127.0.0.1:port
 *   DNS:mirror.example.lan / CN      -> IP:127.0.0.1 (the test CA's certificate is for an address)
 *   relay.example.json               -> listen, dataDir, tls paths, tokenFile, the two upstream URLs
 *   the mirror config                -> listen and dataDir by FERRY_LISTEN / FERRY_DATA_DIR (as the
 *                                       README allows), "caFile" added as the README says for a
 *                                       self-signed relay
 * Timings per client are printed at the end.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config/load.ts';
import { generateToken } from '../../lib/relay/tokens.ts';
import { silentLogger } from '../../lib/log/logger.ts';
import { startMirror, type RunningMirror } from '../../server/mirror.ts';
import { startRelay, type RunningRelay } from '../../server/relay.ts';
import { pullWithDockerSdk } from '../helpers/docker-sdk.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { REPO_ROOT } from '../helpers/ferry-entry.ts';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { runChecked } from '../helpers/processes.ts';
import { readmeBlock } from '../helpers/readme.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../helpers/reference-registry.ts';
import { pushImage, skopeoEnv } from '../helpers/skopeo.ts';

/** Every image the clients pull: where it lives upstream and a layer of its own. */
const IMAGES = {
  docker: { registry: 'hub', repository: 'team/docker', tag: 'v1' },
  dockerKolla: { registry: 'quay', repository: 'openstack.kolla/keystone', tag: '2025.1-rocky-9' },
  sdk: { registry: 'hub', repository: 'kolla/nova-api', tag: '2025.1' },
  skopeo: { registry: 'hub', repository: 'team/skopeo', tag: 'v1' },
  podman: { registry: 'hub', repository: 'team/podman', tag: 'v1' },
  podmanQuay: { registry: 'quay', repository: 'prometheus/node-exporter', tag: 'v1' },
  buildah: { registry: 'hub', repository: 'team/buildah', tag: 'v1' },
  ctr: { registry: 'hub', repository: 'team/ctr', tag: 'v1' },
  ctrQuay: { registry: 'quay', repository: 'openstack.kolla/nova-compute', tag: '2025.1-rocky-9' },
} as const;
type ImageKey = keyof typeof IMAGES;

describe('the README deployment: relay (TLS, token file, allowlist), mirror, and every client through it', function () {
  this.timeout(300_000);
  let dir: string;
  let hub: ReferenceRegistry;
  let quay: ReferenceRegistry;
  let relay: RunningRelay;
  let mirror: RunningMirror;
  let dockerd: Dockerd;
  let mirrorHost: string;
  let relayUrl: string;
  let token: string;
  let ca: Buffer;
  const built = new Map<ImageKey, BuiltImage>();
  const timings: Array<[string, number]> = [];
  const savedToken = process.env.FERRY_RELAY_TOKEN;

  const fromReadme = (text: string): string => text.replaceAll('mirror.example.lan:4000', mirrorHost);
  const layerOf = (key: ImageKey): string => built.get(key)!.layers[0]!.digest;

  /** Times a client's pull and checks its layer crossed the relay and landed in the mirror. */
  async function pulled(client: string, keys: ImageKey[], pull: () => Promise<unknown>): Promise<void> {
    const started = performance.now();
    await pull();
    timings.push([client, performance.now() - started]);
    for (const key of keys) {
      assert.ok(await relay.store.blobs.has(layerOf(key)), `${client}: ${IMAGES[key].repository} came through the relay`);
      assert.ok(await mirror.store.blobs.has(layerOf(key)), `${client}: ${IMAGES[key].repository} is in the mirror's store`);
    }
  }

  const containersEnv = (): NodeJS.ProcessEnv => ({ ...skopeoEnv(), CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf') });
  const storage = (tool: string): string[] => ['--root', join(dir, tool, 'root'), '--runroot', join(dir, tool, 'run'), '--storage-driver', 'vfs'];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-readme-'));
    [hub, quay] = await Promise.all([startReferenceRegistry({ name: 'readme-hub' }), startReferenceRegistry({ name: 'readme-quay' })]);
    const registries = { hub, quay };
    for (const [key, image] of Object.entries(IMAGES) as Array<[ImageKey, (typeof IMAGES)[ImageKey]]>) {
      const b = await buildImage({ seed: `readme-${key}`, layers: [64 * 1024] });
      built.set(key, b);
      await pushImage(b, registries[image.registry].host, image.repository, image.tag);
    }

    // The relay's certificate, by the README's openssl recipe (for 127.0.0.1 instead of a name).
    const openssl = readmeBlock('TLS', 'sh')
      .replaceAll('DNS:mirror.example.lan', 'IP:127.0.0.1')
      .replaceAll('mirror.example.lan', '127.0.0.1');
    await runChecked('sh', ['-euc', openssl], { cwd: dir, timeoutMs: 60_000 });
    ca = await readFile(join(dir, 'ca.crt'));

    // The token file: one token a line, # comments (README "Tokens").
    token = generateToken();
    await writeFile(join(dir, 'relay.tokens'), `# the mirror at the office\n${token}\n`, { mode: 0o600 });

    // The relay: relay.example.json with this host's addresses and paths.
    const relayConfig = JSON.parse(await readFile(join(REPO_ROOT, 'relay.example.json'), 'utf8')) as {
      listen: string; dataDir: string; tls: { cert: string; key: string };
      upstreams: { dockerhub: { url: string }; quay: { url: string } }; relay: { tokenFile: string; allow: string[] };
    };
    assert.deepEqual(relayConfig.relay.allow, ['dockerhub', 'quay'], 'the example relay serves an allowlist');
    relayConfig.listen = '127.0.0.1:0';
    relayConfig.dataDir = join(dir, 'relay-data');
    relayConfig.tls = { cert: join(dir, 'mirror.crt'), key: join(dir, 'mirror.key') };
    relayConfig.relay.tokenFile = join(dir, 'relay.tokens');
    relayConfig.upstreams.dockerhub.url = hub.url;
    relayConfig.upstreams.quay.url = quay.url;
    await writeFile(join(dir, 'relay.json'), JSON.stringify(relayConfig));
    relay = await startRelay(loadConfig(join(dir, 'relay.json'), {}), { logger: silentLogger });
    relayUrl = `https://${relay.address}`;

    // The mirror: the README's config, pointed at this relay, its token in the environment.
    const mirrorConfig = JSON.parse(readmeBlock('The mirror side', 'json').replaceAll('https://relay.example.com:5443', relayUrl)) as {
      upstreams: { relay: Record<string, unknown> };
    };
    mirrorConfig.upstreams.relay.caFile = join(dir, 'ca.crt');
    await writeFile(join(dir, 'mirror.json'), JSON.stringify(mirrorConfig));
    process.env.FERRY_RELAY_TOKEN = token;
    mirror = await startMirror(loadConfig(join(dir, 'mirror.json'), { FERRY_LISTEN: '127.0.0.1:0', FERRY_DATA_DIR: join(dir, 'mirror-data') }), { logger: silentLogger });
    mirrorHost = mirror.address;

    // Client files, from the README.
    const clients = readmeBlock('Clients: Docker', 'json');
    dockerd = await startDockerd({ name: 'dockerd-readme', daemonConfig: JSON.parse(fromReadme(clients)) as Record<string, unknown> });
    for (const [host, nth] of [['docker.io', 0], ['quay.io', 1]] as const) {
      await mkdir(join(dir, 'certs.d', host), { recursive: true });
      await writeFile(join(dir, 'certs.d', host, 'hosts.toml'), fromReadme(readmeBlock('Clients: Docker', 'toml', nth)));
    }
    await writeFile(join(dir, 'registries.conf'), fromReadme(readmeBlock('Clients: Docker', 'toml', 2)));
  });

  after(async () => {
    if (timings.length > 0) {
      console.log('      client timings (mirror -> relay over TLS -> registry; each client its own image of one 64 KiB layer):');
      for (const [client, ms] of timings) console.log(`        ${client.padEnd(36)} ${(ms / 1000).toFixed(2)} s`);
    }
    await dockerd?.stop();
    await mirror?.close();
    await relay?.close();
    await Promise.all([hub?.stop(), quay?.stop()]);
    if (savedToken === undefined) delete process.env.FERRY_RELAY_TOKEN;
    else process.env.FERRY_RELAY_TOKEN = savedToken;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the relay answers its token from the file over TLS, and nothing without it', async () => {
    const status = (headers: Record<string, string>): Promise<number> => new Promise((resolve, reject) => {
      const req = request(`${relayUrl}/v2/`, { ca, headers, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(await status({ authorization: `Bearer ${token}` }), 200);
    assert.equal(await status({}), 401);
  });

  it('neither the mirror nor the relay proxies a registry they do not serve', async () => {
    const viaMirror = await fetch(`http://${mirrorHost}/v2/ghcr.io/team/app/manifests/v1`);
    assert.equal(viaMirror.status, 404);
    assert.equal(((await viaMirror.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'NAME_UNKNOWN');
    const viaContainerd = await fetch(`http://${mirrorHost}/v2/team/app/manifests/v1?ns=ghcr.io`);
    assert.equal(viaContainerd.status, 404);
    await viaContainerd.body?.cancel();
  });

  it('dockerd: a Docker Hub name by registry-mirrors, and a Kolla quay name from the mirror', async () => {
    await pulled('dockerd (registry-mirrors)', ['docker'], () => dockerd.docker(['pull', `${IMAGES.docker.repository}:${IMAGES.docker.tag}`]));
    await pulled('dockerd (openstack.kolla rule)', ['dockerKolla'], () =>
      dockerd.docker(['pull', `${mirrorHost}/${IMAGES.dockerKolla.repository}:${IMAGES.dockerKolla.tag}`]));
  });

  it('Docker SDK: a Kolla name from the mirror, as kolla-ansible pulls', async () => {
    await pulled('Docker SDK (kolla rule)', ['sdk'], async () => {
      const r = await pullWithDockerSdk({ socketPath: dockerd.socketPath, repository: `${mirrorHost}/${IMAGES.sdk.repository}`, tag: IMAGES.sdk.tag, timeoutSeconds: 60, overallTimeoutMs: 120_000 });
      assert.ok(r.ok, r.error ?? 'the SDK pull failed');
      assert.equal(r.digest, built.get('sdk')!.manifestDigest);
    });
  });

  it('skopeo: a docker.io name through the registries.conf mirror', async () => {
    await pulled('skopeo (registries.conf)', ['skopeo'], () => runChecked('skopeo', ['--registries-conf', join(dir, 'registries.conf'), '--insecure-policy', 'copy',
      `docker://docker.io/${IMAGES.skopeo.repository}:${IMAGES.skopeo.tag}`, `dir:${join(dir, 'skopeo-out')}`], { env: containersEnv(), timeoutMs: 120_000 }));
  });

  it('podman: a docker.io name through the mirror, and quay.io/... from the mirror as a registry', async () => {
    const podman = (args: string[]): Promise<string> => runChecked('podman', [...storage('podman'), ...args], { env: containersEnv(), timeoutMs: 120_000 });
    await pulled('podman (registries.conf mirror)', ['podman'], () => podman(['pull', `docker.io/${IMAGES.podman.repository}:${IMAGES.podman.tag}`]));
    await pulled('podman (quay.io/ by host prefix)', ['podmanQuay'], () =>
      podman(['pull', `${mirrorHost}/quay.io/${IMAGES.podmanQuay.repository}:${IMAGES.podmanQuay.tag}`]));
  });

  it('buildah: a docker.io name through the registries.conf mirror', async () => {
    await pulled('buildah (registries.conf mirror)', ['buildah'], () => runChecked('buildah', [...storage('buildah'), 'pull',
      `docker.io/${IMAGES.buildah.repository}:${IMAGES.buildah.tag}`], { env: containersEnv(), timeoutMs: 120_000 }));
  });

  it('containerd: docker.io (?ns=docker.io) and quay.io (override_path) names with the hosts.toml files', async () => {
    const ctr = (args: string[]): Promise<string> =>
      runChecked('ctr', ['--address', join(dockerd.execRoot, 'containerd', 'containerd.sock'), '--namespace', 'ferry-readme', ...args], { timeoutMs: 120_000 });
    await pulled('containerd (docker.io, ?ns=)', ['ctr'], () =>
      ctr(['images', 'pull', '--hosts-dir', join(dir, 'certs.d'), `docker.io/${IMAGES.ctr.repository}:${IMAGES.ctr.tag}`]));
    await pulled('containerd (quay.io, override_path)', ['ctrQuay'], () =>
      ctr(['images', 'pull', '--hosts-dir', join(dir, 'certs.d'), `quay.io/${IMAGES.ctrQuay.repository}:${IMAGES.ctrQuay.tag}`]));
  });
});
