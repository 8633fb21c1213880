/**
 * One reading of the rules: for every shipped rule set (registry.config.json, relay.example.json,
 * every README config with rewrite rules) and issue 13's example, `ferry import` of an image
 * then a pull of it through a mirror with that routing finds the imported copy, under each name
 * a client asks for it by in that setup. The mirror's upstreams point at a closed port: a pull
 * that misses the imported copy fails instead of reaching the internet.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { importBundle } from '../../lib/archive/import.ts';
import type { ConfigInput } from '../../lib/config/schema.ts';
import { MEDIA } from '../../lib/oci/media-types.ts';
import { REPO_ROOT } from '../helpers/ferry-entry.ts';
import { startTestMirror } from '../e2e/mirror-fixture.ts';
import { legacyTar, syntheticImage, writeTemp } from './fixtures.ts';

type Routing = Pick<ConfigInput, 'upstreams' | 'rewrite' | 'defaultUpstream'>;

/** The routing part of a config, its upstreams sent to a closed port. */
function routingOf(config: Routing): Routing {
  const upstreams = Object.fromEntries(Object.entries(config.upstreams ?? {}).map(([key, u]) => [key, {
    url: 'http://127.0.0.1:9',
    ...(u.kind !== undefined ? { kind: u.kind } : {}),
    ...(u.hosts !== undefined ? { hosts: u.hosts } : {}),
    ...(u.kind === 'relay' ? { token: 'test' } : {}),
  }]));
  return { upstreams, rewrite: config.rewrite ?? [], ...(config.defaultUpstream !== undefined ? { defaultUpstream: config.defaultUpstream } : {}) };
}

const readJson = (file: string): Routing => JSON.parse(readFileSync(`${REPO_ROOT}/${file}`, 'utf8')) as Routing;

/** The README's JSON blocks that carry rewrite rules. */
function readmeRuleSets(): Routing[] {
  const readme = readFileSync(`${REPO_ROOT}/README.md`, 'utf8');
  return [...readme.matchAll(/```json\n([\s\S]*?)```/g)].flatMap((m) => {
    try {
      const json = JSON.parse(m[1] as string) as Routing;
      return Array.isArray(json.rewrite) && json.rewrite.length > 0 ? [json] : [];
    } catch {
      return [];
    }
  });
}

/** [source image (a docker save RepoTag), the names a client pulls it by ("name" or "name?ns=host")]. */
type Row = [string, string[]];

const kollaOnHub: Row[] = [
  ['kolla/special:1', ['kolla/special', 'kollaglue/special']],
  ['kolla/centos-binary-nova-api:2.0.2', ['kolla/centos-binary-nova-api', 'kollaglue/centos-binary-nova-api']],
  ['kollaglue/centos-source-heka:2.0.1', ['kollaglue/centos-source-heka', 'kolla/centos-source-heka']],
  ['ubuntu:24.04', ['library/ubuntu']],
  ['someorg/img:1', ['someorg/img']],
];

const sets: Array<{ what: string; routing: Routing; rows: Row[] }> = [
  {
    what: 'registry.config.json',
    routing: readJson('registry.config.json'),
    // kolla-ansible with docker_namespace openstack.kolla asks the mirror for openstack.kolla/X.
    rows: [...kollaOnHub, ['quay.io/openstack.kolla/nova-api:2025.1', ['openstack.kolla/nova-api']]],
  },
  {
    what: 'relay.example.json',
    routing: readJson('relay.example.json'),
    rows: [
      ['kolla/special:1', ['kolla/special']],
      ['ubuntu:24.04', ['library/ubuntu', 'library/ubuntu?ns=docker.io']],
      ['quay.io/openstack.kolla/nova-api:2025.1', ['quay.io/openstack.kolla/nova-api', 'openstack.kolla/nova-api?ns=quay.io']],
    ],
  },
  ...readmeRuleSets().map((routing, i) => ({
    what: `README config ${i + 1} with rewrite rules`,
    routing,
    rows: [...kollaOnHub, ['quay.io/openstack.kolla/nova-api:2025.1', ['openstack.kolla/nova-api']]] as Row[],
  })),
  {
    what: "issue 13's example (a rule without local before kolla/*)",
    routing: {
      upstreams: { hub: { url: 'https://registry-1.docker.io', kind: 'dockerhub', hosts: ['docker.io'] } },
      defaultUpstream: 'hub',
      rewrite: [{ match: 'kolla/special', upstream: 'hub' }, { match: 'kolla/*', local: 'lokolla/*', upstream: 'hub' }],
    },
    rows: [['kolla/special:1', ['kolla/special']], ['kolla/other:1', ['kolla/other']]],
  },
];

describe('import then pull round-trips for every shipped rule set', function () {
  this.timeout(30_000);

  it('finds README configs with rewrite rules to check', () => {
    assert.ok(readmeRuleSets().length >= 1);
  });

  for (const { what, routing, rows } of sets) {
    it(`${what}: ${rows.map(([source]) => source).join(', ')}`, async () => {
      const ferry = await startTestMirror(routingOf(routing));
      try {
        const images = await Promise.all(rows.map(([source]) => syntheticImage(`round-trip ${what} ${source}`, 1)));
        const file = await writeTemp(ferry.dataDir, 'bundle.tar', await legacyTar(rows.map(([source], i) => ({ image: images[i]!, repoTags: [source] }))));
        const result = await importBundle(ferry.mirror.store, file, { routing: ferry.config });
        for (const [source, pulls] of rows) {
          const imported = result.images.find((i) => i.source === source);
          assert.ok(imported, `${source} was imported`);
          for (const pull of pulls) {
            const [name, query] = pull.split('?');
            const url = `${ferry.url}/v2/${name}/manifests/${imported.tag}${query === undefined ? '' : `?${query}`}`;
            const res = await fetch(url, { headers: { accept: MEDIA.dockerManifest } });
            await res.arrayBuffer();
            assert.equal(res.status, 200, `${source} imported as ${imported.name}:${imported.tag}, pulled as ${pull}:${imported.tag}`);
            assert.equal(res.headers.get('docker-content-digest'), imported.digest, `${pull}:${imported.tag}`);
          }
        }
      } finally {
        await ferry.stop();
      }
    });
  }
});
