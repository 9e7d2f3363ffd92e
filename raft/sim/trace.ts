// The simulation's trace: every event is folded into a running hash (the per-seed fingerprint that
// proves determinism) and kept in a ring buffer of the most recent events for failure reports.
// Events are recorded as numbers and formatted only when printed, so tracing stays cheap.
import type { MessageType } from '../core/types.ts';
import { finish32, hashString, mix32 } from './hash.ts';

export const MESSAGE_TYPES: readonly MessageType[] = [
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'heartbeat',
  'heartbeatResp',
  'snap',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
];
const MESSAGE_TYPE_CODES = new Map<MessageType, number>(MESSAGE_TYPES.map((t, i) => [t, i]));

export function messageTypeCode(t: MessageType): number {
  return MESSAGE_TYPE_CODES.get(t)!;
}

/** For each kind of event, the names of its numeric fields; fields named `*node` hold node numbers, `type` a message type. */
const KINDS = {
  deliver: ['fromnode', 'type', 'term', 'index', 'extra'],
  drop: ['fromnode', 'type', 'term', 'index', 'why'],
  duplicate: ['fromnode', 'type', 'term', 'index'],
  role: ['role', 'term', 'leadnode'],
  persist: ['first', 'last', 'lastTerm'],
  hardState: ['term', 'votenode', 'commit'],
  apply: ['first', 'last'],
  snapInstall: ['index', 'term'],
  snapCreate: ['index', 'compactTo'],
  snapReport: ['tonode', 'ok'],
  unreachable: ['tonode'],
  crash: ['lostReady'],
  restart: ['incarnation', 'snapIndex', 'commit'],
  start: ['incarnation'],
  stop: [],
  partition: [],
  heal: [],
  propose: ['firstCmd', 'count', 'term', 'index'],
  proposeRejected: ['firstCmd', 'count'],
  ack: ['cmd', 'index'],
  abandoned: ['term', 'from', 'to'],
  read: ['read', 'key'],
  readState: ['read', 'index'],
  readServed: ['read', 'applied', 'valueIndex'],
  readFailed: ['read'],
  confChange: ['targetnode', 'term', 'index'],
  confChangeRejected: ['targetnode'],
  transfer: ['targetnode'],
  campaign: [],
  phase: [],
  violation: [],
} as const satisfies Record<string, readonly string[]>;

export type TraceKind = keyof typeof KINDS;
const KIND_NAMES = Object.keys(KINDS) as TraceKind[];
const KIND_CODES = new Map<TraceKind, number>(KIND_NAMES.map((k, i) => [k, i]));
const ROLES = ['follower', 'preCandidate', 'candidate', 'leader'] as const;
const FIELDS = 5;

export class Trace {
  private laneA = 0x1234567;
  private laneB = 0x7654321;
  /** Events recorded so far. */
  count = 0;
  private readonly capacity: number;
  private readonly ticks: Float64Array;
  private readonly kinds: Uint8Array;
  private readonly nodes: Int16Array;
  private readonly nums: Float64Array;
  private readonly texts: (string | undefined)[];
  private readonly sink: ((line: string) => void) | undefined;
  private readonly nodeName: (n: number) => string;

  constructor(capacity: number, nodeName: (n: number) => string, sink?: (line: string) => void) {
    this.capacity = Math.max(1, capacity);
    this.ticks = new Float64Array(this.capacity);
    this.kinds = new Uint8Array(this.capacity);
    this.nodes = new Int16Array(this.capacity);
    this.nums = new Float64Array(this.capacity * FIELDS);
    this.texts = new Array<string | undefined>(this.capacity);
    this.nodeName = nodeName;
    this.sink = sink;
  }

  /** Records one event. `node` is the node's number (-1 for none); `text` is for rare, descriptive events. */
  event(tick: number, kind: TraceKind, node: number, a = 0, b = 0, c = 0, d = 0, e = 0, text?: string): void {
    const code = KIND_CODES.get(kind)!;
    let h = mix32(this.laneA, tick);
    h = mix32(h, code);
    h = mix32(h, node);
    h = mix32(h, a);
    h = mix32(h, b);
    h = mix32(h, c);
    h = mix32(h, d);
    h = mix32(h, e);
    if (text !== undefined) h = hashString(h, text);
    this.laneA = h;
    this.laneB = mix32(this.laneB ^ h, this.count);
    const slot = this.count % this.capacity;
    this.count++;
    this.ticks[slot] = tick;
    this.kinds[slot] = code;
    this.nodes[slot] = node;
    const base = slot * FIELDS;
    this.nums[base] = a;
    this.nums[base + 1] = b;
    this.nums[base + 2] = c;
    this.nums[base + 3] = d;
    this.nums[base + 4] = e;
    this.texts[slot] = text;
    if (this.sink) this.sink(this.format(slot));
  }

  /** The fingerprint of everything recorded so far (16 hex digits). */
  hash(): string {
    const a = finish32(mix32(this.laneA, this.count));
    const b = finish32(mix32(this.laneB, this.count));
    return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
  }

  /** The last `n` events, oldest first, formatted. */
  tail(n: number): string[] {
    const k = Math.min(n, this.count, this.capacity);
    const out: string[] = [];
    for (let i = this.count - k; i < this.count; i++) out.push(this.format(i % this.capacity));
    return out;
  }

  private format(slot: number): string {
    const kind = KIND_NAMES[this.kinds[slot]!]!;
    const node = this.nodes[slot]!;
    const parts: string[] = [`t=${this.ticks[slot]}`, node >= 0 ? this.nodeName(node) : '--', kind];
    const names: readonly string[] = KINDS[kind];
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const v = this.nums[slot * FIELDS + i]!;
      if (name === 'type') parts.push(MESSAGE_TYPES[v] ?? `type${v}`);
      else if (name === 'role') parts.push(ROLES[v] ?? `role${v}`);
      else if (name.endsWith('node')) parts.push(`${name.slice(0, -4)}=${v >= 0 ? this.nodeName(v) : '-'}`);
      else parts.push(`${name}=${v}`);
    }
    const text = this.texts[slot];
    if (text !== undefined) parts.push(text);
    return parts.join(' ');
  }
}

export function roleCode(role: (typeof ROLES)[number]): number {
  return ROLES.indexOf(role);
}
