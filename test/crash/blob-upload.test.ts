import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf } from '../../lib/oci/digest.ts';
import { LocalRegistry } from '../../lib/registry/local.ts';
import { openStore } from '../../lib/storage/store.ts';
import { waitFor } from '../helpers/processes.ts';
import { expectError, pseudoRandom, raw } from '../api/fixture.ts';
import { CRASH_HOST, expectAbsent, openRequest, startMirrorProcess, verifyBlobStore, writeInPieces, type MirrorProcess } from './mirror-process.ts';

const MiB = 1024 * 1024;

describe('crash: SIGKILL of the mirror during blob uploads', function () {
  this.timeout(120_000);
  const name = `${CRASH_HOST}/uploads`;
  let dir: string;
  let mirror: MirrorProcess | undefined;

  before(async () => { dir = await mkdtemp(join(tmpdir(), 'ferry-crash-upload-')); });
  after(async () => {
    await mirror?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows no partial blob after a kill mid-PATCH and mid-POST, and both pushes complete after a restart', async () => {
    const size = 24 * MiB;
    const content = pseudoRandom(size, 77);
    const digest = digestOf(content);
    const mono = pseudoRandom(8 * MiB, 78);
    const monoDigest = digestOf(mono);

    mirror = await startMirrorProcess(dir);
    const start = await mirror.api.post(`/v2/${name}/blobs/uploads/`);
    assert.equal(start.status, 202);
    const location = start.headers.location as string;
    const uuid = start.headers['docker-upload-uuid'] as string;
    const first = await mirror.api.patch(location).set('Content-Range', `0-${MiB - 1}`).set('Content-Type', 'application/octet-stream').send(content.subarray(0, MiB));
    assert.equal(first.status, 202);

    // A big chunk and a monolithic upload, both cut off by the kill.
    const chunk = openRequest(mirror.port, 'PATCH', location, { 'Content-Range': `${MiB}-${size - 1}`, 'Content-Length': String(size - MiB) });
    const post = openRequest(mirror.port, 'POST', `/v2/${name}/blobs/uploads/?digest=${monoDigest}`, { 'Content-Length': String(mono.length) });
    await writeInPieces(chunk.req, content.subarray(MiB, 9 * MiB));
    await writeInPieces(post.req, mono.subarray(0, 4 * MiB));
    const dataFile = join(dir, 'uploads', uuid, 'data');
    await waitFor(async () => (await stat(dataFile)).size >= 5 * MiB, 10_000, 'the chunk to reach the session file');
    await waitFor(async () => {
      const names = await readdir(join(dir, 'tmp'));
      const sizes = await Promise.all(names.map(async (n) => (await stat(join(dir, 'tmp', n))).size));
      return sizes.some((s) => s >= 2 * MiB);
    }, 10_000, 'the monolithic upload to reach its temp file');
    await mirror.kill9();
    assert.ok((await chunk.outcome) instanceof Error, 'the chunk got no answer');
    assert.ok((await post.outcome) instanceof Error, 'the monolithic upload got no answer');

    // On disk, before anything restarts: no partial blob, and every blob is named for its content.
    const held = await verifyBlobStore(dir);
    assert.ok(!held.includes(digest) && !held.includes(monoDigest), 'a partial upload became a blob');
    assert.ok((await readdir(join(dir, 'tmp'))).length >= 1, 'the cut monolithic upload left a temp file (outside blobs/)');
    const local = new LocalRegistry(await openStore(dir));
    await assert.rejects(local.getBlob(name, digest), { code: 'BLOB_UNKNOWN' });
    await assert.rejects(local.getBlob(name, monoDigest), { code: 'BLOB_UNKNOWN' });
    const offset = (await local.uploadStatus(name, uuid)).offset;
    assert.ok(offset >= 5 * MiB && offset <= 9 * MiB, `session holds ${offset} bytes`);

    mirror = await startMirrorProcess(dir);
    expectAbsent(await raw(mirror.port, 'GET', `/v2/${name}/blobs/${digest}`), 'BLOB_UNKNOWN');
    expectAbsent(await raw(mirror.port, 'GET', `/v2/${name}/blobs/${monoDigest}`), 'BLOB_UNKNOWN');

    // The session resumes from what GET reports.
    const status = await mirror.api.get(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, `0-${offset - 1}`);
    const rest = await mirror.api.patch(location).set('Content-Range', `${offset}-${size - 1}`).set('Content-Type', 'application/octet-stream').send(content.subarray(offset));
    assert.equal(rest.status, 202, rest.text);
    assert.equal(rest.headers.range, `0-${size - 1}`);
    const done = await mirror.api.put(`${location}?digest=${digest}`);
    assert.equal(done.status, 201, done.text);
    const got = await raw(mirror.port, 'GET', `/v2/${name}/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(content), 'the resumed blob is not byte-identical');

    // The monolithic push is simply done again.
    const again = await mirror.api.post(`/v2/${name}/blobs/uploads/?digest=${monoDigest}`).set('Content-Type', 'application/octet-stream').send(mono);
    assert.equal(again.status, 201, again.text);
    assert.ok((await raw(mirror.port, 'GET', `/v2/${name}/blobs/${monoDigest}`)).body.equals(mono));

    const after = await verifyBlobStore(dir);
    assert.ok(after.includes(digest) && after.includes(monoDigest));
    expectError(await raw(mirror.port, 'GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });
});
