import assert from 'node:assert/strict';
import { parseChallenges, pickChallenge, type Challenge } from '../../lib/upstream/challenge.ts';

describe('parseChallenges (WWW-Authenticate)', () => {
  const table: Array<[string, string | string[] | undefined, Challenge[]]> = [
    ['Docker Hub Bearer with a scope',
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull' } }]],
    ['a scope whose quoted value holds a comma',
      'Bearer realm="https://r/token",scope="repository:a/b:pull,push",service="reg"',
      [{ scheme: 'bearer', params: { realm: 'https://r/token', scope: 'repository:a/b:pull,push', service: 'reg' } }]],
    ['Basic with a realm', 'Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
    ['two challenges in one header',
      'Basic realm="x", Bearer realm="https://t/token",service="s"',
      [{ scheme: 'basic', params: { realm: 'x' } }, { scheme: 'bearer', params: { realm: 'https://t/token', service: 's' } }]],
    ['challenges in several header values',
      ['Basic realm="x"', 'Bearer realm="y"'],
      [{ scheme: 'basic', params: { realm: 'x' } }, { scheme: 'bearer', params: { realm: 'y' } }]],
    ['unquoted values', 'Bearer realm=https://t/token,service=reg',
      [{ scheme: 'bearer', params: { realm: 'https://t/token', service: 'reg' } }]],
    ['spaces around = and after commas, upper-case names',
      'BEARER  Realm = "https://t/token" ,  Service="reg"',
      [{ scheme: 'bearer', params: { realm: 'https://t/token', service: 'reg' } }]],
    ['an escaped quote inside a quoted value', String.raw`Basic realm="say \"hi\""`,
      [{ scheme: 'basic', params: { realm: 'say "hi"' } }]],
    ['an error parameter', 'Bearer realm="r",service="s",scope="repository:x:pull",error="insufficient_scope"',
      [{ scheme: 'bearer', params: { realm: 'r', service: 's', scope: 'repository:x:pull', error: 'insufficient_scope' } }]],
    ['a token68 challenge before a Basic one', 'Negotiate abc123==, Basic realm="r"',
      [{ scheme: 'negotiate', params: {}, token68: 'abc123==' }, { scheme: 'basic', params: { realm: 'r' } }]],
    ['a scheme with no parameters', 'Bearer', [{ scheme: 'bearer', params: {} }]],
    ['an empty header', '', []],
    ['no header', undefined, []],
  ];
  for (const [what, header, expected] of table) {
    it(`parses ${what}`, () => {
      assert.deepEqual(parseChallenges(header), expected);
    });
  }

  it('prefers Bearer over Basic, and Basic over anything else', () => {
    assert.equal(pickChallenge(parseChallenges('Basic realm="x", Bearer realm="y"'))?.scheme, 'bearer');
    assert.equal(pickChallenge(parseChallenges('Negotiate abc, Basic realm="x"'))?.scheme, 'basic');
    assert.equal(pickChallenge([]), undefined);
  });
});
