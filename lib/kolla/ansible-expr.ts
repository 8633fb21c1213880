/**
 * The Jinja expressions kolla-ansible gates its containers with (`when:`, `enabled:`,
 * `host_in_groups:`, `enable_*` defaults), evaluated with three-valued logic: a value ferry cannot
 * know (run-time state, a variable nobody set) is UNKNOWN, and `and`/`or` still decide when one
 * side does. Enough Jinja for those expressions: literals, lists, variables, `x[i]`, `x.y`,
 * filters (bool, length, int, lower, string, default), `==` `!=` `<` `>` `in` `not in`,
 * `is [not] defined`, `not`, `and`, `or`, `~`, `A if C else B`, and `{{ }}` templates.
 */

/** A value ferry cannot know. */
export const UNKNOWN: unique symbol = Symbol('unknown');
/** A variable no source defines (Jinja's Undefined); `is defined` is false, anything else is UNKNOWN. */
export const UNDEFINED: unique symbol = Symbol('undefined');

export type Value = string | number | boolean | null | Value[] | { [key: string]: Value } | typeof UNKNOWN | typeof UNDEFINED;

/** Variable lookup: a value, UNKNOWN, or UNDEFINED when nothing defines the name. */
export type Scope = (name: string) => Value;

type Tok = { t: 'str'; v: string } | { t: 'num'; v: number } | { t: 'name'; v: string } | { t: 'op'; v: string };

const OPS = ['==', '!=', '<=', '>=', '(', ')', '[', ']', ',', '|', '.', '<', '>', '~', '+', '-', ':'];

