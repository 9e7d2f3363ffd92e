// Standard base64 (RFC 4648 §4, with padding): the form Consul uses for KV values on the wire and
// the form values travel in inside FSM commands. Hand-written because fsm/ may not use Buffer or
// node:* (purity rule), and because decoding must be strict: a command either decodes to exactly
// one byte string on every replica or is rejected.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const PAD = 61; // '='
const INVALID = 255;

const DECODE_TABLE = (() => {
  const table = new Uint8Array(256).fill(INVALID);
  for (let i = 0; i < ALPHABET.length; i++) table[ALPHABET.charCodeAt(i)] = i;
  return table;
})();

const ENCODE_TABLE = (() => {
  const table = new Uint8Array(64);
  for (let i = 0; i < 64; i++) table[i] = ALPHABET.charCodeAt(i);
  return table;
})();

export function encodeBase64(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = ENCODE_TABLE[n >>> 18]!;
    out[o++] = ENCODE_TABLE[(n >>> 12) & 63]!;
    out[o++] = ENCODE_TABLE[(n >>> 6) & 63]!;
    out[o++] = ENCODE_TABLE[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out[o++] = ENCODE_TABLE[n >>> 18]!;
    out[o++] = ENCODE_TABLE[(n >>> 12) & 63]!;
    out[o++] = PAD;
    out[o++] = PAD;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out[o++] = ENCODE_TABLE[n >>> 18]!;
    out[o++] = ENCODE_TABLE[(n >>> 12) & 63]!;
    out[o++] = ENCODE_TABLE[(n >>> 6) & 63]!;
    out[o++] = PAD;
  }
  return latin1(out);
}

/**
 * Decodes canonical padded base64; returns null for anything else (wrong length, characters outside
 * the alphabet, misplaced padding, or non-zero bits hidden in the padding).
 */
export function decodeBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  if (text.length === 0) return new Uint8Array(0);
  const padding = text.charCodeAt(text.length - 1) === PAD ? (text.charCodeAt(text.length - 2) === PAD ? 2 : 1) : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  const fullQuads = padding === 0 ? text.length / 4 : text.length / 4 - 1;
  let o = 0;
  for (let q = 0; q < fullQuads; q++) {
    const p = q * 4;
    const a = sextet(text, p);
    const b = sextet(text, p + 1);
    const c = sextet(text, p + 2);
    const d = sextet(text, p + 3);
    // Valid sextets are < 64 and INVALID is 255, so one OR catches any bad character.
    if ((a | b | c | d) > 63) return null;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >>> 16;
    out[o++] = (n >>> 8) & 255;
    out[o++] = n & 255;
  }
  if (padding > 0) {
    const p = text.length - 4;
    const a = sextet(text, p);
    const b = sextet(text, p + 1);
    if ((a | b) > 63) return null;
    if (padding === 2) {
      if ((b & 15) !== 0) return null;
      out[o++] = (a << 2) | (b >>> 4);
    } else {
      const c = sextet(text, p + 2);
      if (c > 63 || (c & 3) !== 0) return null;
      const n = (a << 18) | (b << 12) | (c << 6);
      out[o++] = n >>> 16;
      out[o++] = (n >>> 8) & 255;
    }
  }
  return out;
}

function sextet(text: string, position: number): number {
  const code = text.charCodeAt(position);
  return code < 256 ? DECODE_TABLE[code]! : INVALID;
}

/** Bytes < 256 to a string, in chunks so huge values do not overflow the argument limit. */
function latin1(bytes: Uint8Array): string {
  const CHUNK = 0x8000;
  let s = '';
  for (let i = 0; i < bytes.length; i += CHUNK) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK) as unknown as number[]);
  }
  return s;
}
