/** Times `docker pull` of one image from each registry on a shared private dockerd. */
import { startDockerd, type Dockerd } from '../../test/helpers/dockerd.ts';
import { pinTree } from './pinning.ts';

export interface PullTimes {
  /** Seconds per pull, by registry label, in run order. */
  seconds: Record<string, number[]>;
}

export async function startBenchDockerd(cpus: string | undefined): Promise<Dockerd> {
  const d = await startDockerd({ name: 'bench-dockerd' });
  // dockerd (and its containerd) unpack layers: keep that work off the servers' core.
  await pinTree(d.pid, cpus);
  return d;
}

/**
 * Pulls each image `rounds` times, alternating which registry goes first, removing the image
 * after every pull so each one downloads every layer again. The registries share the layers'
 * digests, so the image must be gone before the other registry's pull too.
 */
export async function timePulls(d: Dockerd, images: Record<string, string>, rounds: number): Promise<PullTimes> {
  const seconds: Record<string, number[]> = Object.fromEntries(Object.keys(images).map((k) => [k, []]));
  const labels = Object.keys(images);
  // A fresh dockerd's first pull is much slower (its own start-up work): one pull from each, uncounted.
  for (const label of labels) {
    await d.docker(['pull', '-q', images[label] as string], { timeoutMs: 300_000 });
    await d.docker(['rmi', '-f', images[label] as string]);
  }
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? labels : [...labels].reverse();
    for (const label of order) {
      const ref = images[label] as string;
      const started = process.hrtime.bigint();
      await d.docker(['pull', '-q', ref], { timeoutMs: 300_000 });
      seconds[label]?.push(Number(process.hrtime.bigint() - started) / 1e9);
      await d.docker(['rmi', '-f', ref]);
    }
  }
  return { seconds };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
