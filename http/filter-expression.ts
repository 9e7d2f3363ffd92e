// A subset of Consul's `?filter=` language (hashicorp/go-bexpr), evaluated against the JSON objects an
// endpoint answers (developer.hashicorp.com/consul/api-docs/features/filtering).
//
// Supported:
//   <Selector> == <Value>          <Selector> != <Value>
//   <Value> in <Selector>          <Value> not in <Selector>
//   <Selector> contains <Value>    <Selector> not contains <Value>
//   <Selector> matches <Value>     <Selector> not matches <Value>   (JavaScript regular expressions)
//   <Selector> is empty            <Selector> is not empty
//   <expr> and <expr>, <expr> or <expr>, not <expr>, ( <expr> )
// Selectors are dotted field names (Service.Meta.env) or map indexes (Meta["version-2"]); values are
// "double-quoted" or `backquoted` strings, numbers, true/false, or bare words ([A-Za-z0-9_.:/-]+).
// Semantics:
// - == / != compare against the field's type: numbers numerically, booleans as true/false;
// - `in` / `contains` test a list's elements, a map's keys, or a substring of a string;
// - a selector that passes through a list (Checks.Status) matches when any element does; the
//   negated forms match when no element does;
// - a selector naming a missing field is empty and equals nothing. (Consul refuses selectors that
//   are not fields of the result type; Konsul does not know the types and evaluates them instead.)
// A malformed expression is a 400 with "Failed to create boolean expression evaluator: <why>".
import { badRequest } from '../lib/errors.ts';

type Token =
  | { kind: 'word'; text: string; at: number }
  | { kind: 'string'; text: string; at: number }
  | { kind: 'op'; text: '==' | '!='; at: number }
  | { kind: 'paren'; text: '(' | ')'; at: number }
  | { kind: 'index'; text: string; at: number }
  | { kind: 'end'; text: ''; at: number };

type Selector = readonly string[];

type Node =
  | { kind: 'and' | 'or'; left: Node; right: Node }
  | { kind: 'not'; operand: Node }
  | { kind: 'eq' | 'ne' | 'matches' | 'notMatches'; selector: Selector; value: string; pattern?: RegExp }
  | { kind: 'in' | 'notIn'; selector: Selector; value: string }
  | { kind: 'empty' | 'notEmpty'; selector: Selector };

export type Filter = (item: unknown) => boolean;

const MAX_EXPRESSION_LENGTH = 4096;

/** Compiles a filter expression; throws a 400 HttpError when it is malformed. */
export function compileFilter(expression: string): Filter {
  if (expression.length > MAX_EXPRESSION_LENGTH) throw invalid(`expression longer than ${MAX_EXPRESSION_LENGTH} characters`);
  const parser = new Parser(tokenize(expression));
  const tree = parser.parseExpression();
  parser.expectEnd();
  return (item) => evaluate(tree, item);
}

/** Applies an optional filter expression to a list. */
export function applyFilter<T>(items: readonly T[], expression: string | undefined): T[] {
  if (expression === undefined || expression.trim() === '') return [...items];
  const filter = compileFilter(expression);
  return items.filter((item) => filter(item));
}

function invalid(why: string) {
  return badRequest(`Failed to create boolean expression evaluator: ${why}`);
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i;
    if (c === '(' || c === ')') {
      tokens.push({ kind: 'paren', text: c, at });
      i++;
    } else if (c === '=' || c === '!') {
      if (text[i + 1] !== '=') throw invalid(`1:${at + 1}: unexpected ${JSON.stringify(c)}`);
      tokens.push({ kind: 'op', text: c === '=' ? '==' : '!=', at });
      i += 2;
    } else if (c === '"' || c === '`') {
      const { value, next } = readString(text, i, c);
      tokens.push({ kind: 'string', text: value, at });
      i = next;
    } else if (c === '[') {
      i++;
      while (i < text.length && /\s/.test(text[i]!)) i++;
      const quote = text[i];
      if (quote !== '"' && quote !== '`') throw invalid(`1:${at + 1}: a map index must be a quoted string`);
      const { value, next } = readString(text, i, quote);
      i = next;
      while (i < text.length && /\s/.test(text[i]!)) i++;
      if (text[i] !== ']') throw invalid(`1:${at + 1}: unterminated map index`);
      i++;
      tokens.push({ kind: 'index', text: value, at });
    } else if (/[A-Za-z0-9_.:/-]/.test(c)) {
      let j = i;
      while (j < text.length && /[A-Za-z0-9_.:/-]/.test(text[j]!)) j++;
      tokens.push({ kind: 'word', text: text.slice(i, j), at });
      i = j;
    } else {
      throw invalid(`1:${at + 1}: unexpected ${JSON.stringify(c)}`);
    }
  }
  tokens.push({ kind: 'end', text: '', at: text.length });
  return tokens;
}

