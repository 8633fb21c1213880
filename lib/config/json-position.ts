/**
 * Where a JSON text first goes wrong, as line:column (what an editor shows), since V8 reports a
 * character position at best. A small recursive scanner: it only finds the offset; JSON.parse
 * still does the parsing.
 */

class Scan {
  i = 0;
  constructor(private readonly s: string) {}

  fail(): never {
    throw this.i;
  }

  ws(): void {
    while (this.i < this.s.length && ' \t\n\r'.includes(this.s[this.i] as string)) this.i++;
  }

  expect(c: string): void {
    if (this.s[this.i] !== c) this.fail();
    this.i++;
  }

  value(): void {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') this.members('}', () => { this.ws(); this.string(); this.ws(); this.expect(':'); this.value(); });
    else if (c === '[') this.members(']', () => this.value());
    else if (c === '"') this.string();
    else if (c !== undefined && /[-0-9]/.test(c)) this.number();
    else this.literal();
    this.ws();
  }

  members(close: string, member: () => void): void {
    this.i++;
    this.ws();
    if (this.s[this.i] === close) { this.i++; return; }
    for (;;) {
      member();
      this.ws();
      if (this.s[this.i] === ',') { this.i++; continue; }
      this.expect(close);
      return;
    }
  }

  string(): void {
    this.expect('"');
    for (;;) {
      const c = this.s[this.i];
      if (c === undefined || c < ' ') this.fail();
      this.i++;
      if (c === '"') return;
      if (c === '\\') {
        const e = this.s[this.i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.s.slice(this.i + 1, this.i + 5))) this.fail();
          this.i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) this.i++;
        else this.fail();
      }
    }
  }

  number(): void {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.s.slice(this.i));
    if (!m) this.fail();
    this.i += m[0].length;
  }

  literal(): void {
    for (const word of ['true', 'false', 'null']) {
      if (this.s.startsWith(word, this.i)) { this.i += word.length; return; }
    }
    this.fail();
  }
}

/** Offset of the first syntax error, or undefined when the text is valid JSON. */
export function jsonErrorOffset(text: string): number | undefined {
  const scan = new Scan(text);
  try {
    scan.value();
    if (scan.i < text.length) scan.fail();
    return undefined;
  } catch (at) {
    if (typeof at === 'number') return at;
    throw at;
  }
}

/** `line L:C` of an offset (1-based, as editors count). */
export function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  return `line ${before.split('\n').length}:${offset - before.lastIndexOf('\n')}`;
}

/** V8's message without its position or its copy of the text, placed at line:column. */
export function describeJsonError(text: string, message: string): string {
  const offset = jsonErrorOffset(text) ?? text.length;
  const what = message
    .replace(/ (in|after) JSON at position \d+.*$/s, (_, w: string) => (w === 'after' ? ' after the value' : ''))
    .replace(/, ".*" is not valid JSON$/s, '')
    .replace(/\n/g, '\\n')
    .replace(/^Unexpected end of JSON input$/, 'unexpected end of file');
  return `${lineColumn(text, offset)}: ${what}`;
}
