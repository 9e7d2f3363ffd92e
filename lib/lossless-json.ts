// JSON.parse that keeps integers beyond Number.MAX_SAFE_INTEGER exact. Consul's uint64 fields (KV
// Flags, Raft indexes) can exceed 2^53; JSON.parse would round them. Such integers are turned into
// their digit strings before parsing, so a field is a number when it is exact and a string otherwise;
// `uint64Field` reads either as a canonical digit string.

/** Parses JSON text; integer literals that a JS number cannot hold exactly become digit strings. */
export function parseJsonLossless(text: string): unknown {
  let rewritten = '';
  let copiedUpTo = 0;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      i = endOfString(text, i);
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      const match = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;
      match.lastIndex = i;
      const m = match.exec(text);
      if (!m) break; // let JSON.parse report the syntax error
      const literal = m[0];
      const isInteger = m[1] === undefined && m[2] === undefined;
      if (isInteger && !Number.isSafeInteger(Number(literal))) {
        rewritten += text.slice(copiedUpTo, i) + `"${literal}"`;
        copiedUpTo = i + literal.length;
      }
      i += literal.length;
    } else {
      i++;
    }
  }
  return JSON.parse(copiedUpTo === 0 ? text : rewritten + text.slice(copiedUpTo));
}

/** The index just past the JSON string literal that starts at `start` (a quote). */
function endOfString(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '\\') i += 2;
    else if (ch === '"') return i + 1;
    else i++;
  }
  return i;
}

/**
 * Reads a uint64 field produced by parseJsonLossless (a number or a digit string) as a canonical
 * decimal string; `undefined`/`null` read as "0", as Go's zero value. Throws on anything else.
 */
export function uint64Field(value: unknown, what: string): string {
  if (value === undefined || value === null) return '0';
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return String(value);
  if (typeof value === 'string' && /^\d+$/.test(value)) return BigInt(value).toString();
  throw new TypeError(`${what} is not an unsigned integer: ${JSON.stringify(value)}`);
}
