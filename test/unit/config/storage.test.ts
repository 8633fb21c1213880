/** The config's storage section: fs by default, s3 with its settings; credentials from env or a file, never from the config. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from '../../../lib/config/load.ts';
import { resolveStorageCredentials } from '../../../lib/config/secrets.ts';
import { maskSecrets } from '../../../scripts/config-check.ts';

const FILE = '/etc/ferry/mirror.json';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  assert.fail('expected a ConfigError');
}

describe('config: storage', () => {
  it('is the data dir unless said otherwise, in the embedded default too (npm start unchanged)', () => {
    assert.deepEqual(parseConfig({}, FILE, {}).storage, { kind: 'fs' });
    assert.deepEqual(loadConfig(DEFAULT_CONFIG_FILE, {}).storage, { kind: 'fs' });
  });

  it('fills the s3 defaults: path-style, us-east-1, no prefix, a request timeout', () => {
    const cfg = parseConfig({ storage: { kind: 's3', endpoint: 'http://rgw.example:7480', bucket: 'ferry' } }, FILE, {});
    assert.deepEqual(cfg.storage, {
      kind: 's3', endpoint: 'http://rgw.example:7480', bucket: 'ferry', region: 'us-east-1', forcePathStyle: true,
      prefix: '', profile: 'default', requestTimeoutSeconds: 30, maxSockets: 256,
    });
  });

  it('resolves credentialsFile against the config file', () => {
    const cfg = parseConfig({ storage: { kind: 's3', bucket: 'ferry', credentialsFile: 's3.credentials' } }, FILE, {});
    assert.equal(cfg.storage.kind === 's3' && cfg.storage.credentialsFile, '/etc/ferry/s3.credentials');
  });

  const rejections: Array<[string, unknown, RegExp]> = [
    ['an unknown kind', { kind: 'nfs' }, /mirror\.json: storage\.kind: must be "fs" \(the data dir\) or "s3"/],
    ['s3 without a bucket', { kind: 's3' }, /storage\.bucket: .*expected string/],
    ['a bucket name S3 refuses', { kind: 's3', bucket: 'My_Bucket' }, /storage\.bucket: 3-63 lower-case/],
    ['an endpoint that is not http(s)', { kind: 's3', bucket: 'ferry', endpoint: 'ftp://rgw.example' }, /storage\.endpoint/],
    ['a prefix not ending in /', { kind: 's3', bucket: 'ferry', prefix: 'ferry' }, /storage\.prefix: empty, or path segments each ending in \//],
    ['keys in the config file (secrets stay out of it)', { kind: 's3', bucket: 'ferry', accessKeyId: 'AK' }, /unknown key storage\.accessKeyId/],
    ['a mistyped key, with the key meant', { kind: 's3', bucket: 'ferry', endpiont: 'http://x' }, /unknown key storage\.endpiont \(did you mean endpoint\?\)/],
    ['s3 settings without their kind', { bucket: 'ferry' }, /storage\.kind: must be "fs" \(the data dir\) or "s3"/],
    ['s3 settings with kind fs', { kind: 'fs', bucket: 'ferry' }, /unknown key storage\.bucket/],
  ];
  for (const [what, storage, expected] of rejections) {
    it(`rejects ${what}, naming the file and the key path`, () => {
      assert.match(configError(() => parseConfig({ storage }, FILE, {})), expected);
    });
  }

  describe('credentials', () => {
    let dir: string;
    before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-s3-credentials-')); });
    after(async () => { await rm(dir, { recursive: true, force: true }); });

    it('come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (AWS_SESSION_TOKEN optional)', () => {
      assert.deepEqual(resolveStorageCredentials(FILE, { profile: 'default' }, { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK' }),
        { accessKeyId: 'AK', secretAccessKey: 'SK' });
      assert.deepEqual(resolveStorageCredentials(FILE, { profile: 'default' }, { AWS_ACCESS_KEY_ID: 'AK', AWS_SECRET_ACCESS_KEY: 'SK', AWS_SESSION_TOKEN: 'T' }),
        { accessKeyId: 'AK', secretAccessKey: 'SK', sessionToken: 'T' });
    });

    it('name the variable that is not set, and the other way', () => {
      const msg = configError(() => resolveStorageCredentials(FILE, { profile: 'default' }, { AWS_ACCESS_KEY_ID: 'AK' }));
      assert.match(msg, /^\/etc\/ferry\/mirror\.json: storage: AWS_SECRET_ACCESS_KEY not set .*storage\.credentialsFile/);
      assert.doesNotMatch(msg, /AK/);
    });

    it('come from the profile of a shared credentials file', async () => {
      const file = join(dir, 'credentials');
      await writeFile(file, '# rgw user ferry\n[default]\naws_access_key_id = AK1\naws_secret_access_key = SK1\n\n[profile site-b]\naws_access_key_id=AK2\naws_secret_access_key=SK2\n');
      assert.deepEqual(resolveStorageCredentials(FILE, { credentialsFile: file, profile: 'default' }, { AWS_ACCESS_KEY_ID: 'ENV' }),
        { accessKeyId: 'AK1', secretAccessKey: 'SK1' });
      assert.deepEqual(resolveStorageCredentials(FILE, { credentialsFile: file, profile: 'site-b' }, {}), { accessKeyId: 'AK2', secretAccessKey: 'SK2' });
      assert.match(configError(() => resolveStorageCredentials(FILE, { credentialsFile: file, profile: 'nope' }, {})),
        /storage\.credentialsFile: .* has no \[nope\] section \(storage\.profile\)/);
    });

    it('name a credentials file that cannot be read or lacks a key', async () => {
      assert.match(configError(() => resolveStorageCredentials(FILE, { credentialsFile: join(dir, 'absent'), profile: 'default' }, {})),
        /storage\.credentialsFile: cannot read .*absent \(ENOENT\)/);
      const half = join(dir, 'half');
      await writeFile(half, '[default]\naws_access_key_id = AK\n');
      const msg = configError(() => resolveStorageCredentials(FILE, { credentialsFile: half, profile: 'default' }, {}));
      assert.match(msg, /needs aws_access_key_id and aws_secret_access_key/);
      assert.doesNotMatch(msg, /AK/);
    });
  });

  it('config check prints the storage section as it is: it holds no secret to mask', () => {
    const cfg = parseConfig({ storage: { kind: 's3', bucket: 'ferry', endpoint: 'http://rgw.example:7480' } }, FILE, {});
    assert.deepEqual((maskSecrets(cfg) as { storage: unknown }).storage, cfg.storage);
  });
});
