// Cheap deterministic hashing for the simulation: 32-bit murmur-style mixing in two lanes, folded
// into 53 bits so that a hash is an exact JS number (usable as a Map key and in plain arrays).
import type { Entry } from '../core/types.ts';

const TWO_32 = 4294967296;

export function mix32(h: number, x: number): number {
  let k = Math.imul(x | 0, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  let r = (h ^ k) | 0;
  r = (r << 13) | (r >>> 19);
  return (Math.imul(r, 5) + 0xe6546b64) | 0;
}

export function finish32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function hashString(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = mix32(h, s.charCodeAt(i));
  return mix32(h, s.length);
}

/** Hash of one log entry's content (not its position). */
export function entryDigest(e: Entry): number {
  if (e.type === 'confChange') return finish32(hashString(mix32(0x43c0, e.change.type.length), e.change.type + '/' + e.change.node));
  const d = e.data;
  let h = mix32(0x4e0, d.length);
  for (let i = 0; i < d.length; i++) h = mix32(h, d[i]!);
  return finish32(h);
}

/** The hash chain over a log: chain(i) = H(chain(i-1), i, term(i), digest(entry i)). */
export const GENESIS_CHAIN = 0;

export function chainNext(prev: number, index: number, term: number, digest: number): number {
  const lo = prev % TWO_32;
  const hi = (prev - lo) / TWO_32;
  let a = 0x2f6b1d3;
  a = mix32(a, lo);
  a = mix32(a, hi);
  a = mix32(a, index);
  a = mix32(a, term);
  a = mix32(a, digest);
  let b = 0x7a31c55;
  b = mix32(b, digest);
  b = mix32(b, term);
  b = mix32(b, index);
  b = mix32(b, hi);
  b = mix32(b, lo);
  return (finish32(a) & 0x1fffff) * TWO_32 + finish32(b);
}

/** Renders a 53-bit hash as 14 hex digits. */
export function hex53(h: number): string {
  return h.toString(16).padStart(14, '0');
}
