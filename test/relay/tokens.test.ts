import assert from 'node:assert/strict';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenSet, bearerToken, generateToken, parseTokenFile } from '../../lib/relay/tokens.ts';
import { relayCommand } from '../../scripts/relay.ts';

describe('relay tokens', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-tokens-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates 32 random bytes as base64url, different each time', () => {
    const a = generateToken();
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a, 'base64url').length, 32);
    assert.notEqual(a, generateToken());
  });

  it('`ferry relay token` prints one new token', async () => {
    const lines: string[] = [];
    await relayCommand({ out: (l) => lines.push(l) }).parseAsync(['token'], { from: 'user' });
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^[A-Za-z0-9_-]{43}$/);
  });

  it('reads one token a line, skipping blanks and comments', () => {
    assert.deepEqual(parseTokenFile('# current\n  aaaaaaaaaaaaaaaaaaaa \r\n\n# next\nbbbbbbbbbbbbbbbbbbbb\n'), ['aaaaaaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbbbbbb']);
  });

  it('takes the token of a Bearer header only', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer  abc '), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
    assert.equal(bearerToken('Bearer a b'), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });

  it('accepts each configured token and nothing else', () => {
    const [a, b] = [generateToken(), generateToken()];
    const set = new TokenSet({ tokens: [a, b] });
    assert.equal(set.verify(a), true);
    assert.equal(set.verify(b), true);
    for (const wrong of [undefined, '', a.slice(0, -1), `${a}x`, a.toUpperCase() === a ? a.toLowerCase() : a.toUpperCase(), generateToken()]) {
      assert.equal(set.verify(wrong), false, String(wrong));
    }
  });

  it('re-reads the token file once it changed and the check interval passed', async () => {
    const file = join(dir, 'rotate');
    const [a, b] = [generateToken(), generateToken()];
    await writeFile(file, `${a}\n`);
    let now = 0;
    const set = new TokenSet({ tokenFile: file, checkIntervalMs: 1000, now: () => now });
    assert.equal(set.verify(a), true);
    // Written elsewhere and renamed into place, as a rotation should be done.
    await writeFile(`${file}.new`, `${a}\n${b}\n`);
    await rename(`${file}.new`, file);
    now = 500;
    assert.equal(set.verify(b), false, 'not checked again within the interval');
    now = 1500;
    assert.equal(set.verify(b), true);
    assert.equal(set.verify(a), true);
    await writeFile(file, `${b}\n`);
    set.reload();
    assert.equal(set.verify(a), false, 'reload() reads at once');
    assert.equal(set.size, 1);
  });

  it('refuses every token of a file that is gone or holds a short token, and says why', async () => {
    const file = join(dir, 'closed');
    const a = generateToken();
    await writeFile(file, `${a}\n`);
    const errors: string[] = [];
    const set = new TokenSet({ tokenFile: file, checkIntervalMs: 0, onFileError: (e) => errors.push(e.message) });
    assert.equal(set.verify(a), true);
    await writeFile(file, `${a}\nshort\n`);
    assert.equal(set.verify(a), false);
    await rm(file);
    assert.equal(set.verify(a), false);
    assert.equal(errors.length, 1, 'said once while the file stays unusable');
    assert.match(errors[0]!, /shorter than 16/);
    await writeFile(file, `${a}\n`);
    assert.equal(set.verify(a), true);
  });
});