function tokenize(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new SyntaxError(`unterminated string in ${text}`);
      out.push({ t: 'str', v: text.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const num = /^\d+(\.\d+)?/.exec(text.slice(i));
    if (num) { out.push({ t: 'num', v: Number(num[0]) }); i += num[0].length; continue; }
    const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (name) { out.push({ t: 'name', v: name[0] }); i += name[0].length; continue; }
    const op = OPS.find((o) => text.startsWith(o, i));
    if (!op) throw new SyntaxError(`unexpected ${JSON.stringify(c)} in ${text}`);
    out.push({ t: 'op', v: op });
    i += op.length;
  }
  return out;
}

const isUnsure = (v: Value): v is typeof UNKNOWN | typeof UNDEFINED => v === UNKNOWN || v === UNDEFINED;

/** Ansible's `bool` filter (and a condition's truth): yes/true/on/1 are true, strings otherwise false; UNKNOWN stays. */
export function toBool(v: Value): boolean | typeof UNKNOWN {
  if (isUnsure(v)) return UNKNOWN;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return ['yes', 'true', 'on', '1', 'y', 't'].includes(v.trim().toLowerCase());
  if (v === null) return false;
  return Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0;
}

/** A condition's truth: like `bool`, but a non-empty string that is not a boolean word is true (Jinja truthiness). */
function truth(v: Value): boolean | typeof UNKNOWN {
  if (typeof v === 'string') {
    const w = v.trim().toLowerCase();
    if (['no', 'false', 'off', '0', 'n', 'f', '', 'none'].includes(w)) return false;
    return true;
  }
  return toBool(v);
}

function equal(a: Value, b: Value): boolean | typeof UNKNOWN {
  if (isUnsure(a) || isUnsure(b)) return UNKNOWN;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The text Jinja prints for a value (Python's str): True/False, None. */
export function render(v: Value): string | typeof UNKNOWN {
  if (isUnsure(v)) return UNKNOWN;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v === null) return 'None';
  if (typeof v === 'string' || typeof v === 'number') return String(v);
  return JSON.stringify(v);
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Tok[], private readonly scope: Scope) {}

  parse(): Value {
    const v = this.expr();
    if (this.i < this.toks.length) throw new SyntaxError(`unexpected ${JSON.stringify(this.toks[this.i])}`);
    return v;
  }

  private peek(): Tok | undefined { return this.toks[this.i]; }
  private isName(v: string, at = 0): boolean { const t = this.toks[this.i + at]; return t?.t === 'name' && t.v === v; }
  private isOp(v: string): boolean { const t = this.peek(); return t?.t === 'op' && t.v === v; }
  private expect(v: string): void {
    if (!this.isOp(v)) throw new SyntaxError(`expected ${v}`);
    this.i++;
  }

  private expr(): Value {
    const a = this.or();
    if (!this.isName('if')) return a;
    this.i++;
    const cond = truth(this.or());
    let b: Value = '';
    if (this.isName('else')) { this.i++; b = this.expr(); }
    if (cond === UNKNOWN) return UNKNOWN;
    return cond ? a : b;
  }

  private or(): Value {
    let a = this.and();
    while (this.isName('or')) {
      this.i++;
      const b = this.and();
      const x = truth(a);
      const y = truth(b);
      a = x === true || y === true ? true : x === UNKNOWN || y === UNKNOWN ? UNKNOWN : false;
    }
    return a;
  }

  private and(): Value {
    let a = this.not();
    while (this.isName('and')) {
      this.i++;
      const b = this.not();
      const x = truth(a);
      const y = truth(b);
      a = x === false || y === false ? false : x === UNKNOWN || y === UNKNOWN ? UNKNOWN : true;
    }
    return a;
  }

  private not(): Value {
    if (this.isName('not')) {
      this.i++;
      const v = truth(this.not());
      return v === UNKNOWN ? UNKNOWN : !v;
    }
    return this.compare();
  }

  private compare(): Value {
    let a = this.concat();
    for (;;) {
      const t = this.peek();
      if (t?.t === 'op' && ['==', '!=', '<', '>', '<=', '>='].includes(t.v)) {
        this.i++;
        a = compareOp(t.v, a, this.concat());
      } else if (this.isName('in') || (this.isName('not') && this.isName('in', 1))) {
        const negate = this.isName('not');
        this.i += negate ? 2 : 1;
        const r = contains(this.concat(), a);
        a = r === UNKNOWN ? UNKNOWN : negate ? !r : r;
      } else if (this.isName('is')) {
        this.i++;
        const negate = this.isName('not');
        if (negate) this.i++;
        const test = this.name();
        let r: boolean | typeof UNKNOWN;
        if (test === 'defined') r = a === UNKNOWN ? UNKNOWN : a !== UNDEFINED;
        else if (test === 'undefined') r = a === UNKNOWN ? UNKNOWN : a === UNDEFINED;
        else r = UNKNOWN;
        a = r === UNKNOWN ? UNKNOWN : negate ? !r : r;
      } else {
        return a;
      }
    }
  }

  private concat(): Value {
    let a = this.filtered();
    while (this.isOp('~') || this.isOp('+')) {
      const op = (this.toks[this.i++] as { v: string }).v;
      const b = this.filtered();
      if (isUnsure(a) || isUnsure(b)) a = UNKNOWN;
      else if (op === '+' && typeof a === 'number' && typeof b === 'number') a = a + b;
      else if (op === '+' && Array.isArray(a) && Array.isArray(b)) a = [...a, ...b];
      else a = `${render(a) as string}${render(b) as string}`;
    }
    return a;
  }

  private filtered(): Value {
    let v = this.unary();
    while (this.isOp('|')) {
      this.i++;
      const name = this.name();
      const args = this.isOp('(') ? this.args(')') : [];
      v = applyFilter(name, v, args);
    }
    return v;
  }

  private unary(): Value {
    if (this.isOp('-')) {
      this.i++;
      const v = this.unary();
      return typeof v === 'number' ? -v : UNKNOWN;
    }
    return this.postfix();
  }

  private postfix(): Value {
    let v = this.primary();
    for (;;) {
      if (this.isOp('[')) {
        this.i++;
        const key = this.expr();
        this.expect(']');
        v = index(v, key);
      } else if (this.isOp('.')) {
        this.i++;
        v = index(v, this.name());
      } else if (this.isOp('(')) {
        this.args(')');
        v = UNKNOWN; // a method or function call: not evaluated
      } else {
        return v;
      }
    }
  }

  private primary(): Value {
    const t = this.toks[this.i++];
    if (!t) throw new SyntaxError('unexpected end');
    if (t.t === 'str' || t.t === 'num') return t.v;
    if (t.t === 'op' && t.v === '(') {
      const v = this.expr();
      this.expect(')');
      return v;
    }
    if (t.t === 'op' && t.v === '[') return this.args(']');
    if (t.t === 'name') {
      if (t.v === 'True' || t.v === 'true') return true;
      if (t.v === 'False' || t.v === 'false') return false;
      if (t.v === 'None' || t.v === 'none') return null;
      return this.scope(t.v);
    }
    throw new SyntaxError(`unexpected ${t.v}`);
  }

  private args(close: string): Value[] {
    if (close === ')') this.expect('(');
    const out: Value[] = [];
    while (!this.isOp(close)) {
      out.push(this.expr());
      if (this.isOp(',')) this.i++;
      else if (!this.isOp(close)) throw new SyntaxError(`expected , or ${close}`);
    }
    this.i++;
    return out;
  }

  private name(): string {
    const t = this.toks[this.i++];
    if (t?.t !== 'name') throw new SyntaxError('expected a name');
    return t.v;
  }
}

function compareOp(op: string, a: Value, b: Value): Value {
  if (op === '==') return equal(a, b);
  if (op === '!=') {
    const e = equal(a, b);
    return e === UNKNOWN ? UNKNOWN : !e;
  }
  if (typeof a !== 'number' || typeof b !== 'number') {
    if (typeof a === 'string' && typeof b === 'string') return op === '<' ? a < b : op === '>' ? a > b : op === '<=' ? a <= b : a >= b;
    return UNKNOWN;
  }
  return op === '<' ? a < b : op === '>' ? a > b : op === '<=' ? a <= b : a >= b;
}

function contains(container: Value, item: Value): boolean | typeof UNKNOWN {
  if (isUnsure(container) || isUnsure(item)) return UNKNOWN;
  if (typeof container === 'string') return typeof item === 'string' ? container.includes(item) : UNKNOWN;
  if (Array.isArray(container)) {
    if (container.some((x) => x === UNKNOWN)) return UNKNOWN;
    return container.some((x) => equal(x, item) === true);
  }
  if (container && typeof container === 'object') return typeof item === 'string' && Object.hasOwn(container, item);
  return UNKNOWN;
}

function index(v: Value, key: Value): Value {
  if (isUnsure(v) || isUnsure(key)) return UNKNOWN;
  if (Array.isArray(v) && typeof key === 'number') return v[key] ?? UNDEFINED;
  if (v && typeof v === 'object' && !Array.isArray(v) && typeof key === 'string') return Object.hasOwn(v, key) ? v[key]! : UNDEFINED;
  return UNKNOWN;
}

function applyFilter(name: string, v: Value, args: Value[]): Value {
  if (name === 'default' || name === 'd') return v === UNDEFINED ? (args[0] ?? '') : v;
  if (isUnsure(v)) return UNKNOWN;
  switch (name) {
    case 'bool': return toBool(v);
    case 'length':
    case 'count': return typeof v === 'string' || Array.isArray(v) ? v.length : v && typeof v === 'object' ? Object.keys(v).length : UNKNOWN;
    case 'int': return typeof v === 'number' ? Math.trunc(v) : typeof v === 'string' && /^-?\d+/.test(v) ? parseInt(v, 10) : 0;
    case 'lower': return typeof v === 'string' ? v.toLowerCase() : UNKNOWN;
    case 'string': return render(v);
    case 'list': return Array.isArray(v) ? v : UNKNOWN;
    default: return UNKNOWN;
  }
}

// The same few hundred gate texts are evaluated for every host: tokenized once each.
const tokenized = new Map<string, Tok[] | SyntaxError>();

function tokensOf(expression: string): Tok[] {
  let toks = tokenized.get(expression);
  if (toks === undefined) {
    try {
      toks = tokenize(expression);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      toks = e;
    }
    tokenized.set(expression, toks);
  }
  if (toks instanceof SyntaxError) throw toks;
  return toks;
}

/** Evaluates one Jinja expression (no `{{ }}`); an expression ferry cannot parse is UNKNOWN. */
export function evaluate(expression: string, scope: Scope): Value {
  try {
    return new Parser(tokensOf(expression), scope).parse();
  } catch (e) {
    if (e instanceof SyntaxError) return UNKNOWN;
    throw e;
  }
}

const TEMPLATE = /\{\{([\s\S]*?)\}\}/g;

/**
 * The value of a YAML value as Ansible templates it: a string that is one `{{ expr }}` is that
 * expression's value; a string with `{{ }}` inside is the rendered text; anything else is itself.
 */
export function templateValue(raw: Value, scope: Scope): Value {
  if (typeof raw !== 'string' || !raw.includes('{{')) return raw;
  const whole = /^\s*\{\{([\s\S]*?)\}\}\s*$/.exec(raw);
  if (whole && !whole[1]!.includes('{{')) return evaluate(whole[1]!, scope);
  let unknown = false;
  const text = raw.replace(TEMPLATE, (_, expr: string) => {
    const r = render(evaluate(expr, scope));
    if (r === UNKNOWN) unknown = true;
    return r === UNKNOWN ? '' : r;
  });
  return unknown ? UNKNOWN : text;
}

/** An Ansible condition (`when:` item): templated first, then evaluated; its truth, or UNKNOWN. */
export function condition(raw: Value, scope: Scope): boolean | typeof UNKNOWN {
  if (typeof raw !== 'string') return truth(raw);
  let text: Value = raw;
  if (raw.includes('{{')) {
    text = templateValue(raw, scope);
    if (typeof text !== 'string') return truth(text);
  }
  const word = text.trim();
  if (/^(yes|no|true|false|on|off)$/i.test(word)) return toBool(word);
  return truth(evaluate(word, scope));
}
