/** README's Kolla series table is what ferry computes from the shipped facts, so it cannot drift. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKollaDeploy, selectDeployImages } from '../../../lib/kolla/deploy.ts';
import { expandProfile } from '../../../lib/kolla/profile.ts';
import { REPO_ROOT } from '../../helpers/ferry-entry.ts';

describe('README: the Kolla series table', () => {
  it('lists every series with its default build profile, default deploy and compute counts and a reference, as computed', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const rows = new Map(readme.split('\n').map((l) => l.split('|').map((c) => c.trim())).filter((c) => c.length === 7 && /^(\w+|\d{4}\.\d)$/.test(c[1]!) && /^\d+$/.test(c[2]!)).map((c) => [c[1]!, c.slice(2, 6)]));
    const facts = loadKollaDeploy();
    assert.deepEqual([...rows.keys()], Object.keys(facts));
    for (const [series, f] of Object.entries(facts)) {
      // ocata-stein tag with the installed kolla-ansible's version: the README says VERSION.
      const vars: Record<string, string> = f.defaults.openstack_release === 'auto' ? { openstack_release: '0.0.0' } : {};
      const all = selectDeployImages({ release: series, vars });
      const compute = selectDeployImages({ release: series, vars, group: 'compute' });
      const ref = all.images.find((i) => i.image === 'nova-api')!.ref.replace(/:0\.0\.0$/, ':VERSION');
      assert.deepEqual(rows.get(series), [String(expandProfile(series, 'default').length), String(all.images.length), String(compute.images.length), `\`${ref}\``], series);
    }
  });
});
