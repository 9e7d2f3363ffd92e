// DNS messages on the wire (RFC 1035, EDNS0 from RFC 6891): a strict decoder for queries, a
// byte-level encoder for answers (with name compression), and fitting an answer into a size limit
// the way Consul trims (whole answers dropped from the end, the additional section kept in step
// with the SRV records that remain).
//
// Why not dns2's codec (dns2 is still the tests' independent decoder and their upstream server):
// its encoder writes one array element per bit (1.4 ms for a 10-SRV answer, which would cap a
// server near 700 answers a second, and trimming encodes several times), and its decoder reads bit
// by bit and skips a record it cannot parse without saying so. See docs/adr/0012-dns-interface.md.
import { isIPv6 } from 'node:net';

export const QTYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export const CLASS_IN = 1;

/** The plain DNS limit over UDP, and the most any message can be (TCP's 16-bit length prefix). */
export const UDP_PLAIN_LIMIT_BYTES = 512;
export const MAX_MESSAGE_BYTES = 65535;
/**
 * The largest UDP payload Konsul will send whatever a client's EDNS0 advertises: a datagram's
 * 65535 bytes less IP and UDP headers (Consul's maxUDPDatagramSize).
 */
export const MAX_UDP_PAYLOAD_BYTES = 65535 - 68;
/** Queries longer than this are refused with FORMERR: a query is one question and an OPT record. */
export const MAX_QUERY_BYTES = 4096;

export type DnsRecord =
  | { readonly type: 'A'; readonly name: string; readonly ttl: number; readonly address: string }
  | { readonly type: 'AAAA'; readonly name: string; readonly ttl: number; readonly address: string }
  | { readonly type: 'CNAME'; readonly name: string; readonly ttl: number; readonly target: string }
  | { readonly type: 'NS'; readonly name: string; readonly ttl: number; readonly target: string }
  | {
      readonly type: 'SRV';
      readonly name: string;
      readonly ttl: number;
      readonly priority: number;
      readonly weight: number;
      readonly port: number;
      readonly target: string;
    }
  | {
      readonly type: 'SOA';
      readonly name: string;
      readonly ttl: number;
      readonly primary: string;
      readonly mailbox: string;
      readonly serial: number;
      readonly refresh: number;
      readonly retry: number;
      readonly expire: number;
      readonly minimum: number;
    }
  | { readonly type: 'TXT'; readonly name: string; readonly ttl: number; readonly texts: readonly string[] };

