/** Which config a command uses: --config, FERRY_CONFIG, the system file, the embedded default. */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { DEFAULT_CONFIG_FILE } from '../../../lib/config/load.ts';
import { describeChoice, localMirrorUrl, locateConfig } from '../../../lib/config/locate.ts';

describe('config location', () => {
  const present = (file: string) => (f: string): boolean => f === file;

  it('takes --config first, then FERRY_CONFIG, then the system file, then the embedded default', () => {
    const env = { FERRY_CONFIG: '/srv/ferry.json' };
    assert.deepEqual(locateConfig('my.json', { env, exists: present('/etc/ferry/mirror.json') }), { file: resolve('my.json'), source: '--config' });
    assert.deepEqual(locateConfig(undefined, { env, exists: present('/etc/ferry/mirror.json') }), { file: '/srv/ferry.json', source: 'FERRY_CONFIG' });
    assert.deepEqual(locateConfig(undefined, { env: {}, exists: present('/etc/ferry/mirror.json') }), { file: '/etc/ferry/mirror.json', source: 'system' });
    assert.deepEqual(locateConfig(undefined, { env: {}, exists: () => false }), { file: DEFAULT_CONFIG_FILE, source: 'embedded default' });
  });

  it('looks for the relay its own system file', () => {
    assert.deepEqual(locateConfig(undefined, { role: 'relay', env: {}, exists: present('/etc/ferry/relay.json') }), { file: '/etc/ferry/relay.json', source: 'system' });
    assert.equal(locateConfig(undefined, { role: 'relay', env: {}, exists: present('/etc/ferry/mirror.json') }).source, 'embedded default');
  });

  it('says which config, why, and what the command uses', () => {
    assert.equal(describeChoice('gc', { file: '/etc/ferry/mirror.json', source: 'system' }, 'store /var/lib/ferry'),
      'ferry gc: config /etc/ferry/mirror.json (system), store /var/lib/ferry');
  });

  it('reaches a mirror listening on a wildcard address over loopback', () => {
    assert.equal(localMirrorUrl({ listen: '0.0.0.0:4000' }), 'http://127.0.0.1:4000');
    assert.equal(localMirrorUrl({ listen: '[::]:4000' }), 'http://[::1]:4000');
    assert.equal(localMirrorUrl({ listen: 'mirror.lan:443', tls: { cert: 'c', key: 'k' } }), 'https://mirror.lan:443');
  });
});
