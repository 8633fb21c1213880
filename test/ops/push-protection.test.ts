/**
 * Push protection: an htpasswd (bcrypt, as `htpasswd -B` writes it) guards writes; pulls stay
 * open unless protectPull; /v2/ challenges (Bearer, the mirror's own token endpoint) so `docker
 * login` works and anonymous docker pulls still do. Checked over HTTP, with the Docker Python
 * SDK's login, and with a private dockerd pushing and pulling.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImage, type BuiltImage } from '../helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../helpers/dockerd.ts';
import { run, runChecked } from '../helpers/processes.ts';
import { pushImage } from '../helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';
import { Teardown, dockerPull } from '../e2e/pull-through-fixture.ts';
import { parseHtpasswd } from '../../server/auth/htpasswd.ts';

const USER = 'pusher';
const PASSWORD = 'correct horse battery';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function errorCode(res: Response): Promise<string | undefined> {
  return ((await res.json()) as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
}

describe('push protection (htpasswd users, Docker token flow)', function () {
  this.timeout(120_000);
  const teardown = new Teardown();
  let dir: string;
  let htpasswdFile: string;
  let ferry: TestMirror;
  let locked: TestMirror;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-auth-'));
    teardown.add(dir, (d) => rm(d, { recursive: true, force: true }));
    htpasswdFile = join(dir, 'htpasswd');
    // The real tool, so its "$2y$" hashes are what we parse.
    await runChecked('htpasswd', ['-Bbc', htpasswdFile, USER, PASSWORD]);
    ferry = teardown.add(await startTestMirror({ auth: { htpasswd: htpasswdFile, realm: 'ferry test' } }), (m) => m.stop());
    locked = teardown.add(await startTestMirror({ auth: { htpasswd: htpasswdFile, protectPull: true } }), (m) => m.stop());
  });
  after(() => teardown.run());

  it('parses bcrypt lines and refuses other schemes naming the line', () => {
    assert.equal(parseHtpasswd('# c\nbob:$2y$05$w8VQo2TI9gIdoNkP96U0ke3AO7SWgD3NOlsBTFYePoO91pYma4Jsa\n').size, 1);
    assert.throws(() => parseHtpasswd('bob:{SHA}abc=\n', 'f'), /f:1: not a "user:bcrypt-hash" line/);
  });

  it('answers /v2/ without credentials with 401, a Bearer challenge naming its token endpoint, and UNAUTHORIZED', async () => {
    const res = await fetch(`${ferry.url}/v2/`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${ferry.url}/auth/token",service="ferry test"`);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.equal(await errorCode(res), 'UNAUTHORIZED');
  });

  it('answers /v2/ with 200 for valid credentials and 401 for a wrong password', async () => {
    assert.equal((await fetch(`${ferry.url}/v2/`, { headers: { authorization: basic(USER, PASSWORD) } })).status, 200);
    const wrong = await fetch(`${ferry.url}/v2/`, { headers: { authorization: basic(USER, 'nope') } });
    assert.equal(wrong.status, 401);
    assert.equal(await errorCode(wrong), 'UNAUTHORIZED');
  });

  it('refuses every write method without credentials and accepts an upload start with them', async () => {
    for (const [method, path] of [['POST', 'lokolla/x/blobs/uploads/'], ['PUT', 'lokolla/x/manifests/v1'], ['PATCH', 'lokolla/x/blobs/uploads/u'], ['DELETE', 'lokolla/x/manifests/v1']] as const) {
      const res = await fetch(`${ferry.url}/v2/${path}`, { method });
      assert.equal(res.status, 401, `${method} ${path}`);
      assert.equal(await errorCode(res), 'UNAUTHORIZED');
    }
    const ok = await fetch(`${ferry.url}/v2/lokolla/x/blobs/uploads/`, { method: 'POST', headers: { authorization: basic(USER, PASSWORD) } });
    assert.equal(ok.status, 202);
  });

  it('issues anonymous tokens for pulls only, user tokens for push, and refuses a wrong password', async () => {
    const scope = 'repository:lokolla/x:pull,push';
    const anon = await (await fetch(`${ferry.url}/auth/token?service=ferry&scope=${scope}`)).json() as { token: string };
    const upload = (token: string): Promise<Response> => fetch(`${ferry.url}/v2/lokolla/x/blobs/uploads/`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    const refused = await upload(anon.token);
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /scope="repository:lokolla\/x:pull,push",error="insufficient_scope"/);
    assert.equal((await fetch(`${ferry.url}/v2/lokolla/x/tags/list`, { headers: { authorization: `Bearer ${anon.token}` } })).status, 404);
    const user = await (await fetch(`${ferry.url}/auth/token?service=ferry&scope=${scope}`, { headers: { authorization: basic(USER, PASSWORD) } })).json() as { token: string };
    assert.equal((await upload(user.token)).status, 202);
    assert.equal((await upload(`${user.token}x`)).status, 401);
    assert.equal((await fetch(`${ferry.url}/auth/token?scope=${scope}`, { headers: { authorization: basic(USER, 'nope') } })).status, 401);
    assert.equal((await fetch(`${locked.url}/auth/token?scope=repository:a:pull`)).status, 401);
  });

  it('leaves pulls open (a missing manifest is MANIFEST_UNKNOWN, not 401) unless protectPull', async () => {
    const open = await fetch(`${ferry.url}/v2/lokolla/none/manifests/v1`);
    assert.equal(open.status, 404);
    assert.equal(await errorCode(open), 'MANIFEST_UNKNOWN');
    const closed = await fetch(`${locked.url}/v2/lokolla/none/manifests/v1`);
    assert.equal(closed.status, 401);
    assert.match(closed.headers.get('www-authenticate') ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token",service="ferry",scope="repository:lokolla\/none:pull"$/);
    const withCreds = await fetch(`${locked.url}/v2/lokolla/none/manifests/v1`, { headers: { authorization: basic(USER, PASSWORD) } });
    assert.equal(withCreds.status, 404);
  });

  describe('with Docker', () => {
    let dockerd: Dockerd;
    let image: BuiltImage;

    before(async () => {
      image = await buildImage({ layers: [100_000], seed: 'ops-auth', runnable: { message: 'pushed with a login' } });
      dockerd = teardown.add(await startDockerd({ name: 'dockerd-auth' }), (d) => d.stop());
    });

    it("logs in with the Docker Python SDK's APIClient.login, and fails with a wrong password", async () => {
      const script = `
import docker, json, sys
c = docker.APIClient(base_url='unix://' + sys.argv[1], version='auto', timeout=30)
out = {}
try:
    out['ok'] = c.login(username=sys.argv[3], password=sys.argv[4], registry=sys.argv[2], reauth=True)
except docker.errors.APIError as e:
    out['error'] = str(e)
print(json.dumps(out))
`;
      const login = async (password: string): Promise<{ ok?: { Status?: string }; error?: string }> => {
        const res = await run('python3', ['-c', script, dockerd.socketPath, ferry.host, USER, password], { timeoutMs: 60_000 });
        return JSON.parse(res.stdout.trim().split('\n').pop() ?? '{}') as { ok?: { Status?: string }; error?: string };
      };
      assert.equal((await login(PASSWORD)).ok?.Status, 'Login Succeeded');
      const bad = await login('wrong');
      assert.equal(bad.ok, undefined);
      assert.match(bad.error ?? '', /unauthorized|401/i);
    });

    it('lets docker push after docker login, refuses it without, and pulls anonymously', async () => {
      await pushImage(image, ferry.host, 'lokolla/seed', 'v1', { destCreds: { username: USER, password: PASSWORD } });
      const ref = `${ferry.host}/lokolla/seed:v1`;
      assert.equal(await dockerPull(dockerd, ref), image.manifestDigest);
      const target = `${ferry.host}/lokolla/pushed:v1`;
      await dockerd.docker(['tag', ref, target]);
      const refused = await dockerd.dockerRaw(['push', target], { timeoutMs: 60_000 });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr + refused.stdout, /denied: requested access to the resource is denied/);
      await dockerd.docker(['login', '-u', USER, '--password-stdin', ferry.host], { input: PASSWORD, timeoutMs: 60_000 });
      const pushed = /digest: (sha256:[a-f0-9]{64})/.exec(await dockerd.docker(['push', target], { timeoutMs: 60_000 }))?.[1];
      assert.ok(pushed);
      await dockerd.docker(['logout', ferry.host]);
      await dockerd.docker(['rmi', target, ref]);
      assert.equal(await dockerPull(dockerd, target), pushed);
    });
  });
});
