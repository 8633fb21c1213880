import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseConfig } from '../../lib/config/load.ts';
import { route } from '../../lib/rewrite/route.ts';

describe('relay.example.json', () => {
  const file = resolve(import.meta.dirname, '../../relay.example.json');
  const config = parseConfig(JSON.parse(readFileSync(file, 'utf8')), file, {});

  it('is a valid config with a token file and an allowlist', () => {
    assert.equal(config.relay?.tokenFile, '/etc/ferry/relay.tokens');
    assert.deepEqual(config.relay?.allow, ['dockerhub', 'quay']);
    assert.ok(config.tls);
  });

  it('routes the names a mirror sends to the upstream of their host', () => {
    assert.deepEqual(route(config, 'docker.io/kolla/nova-api', '2.0.2').upstream, { name: 'dockerhub', repository: 'kolla/nova-api' });
    assert.deepEqual(route(config, 'docker.io/ubuntu', 'latest').upstream, { name: 'dockerhub', repository: 'library/ubuntu' });
    assert.deepEqual(route(config, 'quay.io/openstack.kolla/nova-api', '2025.1').upstream, { name: 'quay', repository: 'openstack.kolla/nova-api' });
  });
});
