/** Config loading: one schema, errors that name the file, the key path and what was expected. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from '../../../lib/config/load.ts';
import { configJsonSchema } from '../../../lib/config/json-schema.ts';
import { relayEndpoints } from '../../../lib/upstream/relay-endpoints.ts';
import { missingSecrets, resolveSecrets } from '../../../lib/config/secrets.ts';
import { createUpstreams } from '../../../lib/upstream/clients.ts';
import { silentLogger } from '../../../lib/log/logger.ts';

const FILE = '/etc/ferry/mirror.json';

function configError(raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(raw, FILE, env);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  assert.fail('expected a ConfigError');
}

describe('config', () => {
  it('loads the embedded default: 0.0.0.0:4000, data in ./data beside it, kolla rules', () => {
    const cfg = loadConfig(DEFAULT_CONFIG_FILE, {});
    assert.equal(cfg.listen, '0.0.0.0:4000');
    assert.equal(cfg.dataDir, join(DEFAULT_CONFIG_FILE, '..', 'data'));
    assert.deepEqual(cfg.rewrite.map((r) => r.match), ['kollaglue/*', 'kolla/*', 'openstack.kolla/*']);
    assert.equal(cfg.rewrite[0]?.local, 'lokolla/*');
  });

  it('fills defaults for every section', () => {
    const cfg = parseConfig({}, FILE, {});
    assert.equal(cfg.listen, '0.0.0.0:4000');
    assert.equal(cfg.cache.manifestTtlSeconds, 300);
    assert.equal(cfg.transfer.minChunkBytes, 4 * 1024 * 1024);
    assert.equal(cfg.log.level, 'info');
    assert.deepEqual(cfg.upstreams, {});
  });

  const rejections: Array<[string, unknown, RegExp]> = [
    ['an unknown top-level key', { listn: '0.0.0.0:4000' }, /\/etc\/ferry\/mirror\.json: unknown key listn/],
    ['an unknown nested key, with its path', { upstreams: { hub: { url: 'https://r.example', pasword: 'x' } } }, /unknown key upstreams\.hub\.pasword/],
    ['a wrong type, saying what was expected', { cache: { manifestTtlSeconds: 'soon' } }, /cache\.manifestTtlSeconds: .*expected number/i],
    ['a malformed listen address', { listen: '4000' }, /listen: host:port/],
    ['an upstream URL that is not http(s)', { upstreams: { hub: { url: 'ftp://r.example' } } }, /upstreams\.hub\.url/],
    ['an upstream name that cannot name a repository', { upstreams: { Hub: { url: 'https://r.example' } } }, /upstreams\.Hub/],
    ['a defaultUpstream that is not configured', { defaultUpstream: 'hub' }, /defaultUpstream: "hub" is not a key of upstreams/],
    ['a rule naming an unknown upstream', { rewrite: [{ match: 'a/*', upstream: 'nope' }] }, /rewrite\.0\.upstream: "nope" is not a key of upstreams/],
    ['a rule with neither local nor upstream', { rewrite: [{ match: 'a/*' }] }, /rewrite\.0: a rule needs local, upstream or both/],
    ['a relay allow entry that is not configured', { relay: { tokens: ['0123456789abcdef0123'], allow: ['hub'] } }, /relay\.allow: "hub"/],
    ['minConnections above maxConnections', { transfer: { minConnections: 9, maxConnections: 4 } }, /transfer\.minConnections/],
    ['an upstream with neither url nor relays', { upstreams: { r: { kind: 'relay' } } }, /upstreams\.r\.url: required \(or list relays\)/],
    ['an upstream with both url and relays', { upstreams: { r: { kind: 'relay', url: 'https://a.example', relays: [{ url: 'https://b.example' }] } } }, /upstreams\.r\.url: leave out when relays are listed/],
    ['relays on an upstream not of kind relay', { upstreams: { r: { relays: [{ url: 'https://b.example' }] } } }, /upstreams\.r\.kind: must be "relay"/],
    ['a relay listed twice', { upstreams: { r: { kind: 'relay', relays: [{ url: 'https://b.example' }, { url: 'https://b.example/' }] } } }, /upstreams\.r\.relays\.1\.url: .* listed twice/],
    ['an unknown key of a relay entry', { upstreams: { r: { kind: 'relay', relays: [{ url: 'https://b.example', tokn: 'x' }] } } }, /unknown key upstreams\.r\.relays\.0\.tokn/],
    ['a relay entry without url', { upstreams: { r: { kind: 'relay', relays: [{ token: 'x' }] } } }, /upstreams\.r\.relays\.0\.url/],
  ];
  // Secrets are read when the client is built (resolveSecrets), not at load: still one message naming file and key path.
  const secretRejections: Array<[string, unknown, RegExp]> = [
    ['a relay entry whose tokenEnv is not set', { upstreams: { r: { kind: 'relay', relays: [{ url: 'https://b.example' }, { url: 'https://c.example', tokenEnv: 'C_TOKEN' }] } } }, /upstreams\.r\.relays\.1\.tokenEnv: environment variable C_TOKEN is not set/],
    ['a relay entry whose tokenFile cannot be read', { upstreams: { r: { kind: 'relay', relays: [{ url: 'https://b.example', tokenFile: 'nope.token' }] } } }, /upstreams\.r\.relays\.0\.tokenFile: cannot read \/etc\/ferry\/nope\.token \(ENOENT\)/],
  ];
  for (const [what, raw, message] of secretRejections) {
    it(`rejects ${what} when the client is built, naming the file and the key path`, () => {
      const cfg = parseConfig(raw, FILE, {});
      assert.throws(() => resolveSecrets(FILE, 'r', cfg.upstreams.r!, {}), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${FILE}: `) && message.test(e.message));
    });
  }
  for (const [what, raw, message] of rejections) {
    it(`rejects ${what}, naming the file and the key path`, () => {
      const msg = configError(raw);
      assert.ok(msg.startsWith(`${FILE}: `), msg);
      assert.match(msg, message);
    });
  }

  it('accepts transfer.fillDeadlineSeconds as transfer.deadlineSeconds, with one warning naming the file and the new key', () => {
    const warnings: string[] = [];
    const cfg = parseConfig({ transfer: { fillDeadlineSeconds: 60 } }, FILE, {}, (line) => warnings.push(line));
    assert.equal(cfg.transfer.deadlineSeconds, 60);
    assert.deepEqual(warnings, [`${FILE}: transfer.fillDeadlineSeconds is deprecated, rename it to transfer.deadlineSeconds`]);
    assert.match(configError({ transfer: { fillDeadlineSeconds: 60, deadlineSeconds: 30 } }), /transfer\.fillDeadlineSeconds: renamed to transfer\.deadlineSeconds, which is also set/);
    const quiet: string[] = [];
    assert.equal(parseConfig({ transfer: { deadlineSeconds: 90 } }, FILE, {}, (line) => quiet.push(line)).transfer.deadlineSeconds, 90);
    assert.deepEqual(quiet, []);
  });

  it('takes FERRY_LISTEN and FERRY_DATA_DIR over the file', () => {
    const cfg = parseConfig({ listen: '0.0.0.0:4000', dataDir: './data' }, FILE, { FERRY_LISTEN: '127.0.0.1:5000', FERRY_DATA_DIR: '/srv/ferry' });
    assert.equal(cfg.listen, '127.0.0.1:5000');
    assert.equal(cfg.dataDir, '/srv/ferry');
  });

  it('rejects a malformed FERRY_LISTEN', () => {
    assert.match(configError({}, { FERRY_LISTEN: 'nowhere' }), /FERRY_LISTEN: host:port/);
  });

  it('resolves relative paths against the config file', () => {
    const cfg = parseConfig({ dataDir: 'store', tls: { cert: 'c.pem', key: 'k.pem' }, upstreams: { r: { url: 'https://r.example', caFile: 'ca.pem' } } }, FILE, {});
    assert.equal(cfg.dataDir, '/etc/ferry/store');
    assert.deepEqual(cfg.tls, { cert: '/etc/ferry/c.pem', key: '/etc/ferry/k.pem' });
    assert.equal(cfg.upstreams.r?.caFile, '/etc/ferry/ca.pem');
  });

  it('reads credentials from the environment when a client is built, and names a variable that is not set', () => {
    const raw = { upstreams: { quay: { url: 'https://quay.io', username: 'bot', passwordEnv: 'QUAY_PASSWORD' }, relay: { url: 'https://relay.example', kind: 'relay', tokenEnv: 'RELAY_TOKEN' } } };
    // Loading needs no secret: import, export and gc never contact an upstream.
    const cfg = parseConfig(raw, FILE, {});
    assert.equal(cfg.upstreams.quay?.password, undefined);
    assert.equal(resolveSecrets(FILE, 'quay', cfg.upstreams.quay!, { QUAY_PASSWORD: 's3cret' }).password, 's3cret');
    assert.equal(resolveSecrets(FILE, 'relay', cfg.upstreams.relay!, { RELAY_TOKEN: 'tok' }).token, 'tok');
    assert.throws(() => resolveSecrets(FILE, 'quay', cfg.upstreams.quay!, {}),
      (e: unknown) => e instanceof ConfigError && /^\/etc\/ferry\/mirror\.json: upstreams\.quay\.passwordEnv: environment variable QUAY_PASSWORD is not set/.test(e.message));
    assert.throws(() => createUpstreams(cfg, silentLogger, { QUAY_PASSWORD: 's3cret' }), /upstreams\.relay\.tokenEnv: environment variable RELAY_TOKEN is not set/);
    assert.deepEqual(missingSecrets(cfg.upstreams, { QUAY_PASSWORD: 's3cret' }), ['upstreams.relay.tokenEnv: RELAY_TOKEN']);
  });

  it('suggests the key meant for a mistyped one, at any depth', () => {
    assert.match(configError({ listn: '0.0.0.0:4000' }), /unknown key listn \(did you mean listen\?\)/);
    assert.match(configError({ upstreams: { hub: { url: 'https://r.example', pasword: 'x' } } }), /unknown key upstreams\.hub\.pasword \(did you mean password\?\)/);
    assert.match(configError({ rewrite: [{ match: 'a/*', local: 'b/*', upstreamname: 'c/*' }] }), /unknown key rewrite\.0\.upstreamname \(did you mean upstreamName\?\)/);
    assert.match(configError({ cache: { colour: 'red' } }), /unknown key cache\.colour$/);
  });

  describe('files', () => {
    let dir: string;
    before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-config-')); });
    after(async () => { await rm(dir, { recursive: true, force: true }); });

    it('names a file that is not JSON', async () => {
      const file = join(dir, 'bad.json');
      await writeFile(file, '{ "listen": ');
      assert.throws(() => loadConfig(file, {}), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${file}: not valid JSON`));
    });

    it('reads the several-relays example of the README: one token each, from env and from a file', async () => {
      const readme = await readFile(join(DEFAULT_CONFIG_FILE, '..', 'README.md'), 'utf8');
      const section = readme.slice(readme.indexOf('### Several relays for one upstream'));
      const example = /```json\n([\s\S]*?)```/.exec(section)?.[1];
      assert.ok(example, 'README has a JSON example under "Several relays for one upstream"');
      const file = join(dir, 'mirror.json');
      await writeFile(join(dir, 'relay-b.token'), '# relay b, rotated 2026-11\n  token-of-relay-b-0123456789  \n');
      const cfg = parseConfig(JSON.parse(example) as unknown, file, {});
      assert.ok(cfg.upstreams.relay);
      const up = resolveSecrets(file, 'relay', cfg.upstreams.relay, { FERRY_RELAY_A_TOKEN: 'token-of-relay-a-0123456789' });
      assert.equal(up.url, 'https://relay-a.example.com:5443', 'the first relay names the upstream');
      const relays = relayEndpoints(up);
      assert.deepEqual(relays.map((r) => [r.url, r.token, r.caFile, r.kind, r.connections]), [
        ['https://relay-a.example.com:5443', 'token-of-relay-a-0123456789', undefined, 'relay', 40],
        ['https://relay-b.example.net:5443', 'token-of-relay-b-0123456789', join(dir, 'relay-b-ca.crt'), 'relay', 40],
      ]);
      assert.equal(cfg.defaultUpstream, 'relay');
    });

    it('keeps a single-relay upstream as it was: one relay, its url and token', () => {
      const cfg = parseConfig({ upstreams: { relay: { url: 'https://relay.example.com:5443', kind: 'relay', token: 'x'.repeat(20) } } }, FILE, {});
      const relays = relayEndpoints(cfg.upstreams.relay as NonNullable<typeof cfg.upstreams.relay>);
      assert.deepEqual(relays.map((r) => [r.url, r.token]), [['https://relay.example.com:5443', 'x'.repeat(20)]]);
    });

    it('reports a JSON syntax error by line:column, as an editor counts', async () => {
      const file = join(dir, 'comma.json');
      await writeFile(file, '{\n  "listen": "0.0.0.0:4000"\n  "dataDir": "/srv"\n}\n');
      assert.throws(() => loadConfig(file, {}), (e: unknown) => e instanceof ConfigError && e.message === `${file}: not valid JSON: line 3:3: Expected ',' or '}' after property value`);
      await writeFile(file, '{\n  "listen": tru\n}');
      assert.throws(() => loadConfig(file, {}), (e: unknown) => e instanceof ConfigError && /not valid JSON: line 2:13: /.test(e.message));
      await writeFile(file, '{ "listen": ');
      assert.throws(() => loadConfig(file, {}), (e: unknown) => e instanceof ConfigError && e.message.endsWith('not valid JSON: line 1:13: unexpected end of file'));
    });

    it('names a file that cannot be read', () => {
      const file = join(dir, 'missing.json');
      assert.throws(() => loadConfig(file, {}), (e: unknown) => e instanceof ConfigError && e.message === `${file}: cannot read: ENOENT`);
    });
  });

  describe('JSON Schema for editors', () => {
    it('is generated from the same schema as the committed registry.schema.json', async () => {
      const committed = JSON.parse(await readFile(join(DEFAULT_CONFIG_FILE, '..', 'registry.schema.json'), 'utf8')) as unknown;
      assert.deepEqual(committed, JSON.parse(JSON.stringify(configJsonSchema())), 'run npm run schema');
    });

    it('forbids unknown keys and documents the keys', () => {
      const schema = configJsonSchema() as { additionalProperties?: boolean; properties: Record<string, { description?: string }> };
      assert.equal(schema.additionalProperties, false);
      assert.match(schema.properties.listen?.description ?? '', /FERRY_LISTEN/);
    });
  });
});