function readString(text: string, start: number, quote: string): { value: string; next: number } {
  let value = '';
  let i = start + 1;
  while (i < text.length && text[i] !== quote) {
    if (quote === '"' && text[i] === '\\' && i + 1 < text.length) {
      const e = text[i + 1]!;
      value += e === 'n' ? '\n' : e === 't' ? '\t' : e;
      i += 2;
    } else {
      value += text[i];
      i++;
    }
  }
  if (i >= text.length) throw invalid(`1:${start + 1}: unterminated string`);
  return { value, next: i + 1 };
}

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'contains', 'matches', 'is', 'empty']);

class Parser {
  private position = 0;

  constructor(private readonly tokens: Token[]) {}

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.position + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'end') this.position++;
    return t;
  }

  private isWord(t: Token, word: string): boolean {
    return t.kind === 'word' && t.text === word;
  }

  expectEnd(): void {
    const t = this.peek();
    if (t.kind !== 'end') throw invalid(`1:${t.at + 1}: unexpected ${JSON.stringify(t.text)}`);
  }

  parseExpression(): Node {
    let left = this.parseAnd();
    while (this.isWord(this.peek(), 'or')) {
      this.next();
      left = { kind: 'or', left, right: this.parseAnd() };
    }
    return left;
  }

  private parseAnd(): Node {
    let left = this.parseNot();
    while (this.isWord(this.peek(), 'and')) {
      this.next();
      left = { kind: 'and', left, right: this.parseNot() };
    }
    return left;
  }

  private parseNot(): Node {
    if (this.isWord(this.peek(), 'not')) {
      this.next();
      return { kind: 'not', operand: this.parseNot() };
    }
    const t = this.peek();
    if (t.kind === 'paren' && t.text === '(') {
      this.next();
      const inner = this.parseExpression();
      const close = this.next();
      if (close.kind !== 'paren' || close.text !== ')') throw invalid(`1:${close.at + 1}: expected ")"`);
      return inner;
    }
    return this.parseMatch();
  }

  private parseMatch(): Node {
    const first = this.peek();
    // <Value> [not] in <Selector>
    const after = this.operandLength();
    if (this.isWord(this.peek(after), 'in') || (this.isWord(this.peek(after), 'not') && this.isWord(this.peek(after + 1), 'in'))) {
      const value = this.parseValue();
      const negated = this.isWord(this.peek(), 'not');
      if (negated) this.next();
      this.next(); // in
      return { kind: negated ? 'notIn' : 'in', selector: this.parseSelector(), value };
    }
    const selector = this.parseSelector();
    const op = this.next();
    if (op.kind === 'op') {
      const value = this.parseValue();
      return { kind: op.text === '==' ? 'eq' : 'ne', selector, value };
    }
    if (this.isWord(op, 'is')) {
      if (this.isWord(this.peek(), 'not')) {
        this.next();
        if (!this.isWord(this.next(), 'empty')) throw invalid(`1:${op.at + 1}: expected "is not empty"`);
        return { kind: 'notEmpty', selector };
      }
      if (!this.isWord(this.next(), 'empty')) throw invalid(`1:${op.at + 1}: expected "is empty"`);
      return { kind: 'empty', selector };
    }
    let negated = false;
    let verb: Token = op;
    if (this.isWord(op, 'not')) {
      negated = true;
      verb = this.next();
    }
    if (this.isWord(verb, 'contains')) return { kind: negated ? 'notIn' : 'in', selector, value: this.parseValue() };
    if (this.isWord(verb, 'matches')) {
      const value = this.parseValue();
      let pattern: RegExp;
      try {
        pattern = new RegExp(value);
      } catch (err) {
        throw invalid(`invalid regular expression: ${(err as Error).message}`);
      }
      return { kind: negated ? 'notMatches' : 'matches', selector, value, pattern };
    }
    throw invalid(`1:${(verb.kind === 'end' ? first : verb).at + 1}: expected an operator (==, !=, in, contains, matches, is empty) after ${JSON.stringify(selector.join('.'))}`);
  }

  /** How many tokens the operand starting here takes (a value, or a selector with its map indexes). */
  private operandLength(): number {
    let offset = 1;
    while (this.peek(offset).kind === 'index') offset++;
    return offset;
  }

  private parseSelector(): Selector {
    const t = this.next();
    if (t.kind !== 'word' || KEYWORDS.has(t.text) || !/^[A-Za-z_]/.test(t.text)) {
      throw invalid(`1:${t.at + 1}: expected a selector, got ${JSON.stringify(t.text)}`);
    }
    const parts = t.text.split('.');
    if (parts.some((p) => p === '')) throw invalid(`1:${t.at + 1}: bad selector ${JSON.stringify(t.text)}`);
    while (this.peek().kind === 'index') parts.push(this.next().text);
    return parts;
  }

  private parseValue(): string {
    const t = this.next();
    if (t.kind === 'string' || (t.kind === 'word' && !KEYWORDS.has(t.text))) return t.text;
    throw invalid(`1:${t.at + 1}: expected a value, got ${JSON.stringify(t.text)}`);
  }
}

