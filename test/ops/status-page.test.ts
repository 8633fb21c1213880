/**
 * The status page as a person sees it in a real (headless) Chromium while a pull-through
 * transfer runs: the transfer row shows the digest, a percentage that grows, a rate; the cache
 * cards and the upstream table transfer in. Also /status.json and /metrics during the same transfer.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import type { TransferHandle } from '../../lib/mirror/transfers.ts';
import { startTestMirror, type TestMirror } from '../e2e/mirror-fixture.ts';
import { TEST_OUTPUT_DIR, waitFor } from '../helpers/processes.ts';
import { KiB, MiB, makeBlob, slowSource, type SlowSource } from './slow-transfer.ts';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('status page during a pull-through transfer', function () {
  this.timeout(60_000);
  let ferry: TestMirror;
  let browser: Browser;
  let source: SlowSource;
  let transfer: TransferHandle;
  const blob = makeBlob(6 * MiB);

  before(async () => {
    ferry = await startTestMirror({
      transfer: { minChunkBytes: 256 * KiB, maxChunkBytes: 256 * KiB, smallBlobBytes: 64 * KiB, minConnections: 4, maxConnections: 4 },
    });
    // 4 connections x 96 KiB/s: about 16 s for the whole blob, long enough to watch.
    source = slowSource(blob.data, 96 * KiB);
    transfer = ferry.mirror.transfers.ensure({ digest: blob.digest, size: blob.data.length, source, repository: 'hub/library/big', upstream: 'hub', label: 'big' });
    ferry.mirror.ops.health.record('hub', true);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    if (source) source.bytesPerSecond = 1e9;
    await transfer?.committed.catch(() => {});
    await ferry?.stop();
  });

  it('shows the live transfer with its digest, a growing percentage, a rate, an ETA and connections', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
    await page.goto(`${ferry.url}/`);
    const row = page.locator('#transfers tbody tr').filter({ has: page.locator('td.digest') });
    await row.first().waitFor({ timeout: 10_000 });
    assert.equal(await row.count(), 1);
    const digestCell = row.locator('td.digest');
    assert.equal(await digestCell.getAttribute('title'), blob.digest);
    assert.equal(await digestCell.textContent(), blob.digest.slice(0, 'sha256:'.length + 12));
    assert.equal(await row.locator('td.repo').textContent(), 'hub/library/big');

    const percent = async (): Promise<number> => Number(await row.locator('td.progress').getAttribute('data-percent'));
    await waitFor(async () => (await percent()) > 0, 10_000, 'a percentage above 0');
    const first = await percent();
    await waitFor(async () => (await percent()) > first, 10_000, 'the percentage to grow');
    const second = await percent();
    assert.ok(second > first && second < 100, `${first}% then ${second}%`);
    assert.match(await row.locator('td.progress .text').textContent() ?? '', /^\d+\.\d%$/);

    await waitFor(async () => /KiB\/s|MiB\/s/.test(await row.locator('td.rate').textContent() ?? ''), 10_000, 'a rate');
    assert.match(await row.locator('td.eta').textContent() ?? '', /^\d+ s$|^\d+ min \d\d s$/);
    assert.match(await row.locator('td.connections').textContent() ?? '', /^[1-4]$/);

    assert.match(await page.locator('#goodput').textContent() ?? '', /KiB\/s|MiB\/s/);
    assert.match(await page.locator('#live-text').textContent() ?? '', /^live$/);
    assert.match(await page.locator('#upstreams tbody').textContent() ?? '', /hub.*reachable/);
    assert.match(await page.locator('#store-sub').textContent() ?? '', /partial/);

    await mkdir(TEST_OUTPUT_DIR, { recursive: true });
    await page.screenshot({ path: join(TEST_OUTPUT_DIR, 'status-page.png'), fullPage: true });
    await page.close();
  });

  it('serves the same transfer in /status.json and counts its upstream bytes in /metrics', async () => {
    const status = await (await fetch(`${ferry.url}/status.json`)).json() as { transfers: Array<{ digest: string; bytesDone: number; size: number }> };
    const t = status.transfers.find((x) => x.digest === blob.digest);
    assert.ok(t, JSON.stringify(status.transfers));
    assert.equal(t.size, blob.data.length);
    assert.ok(t.bytesDone > 0 && t.bytesDone < t.size);
    const metrics = await (await fetch(`${ferry.url}/metrics`)).text();
    assert.match(metrics, /^ferry_transfers_active 1$/m);
    const up = Number(/^ferry_upstream_bytes_total\{upstream="hub"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(up > 0 && up <= source.sent, `${up} of ${source.sent} sent`);
  });

  it('shows the finished transfer gone, the blob counted in the cache and no errors', async () => {
    source.bytesPerSecond = 1e9;
    await transfer.committed;
    const page = await browser.newPage();
    await page.goto(`${ferry.url}/status`);
    await page.locator('#transfers tbody tr.empty').waitFor({ timeout: 5000 });
    assert.match(await page.locator('#transfers tbody').textContent() ?? '', /No transfer in progress/);
    assert.match(await page.locator('#errors tbody').textContent() ?? '', /No recent errors/);
    await page.close();
    const metrics = await (await fetch(`${ferry.url}/metrics`)).text();
    assert.match(metrics, /^ferry_transfers_active 0$/m);
    assert.match(metrics, /^ferry_transfers_total\{result="complete"\} 1$/m);
    assert.equal(Number(/^ferry_upstream_bytes_total\{upstream="hub"\} (\d+)$/m.exec(metrics)?.[1]), blob.data.length);
  });
});