export interface DnsQuestion {
  /** As asked (case kept), without the trailing dot; '' is the root. */
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

export interface DnsQuery {
  readonly id: number;
  readonly recursionDesired: boolean;
  readonly checkingDisabled: boolean;
  readonly question: DnsQuestion;
  /** The requester's EDNS0 UDP payload size, or null without an OPT record. */
  readonly edns: { readonly udpSize: number } | null;
}

export interface DnsResponse {
  readonly id: number;
  readonly opcode: number;
  readonly rcode: number;
  readonly authoritative: boolean;
  readonly recursionDesired: boolean;
  readonly recursionAvailable: boolean;
  readonly truncated: boolean;
  readonly checkingDisabled?: boolean;
  readonly question: DnsQuestion | null;
  readonly answers: readonly DnsRecord[];
  readonly authorities: readonly DnsRecord[];
  readonly additionals: readonly DnsRecord[];
  /** An OPT record is added when the query had one (advertising this size). */
  readonly edns: { readonly udpSize: number } | null;
}

/** What to do with a datagram or TCP message. */
export type DecodedQuery =
  | { readonly kind: 'query'; readonly query: DnsQuery }
  /** Answer with just this rcode (FORMERR, NOTIMP), echoing the header's ID and opcode. */
  | { readonly kind: 'reject'; readonly id: number; readonly opcode: number; readonly recursionDesired: boolean; readonly rcode: number; readonly reason: string }
  /** Too short to have a header, or a response: answering could start a loop between servers. */
  | { readonly kind: 'drop'; readonly reason: string };

/**
 * Header checks first, as miekg/dns (Consul's DNS library) does in its default accept function:
 * responses are ignored, opcodes other than QUERY are NOTIMP, anything but exactly one question
 * (or more than one answer or authority record, or more than two additional ones) is FORMERR.
 * Then every byte is accounted for: the question, each record's header and RDATA within bounds,
 * at most one OPT record (with the root name), nothing after the last record.
 */
export function decodeQuery(message: Buffer): DecodedQuery {
  if (message.length < 12) return { kind: 'drop', reason: 'shorter than a DNS header' };
  const id = message.readUInt16BE(0);
  const flags = message.readUInt16BE(2);
  if (flags & 0x8000) return { kind: 'drop', reason: 'a response, not a query' };
  const opcode = (flags >> 11) & 0xf;
  const recursionDesired = (flags & 0x0100) !== 0;
  const reject = (rcode: number, reason: string): DecodedQuery => ({ kind: 'reject', id, opcode, recursionDesired, rcode, reason });
  if (opcode !== 0) return reject(RCODE.NOTIMP, `opcode ${opcode} is not implemented`);
  const qdcount = message.readUInt16BE(4);
  const ancount = message.readUInt16BE(6);
  const nscount = message.readUInt16BE(8);
  const arcount = message.readUInt16BE(10);
  if (qdcount !== 1) return reject(RCODE.FORMERR, `${qdcount} questions`);
  if (ancount > 1 || nscount > 1 || arcount > 2) return reject(RCODE.FORMERR, 'too many records in a query');
  if (message.length > MAX_QUERY_BYTES) return reject(RCODE.FORMERR, `query of ${message.length} bytes`);
  try {
    const reader = new QueryReader(message, 12);
    const name = reader.name();
    const question = { name, type: reader.u16(), class: reader.u16() };
    let edns: { udpSize: number } | null = null;
    for (let i = 0; i < ancount + nscount + arcount; i++) {
      const ownerIsRoot = reader.name() === '';
      const type = reader.u16();
      const cls = reader.u16();
      reader.skip(4);
      reader.skip(reader.u16());
      if (type === QTYPE.OPT) {
        if (i < ancount + nscount || !ownerIsRoot || edns !== null) throw new QueryFormatError('misplaced or repeated OPT record');
        // RFC 6891 6.2.5: a payload size below 512 is treated as 512.
        edns = { udpSize: Math.max(UDP_PLAIN_LIMIT_BYTES, cls) };
      }
    }
    if (reader.offset !== message.length) throw new QueryFormatError(`${message.length - reader.offset} bytes after the last record`);
    return {
      kind: 'query',
      query: { id, recursionDesired, checkingDisabled: (flags & 0x0010) !== 0, question, edns },
    };
  } catch (err) {
    if (err instanceof QueryFormatError) return reject(RCODE.FORMERR, err.message);
    throw err;
  }
}

class QueryFormatError extends Error {}

/** Bounds-checked reads over a query; every failure is a QueryFormatError. */
class QueryReader {
  constructor(
    private readonly message: Buffer,
    public offset: number,
  ) {}