/** Every value the selector reaches (lists fan out). */
function resolve(item: unknown, selector: Selector): unknown[] {
  let current: unknown[] = [item];
  for (const part of selector) {
    const next: unknown[] = [];
    for (const value of current) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (typeof v === 'object' && v !== null && Object.prototype.hasOwnProperty.call(v, part)) next.push((v as Record<string, unknown>)[part]);
      }
    }
    current = next;
  }
  return current;
}

function equals(field: unknown, value: string): boolean {
  if (typeof field === 'number') return value.trim() !== '' && Number(value) === field;
  if (typeof field === 'boolean') return (value === 'true' && field) || (value === 'false' && !field);
  if (typeof field === 'string') return field === value;
  return false;
}

function holds(field: unknown, value: string): boolean {
  if (Array.isArray(field)) return field.some((f) => equals(f, value));
  if (typeof field === 'string') return field.includes(value);
  if (typeof field === 'object' && field !== null) return Object.prototype.hasOwnProperty.call(field, value);
  return false;
}

function isEmpty(field: unknown): boolean {
  if (field === undefined || field === null || field === '') return true;
  if (Array.isArray(field)) return field.length === 0;
  if (typeof field === 'object') return Object.keys(field).length === 0;
  return false;
}

function scalars(values: unknown[]): unknown[] {
  return values.flatMap((v) => (Array.isArray(v) ? v : [v]));
}

function evaluate(node: Node, item: unknown): boolean {
  switch (node.kind) {
    case 'and':
      return evaluate(node.left, item) && evaluate(node.right, item);
    case 'or':
      return evaluate(node.left, item) || evaluate(node.right, item);
    case 'not':
      return !evaluate(node.operand, item);
    case 'eq':
      return scalars(resolve(item, node.selector)).some((v) => equals(v, node.value));
    case 'ne':
      return !scalars(resolve(item, node.selector)).some((v) => equals(v, node.value));
    case 'matches':
      return scalars(resolve(item, node.selector)).some((v) => typeof v === 'string' && node.pattern!.test(v));
    case 'notMatches':
      return !scalars(resolve(item, node.selector)).some((v) => typeof v === 'string' && node.pattern!.test(v));
    case 'in':
      return resolve(item, node.selector).some((v) => holds(v, node.value));
    case 'notIn':
      return !resolve(item, node.selector).some((v) => holds(v, node.value));
    case 'empty': {
      const values = resolve(item, node.selector);
      return values.length === 0 || values.every(isEmpty);
    }
    case 'notEmpty': {
      const values = resolve(item, node.selector);
      return values.length > 0 && !values.every(isEmpty);
    }
  }
}
