import assert from 'node:assert/strict';
import { SharedLinkBudget } from '../../lib/cluster/link-share.ts';
import { LinkBudget, type LinkBudgetOptions } from '../../lib/transfer/link-budget.ts';
import { LinkBudgets } from '../../lib/transfer/link-budgets.ts';

describe('link budgets per upstream', () => {
  it('makes each upstream budget once with the given factory (a replica: its share of the link), capped by the upstream', () => {
    const made: Array<[string, LinkBudgetOptions]> = [];
    const links = new LinkBudgets({ minConnections: 1, maxConnections: 8 }, {
      connectionsFor: (u) => (u === 'slow' ? 4 : undefined),
      // Two replicas busy on every link: each may open half the cap.
      linkBudget: (u, o) => {
        made.push([u, o]);
        return new SharedLinkBudget(o, () => Math.floor(o.maxConnections / 2));
      },
    });
    const slow = links.get('slow');
    assert.equal(links.get('slow'), slow);
    assert.ok(slow instanceof SharedLinkBudget);
    assert.deepEqual(made.map(([u, o]) => [u, o.maxConnections]), [['slow', 4]]);
    assert.ok(slow.limit <= 2, `limit ${slow.limit} over the replica's share`);
    // The link of no upstream is this process's own.
    const none = links.get(undefined);
    assert.ok(!(none instanceof SharedLinkBudget) && none instanceof LinkBudget);
  });

  it('makes a LinkBudget of its own without a factory', () => {
    const links = new LinkBudgets({ minConnections: 1, maxConnections: 8 });
    assert.equal(links.get('up').constructor, LinkBudget);
  });
});
