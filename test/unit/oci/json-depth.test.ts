import assert from 'node:assert/strict';
import { JsonDepthScan, nestsDeeperThan } from '../../../lib/oci/json-depth.ts';

const depthOf = (text: string): number => {
  for (let max = 0; ; max++) if (!nestsDeeperThan(Buffer.from(text), max)) return max;
};

describe('nestsDeeperThan', () => {
  it('counts objects and arrays alike', () => {
    assert.equal(depthOf('1'), 0);
    assert.equal(depthOf('{}'), 1);
    assert.equal(depthOf('{"a":[{"b":[]}],"c":{}}'), 4);
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    assert.equal(depthOf('{"a":"[[[{{{"}'), 1);
    assert.equal(depthOf('{"a":"\\"[[[","b\\\\":[1]}'), 2);
  });

  it('reads a million levels without recursion', () => {
    const deep = Buffer.from('['.repeat(1_000_000) + ']'.repeat(1_000_000));
    assert.equal(nestsDeeperThan(deep, 64), true);
    assert.equal(nestsDeeperThan(deep, 1_000_000), false);
  });

  it('gives the same answer read in pieces split anywhere, an escape at the end of a piece included', () => {
    const text = Buffer.from('{"a\\\\":"\\"[{","b":[{"c":"\\\\"},[[]]]}');
    const whole = depthOf(text.toString());
    assert.equal(whole, 4);
    for (let at = 0; at <= text.length; at++) {
      for (const max of [whole - 1, whole]) {
        const scan = new JsonDepthScan(max);
        const deeper = scan.push(text.subarray(0, at)) || scan.push(text.subarray(at));
        assert.equal(deeper, max < whole, `split at ${at}, max ${max}`);
      }
    }
  });
});
