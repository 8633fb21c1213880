/**
 * The Kolla facts ferry ships (lib/kolla/images.json: what Kolla builds; lib/kolla/deploy.json:
 * what kolla-ansible deploys) are copies of the project's shared facts (shared/kolla/, read from
 * Kolla's and kolla-ansible's trees). Both are pinned by content hash, so a copy cannot change
 * unnoticed where shared/ is absent (CI clones only the repository), and compared byte for byte
 * with shared/kolla/ where it is present.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../helpers/ferry-entry.ts';

const FILES: Record<string, string> = {
  'images.json': 'eadf231c8b443a91634b36f5d7d40537d367939eb4b4d4a3554695afeef7564c',
  'deploy.json': '6af1b4253b11fd8c3fcfc78f4e966eecdc5c7bf6863cdc73a98f6a0d5c6a91b1',
};

// KOLLA_FACTS_DIR, else shared/kolla beside the repository (the workspace: /work/main -> /work/shared).
const candidates = [process.env.KOLLA_FACTS_DIR, join(REPO_ROOT, '..', 'shared', 'kolla'), '/work/shared/kolla'].filter((d): d is string => !!d);
const sharedDir = candidates.find((d) => existsSync(join(d, 'images.json')));

describe('kolla: shipped facts', () => {
  for (const [name, sha256] of Object.entries(FILES)) {
    it(`pins lib/kolla/${name} by its sha256 (change the pin only with the shared facts)`, () => {
      const digest = createHash('sha256').update(readFileSync(join(REPO_ROOT, 'lib/kolla', name))).digest('hex');
      assert.equal(digest, sha256);
    });
    if (sharedDir) {
      it(`ships lib/kolla/${name} byte-equal to ${join(sharedDir, name)}`, () => {
        assert.ok(readFileSync(join(REPO_ROOT, 'lib/kolla', name)).equals(readFileSync(join(sharedDir, name))), `lib/kolla/${name} differs from ${sharedDir}: copy it and update the pin`);
      });
    } else {
      it.skip(`ships lib/kolla/${name} equal to shared/kolla/ (skipped: no shared/kolla/ in ${candidates.join(', ')}; set KOLLA_FACTS_DIR; the hash pin above still holds the copy)`);
    }
  }
});