  u16(): number {
    if (this.offset + 2 > this.message.length) throw new QueryFormatError('message ends inside a field');
    const v = this.message.readUInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  skip(bytes: number): void {
    if (this.offset + bytes > this.message.length) throw new QueryFormatError('message ends inside a record');
    this.offset += bytes;
  }

  /**
   * A domain name, labels joined by dots, without the trailing dot ('' for the root). Compression
   * pointers must point backwards (so they cannot loop); a name is at most 255 bytes on the wire.
   * A label holding a dot could not be told apart from two labels once joined: FORMERR.
   */
  name(): string {
    const labels: string[] = [];
    let at = this.offset;
    let resumeAt = -1;
    let wireLength = 1;
    for (;;) {
      if (at >= this.message.length) throw new QueryFormatError('message ends inside a name');
      const length = this.message[at]!;
      if ((length & 0xc0) === 0xc0) {
        if (at + 1 >= this.message.length) throw new QueryFormatError('message ends inside a name');
        const target = ((length & 0x3f) << 8) | this.message[at + 1]!;
        if (target >= at) throw new QueryFormatError('a compression pointer that does not point backwards');
        if (resumeAt === -1) resumeAt = at + 2;
        at = target;
        continue;
      }
      if (length & 0xc0) throw new QueryFormatError('reserved label type');
      if (length === 0) {
        this.offset = resumeAt === -1 ? at + 1 : resumeAt;
        return labels.join('.');
      }
      wireLength += length + 1;
      if (wireLength > 255) throw new QueryFormatError('name longer than 255 bytes');
      if (at + 1 + length > this.message.length) throw new QueryFormatError('message ends inside a label');
      const label = this.message.toString('latin1', at + 1, at + 1 + length);
      if (label.includes('.')) throw new QueryFormatError('a label containing a dot');
      labels.push(label);
      at += 1 + length;
    }
  }
}

/**
 * Whether `text` can be written as a domain name: no label over 63 bytes, none empty but a trailing
 * one, at most 255 bytes on the wire. Catalog data (node names, host-name addresses) is not
 * checked when registered, so the resolver leaves out a record it could not encode rather than
 * failing the whole answer.
 */
export function isEncodableName(text: string): boolean {
  const labels = text.endsWith('.') ? text.slice(0, -1).split('.') : text.split('.');
  let total = 1;
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) return false;
    total += label.length + 1;
  }
  return text !== '' && total <= 255;
}

export class DnsEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsEncodeError';
  }
}

/** The message would not fit in 65535 bytes (a TCP length prefix's limit). */
export class DnsMessageTooLargeError extends DnsEncodeError {
  constructor() {
    super('message larger than 65535 bytes');
  }
}

/** A byte writer with RFC 1035 4.1.4 name compression. */
class MessageWriter {
  private buffer = Buffer.allocUnsafe(512);
  length = 0;
  private readonly names = new Map<string, number>();

  private ensure(extra: number): void {
    // Checked on every write, not only when the buffer grows (it doubles past 64 KiB).
    if (this.length + extra > MAX_MESSAGE_BYTES) throw new DnsMessageTooLargeError();
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buffer[this.length++] = v & 0xff;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buffer.writeUInt16BE(v & 0xffff, this.length);
    this.length += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buffer.writeUInt32BE(v >>> 0, this.length);
    this.length += 4;
  }

  bytes(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buffer, this.length);
    this.length += b.length;
  }

  patch16(at: number, v: number): void {
    this.buffer.writeUInt16BE(v, at);
  }

  /**
   * Labels are bytes (latin1, as queries are decoded); a suffix written before becomes a pointer.
   * `compress` false writes every label (SRV targets, RFC 2782) but still lets later names point
   * into them, so the additional records' owner names cost two bytes each.
   */
  name(text: string, compress = true): void {
    // Most names repeat one written before (answers' owners are the question, additional records'
    // owners the SRV targets): one lookup, no splitting. A name found was validated when written.
    if (compress) {
      const whole = this.names.get(text.toLowerCase());
      if (whole !== undefined) {
        this.u16(0xc000 | whole);
        return;
      }
    }
    const labels = text.split('.').filter((l) => l !== '');
    let total = 1;
    for (const label of labels) {
      if (label.length > 63) throw new DnsEncodeError(`label longer than 63 bytes in "${text}"`);
      total += label.length + 1;
    }
    if (total > 255) throw new DnsEncodeError(`name longer than 255 bytes: "${text}"`);
    let suffix = labels.join('.').toLowerCase();
    for (let i = 0; i < labels.length; i++) {
      if (i > 0) suffix = suffix.slice(labels[i - 1]!.length + 1);
      const pointer = compress ? this.names.get(suffix) : undefined;
      if (pointer !== undefined) {
        this.u16(0xc000 | pointer);
        return;
      }
      if (this.length < 0x4000 && !this.names.has(suffix)) this.names.set(suffix, this.length);
      this.label(labels[i]!);
    }
    this.u8(0);
  }

  label(label: string): void {
    this.ensure(1 + label.length);
    this.buffer[this.length] = label.length;
    this.buffer.write(label, this.length + 1, 'latin1');
    this.length += 1 + label.length;
  }

  result(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}

