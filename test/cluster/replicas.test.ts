/** lib/cluster/replicas.ts and link-share.ts: liveness from heartbeats on RGW, the link's cap shared by the replicas busy on it. */
import assert from 'node:assert/strict';
import { SharedLinkBudget, SharedLinks, type LinkHeartbeat } from '../../lib/cluster/link-share.ts';
import { Replicas } from '../../lib/cluster/replicas.ts';
import { freePort, waitFor } from '../helpers/processes.ts';
import type { ClusterObjects } from '../../lib/cluster/objects.ts';
import { useRgw } from '../helpers/ceph.ts';
import { accessOf, clusterObjects, type S3Access } from './cluster-bucket.ts';

interface Member {
  links: SharedLinks;
  replicas: Replicas<LinkHeartbeat>;
  busy: Set<string>;
}

describe('replicas and the shared link budget (lib/cluster/replicas.ts, link-share.ts)', function () {
  this.timeout(30_000);
  const rgw = useRgw();
  let access: S3Access;
  let objects: ClusterObjects;
  const members: Member[] = [];

  before(async () => {
    access = accessOf(rgw(), await rgw().createBucket());
    objects = clusterObjects(access);
  });
  after(async () => {
    await Promise.all(members.map((m) => m.replicas.stop({ leave: false })));
  });

  /** A replica whose busy links the test sets by hand. */
  function member(id: string): Member {
    const links = new SharedLinks();
    const busy = new Set<string>();
    const replicas = new Replicas<LinkHeartbeat>(objects, { id, intervalMs: 150, ttlMs: 600, state: () => ({ busyLinks: [...busy] }) });
    links.attach(replicas);
    const m = { links, replicas, busy };
    members.push(m);
    return m;
  }

  const ids = (m: Member): string[] => m.replicas.live().map((r) => r.id);

  it('sees the live replicas, drops one that died within its ttl and one that left at once, and splits the cap among those busy on the link', async () => {
    const [a, b, c] = [member('a'), member('b'), member('c')];
    await Promise.all([a, b, c].map((m) => m.replicas.start()));
    await waitFor(() => [a, b, c].every((m) => ids(m).join() === 'a,b,c'), 5000, 'every replica sees all three');
    assert.equal(a.links.ceiling('docker.io', 12), 12, 'nobody else busy: all of the cap');

    b.busy.add('docker.io');
    c.busy.add('docker.io');
    c.busy.add('quay.io');
    await waitFor(() => a.links.ceiling('docker.io', 12) === 4 && b.links.ceiling('docker.io', 12) === 6, 5000, 'a sees b and c busy, b sees c');
    assert.equal(a.links.ceiling('quay.io', 12), 6);
    assert.equal(a.links.ceiling('ghcr.io', 12), 12);
    assert.equal(a.links.ceiling('docker.io', 2), 1, 'never below one connection');

    // c dies: it stops beating without a word.
    const diedAt = performance.now();
    await c.replicas.stop({ leave: false });
    await waitFor(() => ids(a).join() === 'a,b' && ids(b).join() === 'a,b', 5000, 'c dropped');
    const droppedMs = performance.now() - diedAt;
    console.log(`      a dead replica dropped after ${Math.round(droppedMs)} ms (heartbeat 150 ms, ttl 600 ms)`);
    // ttl after the last heartbeat a and b saw, plus a beat or two of theirs on a loaded machine.
    assert.ok(droppedMs < 600 + 1500, `${droppedMs} ms`);
    assert.equal(a.links.ceiling('docker.io', 12), 6);

    // b leaves properly: its heartbeat is removed, a sees it gone on its next beat.
    await b.replicas.stop();
    await a.replicas.beat();
    assert.deepEqual(ids(a), ['a']);
    assert.equal(a.links.ceiling('docker.io', 12), 12);
  });

  it('holds a replica\'s open connections to its ceiling while its own budget would allow more', async () => {
    let ceiling = 3;
    const budget = new SharedLinkBudget(
      { minConnections: 1, maxConnections: 16, adaptIntervalMs: 50, learned: { connections: 16, slowStart: false, rate: 1 } },
      () => ceiling,
    );
    const share = budget.share();
    const ctl = new AbortController();
    const granted: Array<() => void> = [];
    for (let i = 0; i < 10; i++) void share.acquire(ctl.signal).then((release) => granted.push(release), () => {});
    await new Promise((r) => setImmediate(r));
    assert.equal(granted.length, 3);
    assert.equal(budget.activeConnections, 3);
    assert.equal(budget.busy, true);
    ceiling = 7; // another replica went idle
    await waitFor(() => granted.length === 7, 2000, 'the budget grows to the new ceiling');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(granted.length, 7);
    ctl.abort();
    for (const release of granted) release();
    share.close();
    assert.equal(budget.busy, false);
  });

  it('starts while the store is down, reporting the failed heartbeat instead of failing the replica\'s start', async () => {
    const down = clusterObjects({ ...access, endpoint: `http://127.0.0.1:${await freePort()}` });
    const errors: unknown[] = [];
    const lonely = new Replicas<LinkHeartbeat>(down, { id: 'lonely', intervalMs: 10_000, state: () => ({ busyLinks: [] }), onError: (e) => errors.push(e) });
    await lonely.start();
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /STORAGE_UNAVAILABLE|object store/);
    assert.deepEqual(lonely.live().map((r) => r.id), ['lonely']);
    await lonely.stop({ leave: false });
  });
});
