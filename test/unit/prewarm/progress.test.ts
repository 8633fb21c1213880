/** Pre-warm progress: per-image figures, the bytes still to come, a smoothed ETA bounded by the link. */
import assert from 'node:assert/strict';
import { PrewarmProgress, formatEta, imageLabel, MIB } from '../../../lib/prewarm/progress-model.ts';
import { describeOverall, formatReport } from '../../../lib/prewarm/progress.ts';

describe('pre-warm progress', () => {
  it('names a bar by the image (name:tag), not a digest', () => {
    assert.equal(imageLabel('quay.io/openstack.kolla/nova-api:2025.1-rocky-9'), 'nova-api:2025.1-rocky-9');
    assert.equal(imageLabel('kolla/centos-binary-keystone:2.0.2'), 'centos-binary-keystone:2.0.2');
    assert.equal(imageLabel(`lib/x@sha256:${'ab'.repeat(32)}`), 'x@abababababab');
  });

  it('counts bytes to come from every planned image, a shared layer once, and extrapolates images not read yet', () => {
    const p = new PrewarmProgress(['a:1', 'b:1', 'c:1']);
    p.planned('a:1', [{ digest: 'base', size: 100 * MIB }, { digest: 'a', size: 20 * MIB }]);
    p.planned('b:1', [{ digest: 'base', size: 100 * MIB }, { digest: 'b', size: 40 * MIB }]);
    let o = p.overall();
    assert.equal(o.toCome, 160 * MIB + 130 * MIB, 'c:1 counts as the average read image (120 and 140 MiB)');
    assert.equal(o.estimated, true);
    p.planned('c:1', [{ digest: 'c', size: 10 * MIB }]);
    p.blobProgress('base', 50 * MIB, 100 * MIB);
    o = p.overall();
    assert.equal(o.done, 50 * MIB);
    assert.equal(o.toCome, 120 * MIB);
    assert.equal(o.total, 170 * MIB);
    assert.equal(o.estimated, false);
    assert.deepEqual({ done: p.image('b:1').done, size: p.image('b:1').size }, { done: 50 * MIB, size: 140 * MIB });
  });

  it('drops a failed image\'s blobs from what is to come, but not a layer another image still needs', () => {
    const p = new PrewarmProgress(['a:1', 'b:1']);
    p.planned('a:1', [{ digest: 'base', size: 100 }, { digest: 'a', size: 20 }]);
    p.planned('b:1', [{ digest: 'base', size: 100 }, { digest: 'b', size: 40 }]);
    p.finished('a:1', false);
    assert.equal(p.overall().toCome, 140);
    assert.equal(p.overall().imagesFailed, 1);
  });

  it('gives a steady ETA: smoothed over seconds, so one fast second does not make it jump', () => {
    const p = new PrewarmProgress(['a:1']);
    p.planned('a:1', [{ digest: 'a', size: 300 * MIB }]);
    let t = 0;
    let done = 0;
    p.tick(t);
    for (let s = 0; s < 30; s++) {
      done += 4 * MIB;
      p.blobProgress('a', done, 300 * MIB);
      p.tick((t += 1000));
    }
    const steady = p.overall().eta!;
    assert.ok(Math.abs(steady - (300 - 120) / 4) < 2, `ETA ${steady} s at 4 MiB/s for 180 MiB`);
    // A burst of 60 MiB in one second (blobs the mirror held) moves it, but not to "1s".
    done += 60 * MIB;
    p.blobProgress('a', done, 300 * MIB);
    p.tick((t += 1000));
    const after = p.overall().eta!;
    assert.ok(after > 15, `ETA ${after} s after one fast second`);
  });

  it('never gives an ETA shorter than the link can carry what is left', () => {
    const p = new PrewarmProgress(['a:1']);
    p.planned('a:1', [{ digest: 'a', size: 400 * MIB }]);
    p.tick(0);
    // Blobs the mirror holds arrive at LAN speed: 100 MiB/s, while the link carries 4 MiB/s.
    p.blobProgress('a', 100 * MIB, 400 * MIB);
    p.tick(1000);
    assert.ok(p.overall().eta! < 5, 'from the rate alone');
    p.linkRate(4 * MIB);
    assert.equal(Math.round(p.overall().eta!), 75, '300 MiB over the link\'s 4 MiB/s');
  });

  it('uses one unit system: MiB and MiB/s, in the overall line and the report', () => {
    const p = new PrewarmProgress(['a:1']);
    p.planned('a:1', [{ digest: 'a', size: 10 * MIB }]);
    p.tick(0);
    p.blobProgress('a', 2 * MIB, 10 * MIB);
    p.tick(1000);
    assert.equal(describeOverall(p.overall()), '0/1 images, 2.0/10.0 MiB, 2.0 MiB/s, ETA 4s');
    const report = formatReport({ images: [{ ref: 'a:1', ok: true, blobs: 1, bytes: 10 * MIB, durationMs: 5000 }], bytes: 10 * MIB, durationMs: 5000, goodput: 2 * MIB });
    assert.match(report, /10\.0 MiB in 5\.0 s, goodput 2\.0 MiB\/s$/);
    assert.doesNotMatch(report, /MB\/s/);
  });

  it('shows an image\'s rate from its first tick after it started', () => {
    const p = new PrewarmProgress(['a:1']);
    p.planned('a:1', [{ digest: 'a', size: 10 * MIB }]);
    p.started('a:1', 500);
    p.blobProgress('a', 3 * MIB, 10 * MIB);
    p.tick(1500);
    assert.equal(p.image('a:1').rate, 3 * MIB);
  });

  it('formats an ETA in h/m/s, and -- while unknown', () => {
    assert.equal(formatEta(undefined), '--');
    assert.equal(formatEta(42.1), '43s');
    assert.equal(formatEta(245), '4m05s');
    assert.equal(formatEta(3720), '1h02m');
  });
});
