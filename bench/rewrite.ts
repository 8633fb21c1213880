/**
 * Rewrite bench: is a warm pull through a rewrite rule as fast as a pull of the local name?
 * One ferry (in-process) holds an image pushed as lokolla/x; docker pulls it as lokolla/x, as
 * kollaglue/x (rule kollaglue/* -> local lokolla/*), and as cached/x (rule cached/* -> upstream
 * kolla/* on a reference registry, cache warmed by one pull first). Prints medians and ratios;
 * not a test. Run: npx tsx bench/rewrite.ts   (BENCH_PULLS=5 rounds, BENCH_LAYER_MIB=16 x 3 layers)
 */
import { buildImage } from '../test/helpers/oci-image.ts';
import { startDockerd, type Dockerd } from '../test/helpers/dockerd.ts';
import { startReferenceRegistry, type ReferenceRegistry } from '../test/helpers/reference-registry.ts';
import { pushImage } from '../test/helpers/skopeo.ts';
import { startTestMirror, type TestMirror } from '../test/e2e/mirror-fixture.ts';
import { median, timePulls } from './lib/docker-pull.ts';
import { exitWithUsageIfAsked } from './lib/usage.ts';

exitWithUsageIfAsked(import.meta.url);

const MiB = 1024 * 1024;
const rounds = Number(process.env.BENCH_PULLS ?? 5);
const layerMiB = Number(process.env.BENCH_LAYER_MIB ?? 16);

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

async function main(): Promise<void> {
  let registry: ReferenceRegistry | undefined;
  let ferry: TestMirror | undefined;
  let dockerd: Dockerd | undefined;
  try {
    log(`building a 3-layer image of ${layerMiB} MiB layers (cached across runs)`);
    const image = await buildImage({ seed: 'ferry-bench/rewrite', layers: [layerMiB * MiB, layerMiB * MiB, layerMiB * MiB] });
    registry = await startReferenceRegistry({ name: 'bench-rewrite-upstream' });
    ferry = await startTestMirror({
      upstreams: { origin: { url: registry.url } },
      rewrite: [
        { match: 'kollaglue/*', local: 'lokolla/*' },
        { match: 'cached/*', upstream: 'origin', upstreamName: 'kolla/*' },
      ],
    });
    await pushImage(image, ferry.host, 'lokolla/x', 'zed', { timeoutMs: 300_000 });
    await pushImage(image, registry.host, 'kolla/x', 'zed', { timeoutMs: 300_000 });
    dockerd = await startDockerd({ name: 'bench-rewrite-dockerd' });
    const refs = {
      'lokolla/x (local name)': `${ferry.host}/lokolla/x:zed`,
      'kollaglue/x (rewrite to local)': `${ferry.host}/kollaglue/x:zed`,
      'cached/x (rewrite to warm cache)': `${ferry.host}/cached/x:zed`,
    };
    log('warming: one pull of each name (fills the pull-through cache, page cache, JIT)');
    await timePulls(dockerd, refs, 1);
    log(`timing ${rounds} rounds, order alternating, image removed after every pull`);
    const { seconds } = await timePulls(dockerd, refs, rounds);

    const base = median(seconds['lokolla/x (local name)'] ?? []);
    const width = Math.max(...Object.keys(refs).map((k) => k.length));
    const total = image.layers.reduce((n, l) => n + l.size, 0);
    console.log(`docker pull of one ${(total / MiB).toFixed(0)} MiB image (3 layers), median of ${rounds}:`);
    for (const [label, runs] of Object.entries(seconds)) {
      const m = median(runs);
      console.log(`  ${label.padEnd(width)}  ${m.toFixed(3)} s   x${(m / base).toFixed(3)} of local   runs: ${runs.map((s) => s.toFixed(3)).join(' ')}`);
    }
    const ratio = median(seconds['kollaglue/x (rewrite to local)'] ?? []) / base;
    console.log(`rewrite/local ratio: ${ratio.toFixed(3)} (${ratio <= 1.05 ? 'no slower' : 'slower'}, 5% noise allowed)`);
  } finally {
    await dockerd?.stop();
    await ferry?.stop();
    await registry?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