/** Dotted-quad IPv4 text as 4 bytes, parsed by hand (this runs for every A record written). */
function ipv4Bytes(address: string): Buffer {
  const out = Buffer.allocUnsafe(4);
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= address.length; i++) {
    const c = i < address.length ? address.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || part > 3 || value > 255) throw new DnsEncodeError(`not an IPv4 address: ${address}`);
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && digits < 3) {
      value = value * 10 + (c - 0x30);
      digits++;
    } else {
      throw new DnsEncodeError(`not an IPv4 address: ${address}`);
    }
  }
  if (part !== 4) throw new DnsEncodeError(`not an IPv4 address: ${address}`);
  return out;
}

/** An IPv6 address in any RFC 4291 text form (embedded IPv4 included) as 16 bytes. */
export function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new DnsEncodeError(`not an IPv6 address: ${address}`);
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipv4Bytes(v4[1]!);
    text = `${text.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const [head, tail] = text.split('::') as [string, string | undefined];
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? before : [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(g, i * 2));
  return out;
}

function recordType(record: DnsRecord): number {
  return QTYPE[record.type];
}

function writeRecord(w: MessageWriter, record: DnsRecord): void {
  w.name(record.name);
  w.u16(recordType(record));
  w.u16(CLASS_IN);
  w.u32(Math.min(record.ttl, 0x7fffffff));
  const lengthAt = w.length;
  w.u16(0);
  const start = w.length;
  switch (record.type) {
    case 'A':
      w.bytes(ipv4Bytes(record.address));
      break;
    case 'AAAA':
      w.bytes(ipv6Bytes(record.address));
      break;
    case 'CNAME':
    case 'NS':
      w.name(record.target);
      break;
    case 'SRV':
      w.u16(record.priority);
      w.u16(record.weight);
      w.u16(record.port);
      // RFC 2782: the target is not compressed.
      w.name(record.target, false);
      break;
    case 'SOA':
      w.name(record.primary);
      w.name(record.mailbox);
      w.u32(record.serial);
      w.u32(record.refresh);
      w.u32(record.retry);
      w.u32(record.expire);
      w.u32(record.minimum);
      break;
    case 'TXT':
      for (const text of record.texts) {
        // A character-string is at most 255 bytes: longer texts are split (RFC 7208 3.3 does the same).
        const bytes = Buffer.from(text, 'utf8');
        for (let i = 0; i === 0 || i < bytes.length; i += 255) {
          const chunk = bytes.subarray(i, i + 255);
          w.u8(chunk.length);
          w.bytes(chunk);
        }
      }
      break;
  }
  w.patch16(lengthAt, w.length - start);
}

export function encodeResponse(response: DnsResponse): Buffer {
  const w = new MessageWriter();
  w.u16(response.id);
  let flags = 0x8000 | ((response.opcode & 0xf) << 11) | (response.rcode & 0xf);
  if (response.authoritative) flags |= 0x0400;
  if (response.truncated) flags |= 0x0200;
  if (response.recursionDesired) flags |= 0x0100;
  if (response.recursionAvailable) flags |= 0x0080;
  if (response.checkingDisabled) flags |= 0x0010;
  w.u16(flags);
  w.u16(response.question ? 1 : 0);
  w.u16(response.answers.length);
  w.u16(response.authorities.length);
  w.u16(response.additionals.length + (response.edns ? 1 : 0));
  if (response.question) {
    w.name(response.question.name);
    w.u16(response.question.type);
    w.u16(response.question.class);
  }
  for (const r of response.answers) writeRecord(w, r);
  for (const r of response.authorities) writeRecord(w, r);
  for (const r of response.additionals) writeRecord(w, r);
  if (response.edns) {
    // OPT (RFC 6891 6.1.2): root name, class = our UDP payload size, TTL = rcode high bits/version/flags.
    w.u8(0);
    w.u16(QTYPE.OPT);
    w.u16(response.edns.udpSize);
    w.u32(0);
    w.u16(0);
  }
  return w.result();
}

/** A reply carrying only an rcode (FORMERR, NOTIMP, SERVFAIL, REFUSED). */
export function rcodeOnlyResponse(id: number, opcode: number, recursionDesired: boolean, rcode: number, question: DnsQuestion | null = null): DnsResponse {
  return {
    id,
    opcode,
    rcode,
    authoritative: false,
    recursionDesired,
    recursionAvailable: false,
    truncated: false,
    question,
    answers: [],
    authorities: [],
    additionals: [],
    edns: null,
  };
}

/** The additional records that back the SRV answers still present (Consul's syncExtra). */
function syncAdditionals(answers: readonly DnsRecord[], additionals: readonly DnsRecord[]): DnsRecord[] {
  const targets = new Set<string>();
  for (const a of answers) if (a.type === 'SRV') targets.add(a.target.toLowerCase());
  return additionals.filter((r) => targets.has(r.name.toLowerCase()));
}

export interface FittedResponse {
  readonly message: Buffer;
  /** Answers had to be left out. */
  readonly trimmed: boolean;
  readonly response: DnsResponse;
}

/**
 * The largest prefix of the answers (with their additional records) whose encoding fits in
 * `maxBytes`. The authority section and additional records that back no kept SRV answer (a node's
 * metadata TXT, NS glue) are optional (RFC 2181 9) and go first; `trimmed` (the TC bit) is set only
 * when answers had to be left out, as Consul's trimUDPResponse does. Never returns more than
 * `maxBytes`: if not even an empty answer fits, the reply is the header and question only.
 * `maxAnswers` cuts the answer list before measuring (Consul's udp_answer_limit).
 */
export function fitResponse(response: DnsResponse, maxBytes: number, maxAnswers = Infinity): FittedResponse {
  const hasSrv = response.answers.some((r) => r.type === 'SRV');
  const withAnswers = (n: number, authorities: readonly DnsRecord[]): DnsResponse => {
    const answers = response.answers.slice(0, n);
    return { ...response, answers, authorities, additionals: hasSrv ? syncAdditionals(answers, response.additionals) : response.additionals };
  };
  // Only the records every kept answer needs: SRV targets' addresses, nothing else.
  const essential = (n: number): DnsResponse => {
    const answers = response.answers.slice(0, n);
    return { ...response, answers, authorities: [], additionals: hasSrv ? syncAdditionals(answers, response.additionals) : [] };
  };
  let current: DnsResponse = response;
  if (response.answers.length > maxAnswers) current = withAnswers(maxAnswers, response.authorities);
  const wanted = current.answers.length;
  // Too large for any message (a service with thousands of instances): does not fit, like any other size.
  const tryEncode = (r: DnsResponse): Buffer | null => {
    try {
      return encodeResponse(r);
    } catch (err) {
      if (err instanceof DnsMessageTooLargeError) return null;
      throw err;
    }
  };
  const fits = (m: Buffer | null): m is Buffer => m !== null && m.length <= maxBytes;
  const result = (message: Buffer, fitted: DnsResponse): FittedResponse => ({
    message,
    trimmed: fitted.answers.length < response.answers.length || (fitted.question === null && response.question !== null),
    response: fitted,
  });
  let message = tryEncode(current);
  if (fits(message)) return result(message, current);
  const allAnswers = essential(wanted);
  message = tryEncode(allAnswers);
  if (fits(message)) return result(message, allAnswers);
  // Binary search over the number of answers kept; a record takes at least 12 bytes (a compressed
  // owner name and the fixed fields), which bounds the search for a small limit and a long list.
  let low = 0;
  let high = Math.min(wanted - 1, Math.floor((maxBytes - 12) / 12));
  let best: { message: Buffer; response: DnsResponse } | null = null;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const candidate = essential(mid);
    const encoded = tryEncode(candidate);
    if (fits(encoded)) {
      best = { message: encoded, response: candidate };
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  if (best !== null && best.response.answers.length > 0) return result(best.message, best.response);
  // Not one answer fits with its additional records: drop the additional section too.
  const bare: DnsResponse = { ...current, answers: [], authorities: [], additionals: [] };
  message = tryEncode(bare);
  if (fits(message)) return result(message, bare);
  const headerOnly: DnsResponse = { ...bare, question: null, edns: null };
  return result(encodeResponse(headerOnly), headerOnly);
}
