// Key order for KV listings and every sorted table: Unicode code point order, which is the byte
// order of the UTF-8 encodings, the order Consul (whose radix tree compares bytes) lists keys in.
// Plain `<` on JS strings compares UTF-16 code units and disagrees for characters above U+FFFF
// versus U+E000..U+FFFF. (The sorted structure itself is cow-sorted-map.ts.)

/** Compares two strings by code point (= by their UTF-8 bytes). */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

/**
 * Surrogates (U+D800..U+DFFF) start characters above U+FFFF, so they must rank above the BMP
 * characters U+E000..U+FFFF: shift surrogates up by 0x2000 and U+E000..U+FFFF down by 0x800.
 */
function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}
