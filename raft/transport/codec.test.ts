import t from 'tap';
import { Prng } from '../core/prng.ts';
import type { Entry, Message, MessageType } from '../core/types.ts';
import {
  FrameReader,
  decodeFrame,
  decodeFrames,
  encodeFrame,
  encodeMessages,
  encodeSnapChunkHeader,
} from './codec.ts';
import type { Frame } from './codec.ts';
import { TransportCodecError } from './errors.ts';

const BIG = 2 ** 53 - 1;

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

const entries: Entry[] = [
  { type: 'normal', index: 11, term: 3, data: new Uint8Array(0) },
  { type: 'normal', index: 12, term: 3, data: bytes(100) },
  { type: 'confChange', index: 13, term: 3, change: { type: 'addVoter', node: 'n4' } },
  { type: 'confChange', index: 14, term: 3, change: { type: 'removeNode', node: 'nœud-ünï' } },
  { type: 'confChange', index: 15, term: 3, change: { type: 'addLearner', node: '' } },
  { type: 'normal', index: BIG, term: BIG, data: bytes(3000, 7) },
];

// A Record over MessageType: the compiler insists on a sample of every message type.
const samples: Record<MessageType, Message[]> = {
  app: [
    { type: 'app', from: 'n1', to: 'n2', term: 3, index: 10, logTerm: 2, commit: 9, entries: [] },
    { type: 'app', from: 'n1', to: 'n2', term: 3, index: 10, logTerm: 2, commit: 9, entries },
    { type: 'app', from: 'n1', to: 'n2', term: 4, index: 0, logTerm: 0, commit: 0, entries: [{ type: 'normal', index: 1, term: 4, data: bytes(5 * 1024 * 1024, 3) }] },
  ],
  appResp: [
    { type: 'appResp', from: 'n2', to: 'n1', term: 3, index: 15, reject: false, rejectHint: 0, logTerm: 0 },
    { type: 'appResp', from: 'n2', to: 'n1', term: 3, index: 10, reject: true, rejectHint: 7, logTerm: 2 },
  ],
  vote: [{ type: 'vote', from: 'n3', to: 'n1', term: 5, index: 20, logTerm: 4, transfer: true }],
  preVote: [{ type: 'preVote', from: 'n3', to: 'n1', term: 5, index: 20, logTerm: 4, transfer: false }],
  voteResp: [{ type: 'voteResp', from: 'n1', to: 'n3', term: 5, reject: true }],
  preVoteResp: [{ type: 'preVoteResp', from: 'n1', to: 'n3', term: 5, reject: false }],
  heartbeat: [
    { type: 'heartbeat', from: 'n1', to: 'n2', term: 3, commit: 100, context: '' },
    { type: 'heartbeat', from: 'n1', to: 'n2', term: 3, commit: 100, context: 'read-ctx-1' },
  ],
  heartbeatResp: [{ type: 'heartbeatResp', from: 'n2', to: 'n1', term: 3, context: 'read-ctx-1' }],
  snap: [
    { type: 'snap', from: 'n1', to: 'n4', term: 6, snapshot: { meta: { index: 500, term: 6, confState: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } }, data: bytes(70_000) } },
    { type: 'snap', from: 'n1', to: 'n4', term: 6, snapshot: { meta: { index: 1, term: 1, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) } },
  ],
  timeoutNow: [{ type: 'timeoutNow', from: 'n1', to: 'n2', term: 9 }],
  readIndex: [{ type: 'readIndex', from: 'n2', to: 'n1', term: 9, context: 'ctx' }],
  readIndexResp: [{ type: 'readIndexResp', from: 'n1', to: 'n2', term: BIG, context: 'ctx', index: BIG }],
};
const allMessages = Object.values(samples).flat();
/** Everything but the 5 MiB append, for the tests that loop. */
const smallMessages = allMessages.filter((m) => !(m.type === 'app' && m.index === 0));

/** Frames compared as plain data (Buffer vs Uint8Array views are the same bytes). */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v.buffer, v.byteOffset, v.length).toString('base64') };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

t.test('every message type round-trips, one frame each and as a batch', async (t) => {
  for (const m of allMessages) {
    const frames = decodeFrames(encodeMessages([m]));
    t.equal(frames.length, 1);
    t.same(plain(frames[0]), plain({ kind: 'message', message: m }), `${m.type}`);
    t.same(plain(decodeFrame(encodeFrame({ kind: 'message', message: m }).subarray(4))), plain({ kind: 'message', message: m }));
  }
  const batch = decodeFrames(encodeMessages(allMessages));
  t.same(plain(batch.map((f) => (f.kind === 'message' ? f.message : null))), plain(allMessages));
  t.equal(encodeMessages([]).length, 0);
});

t.test('encoding is compact and carries entry data as raw bytes', async (t) => {
  const m: Message = { type: 'app', from: 'n1', to: 'n2', term: 3, index: 10, logTerm: 3, commit: 9, entries: [{ type: 'normal', index: 11, term: 3, data: bytes(100) }] };
  // 4 length + 1 kind + 1 type + 1 term + 3 from + 3 to + 3 (index logTerm commit) + 1 count + (1 type + 1 index + 1 term + 1 len + 100)
  t.equal(encodeMessages([m]).length, 121);
  t.ok(encodeMessages([m]).includes(Buffer.from(bytes(100))), 'data appears verbatim');
  t.equal(encodeMessages([{ type: 'heartbeat', from: 'n1', to: 'n2', term: 3, commit: 9, context: '' }]).length, 15);
});

t.test('every frame kind round-trips', async (t) => {
  const frames: Frame[] = [
    { kind: 'hello', hello: { id: 'n1', advertise: '127.0.0.11:8300', meta: { http: '127.0.0.11:8500', n: 3, nested: { a: [1, 'x'] } } } },
    { kind: 'hello', hello: { id: '', advertise: '[::1]:1', meta: {} } },
    { kind: 'request', id: 1, method: 'kv.apply', body: bytes(300) },
    { kind: 'request', id: BIG, method: '', body: new Uint8Array(0) },
    { kind: 'response', id: 7, body: bytes(10) },
    { kind: 'response', id: 8, body: new Uint8Array(0) },
    { kind: 'errorResponse', id: 9, message: 'not the leader', code: 'notLeader' },
    { kind: 'errorResponse', id: 10, message: 'boom ✗', code: undefined },
    { kind: 'snapBegin', stream: 3, from: 'n1', to: 'n2', term: 4, meta: { index: 99, term: 4, confState: { voters: ['n1', 'n2'], learners: [] } }, totalBytes: 5_000_000 },
    { kind: 'snapChunk', stream: 3, data: bytes(1000) },
    { kind: 'snapEnd', stream: 3 },
  ];
  for (const f of frames) t.same(plain(decodeFrames(encodeFrame(f))[0]), plain(f), f.kind);
  const chunk = bytes(777);
  t.same(Buffer.concat([encodeSnapChunkHeader(300, chunk.length), chunk]), encodeFrame({ kind: 'snapChunk', stream: 300, data: chunk }), 'chunk header + raw data is a chunk frame');
});

t.test('frames split at every byte boundary decode the same', async (t) => {
  const stream = Buffer.concat([
    encodeFrame({ kind: 'hello', hello: { id: 'n1', advertise: 'a:1', meta: { x: 1 } } }),
    encodeMessages(smallMessages),
    encodeFrame({ kind: 'response', id: 3, body: bytes(50) }),
  ]);
  const expected = plain(decodeFrames(stream));
  let splits = 0;
  for (let cut = 1; cut < stream.length; cut += cut < 200 ? 1 : 997) {
    const reader = new FrameReader();
    const got: Frame[] = [];
    const onFrame = (p: Buffer): void => {
      got.push(decodeFrame(Buffer.from(p)));
    };
    reader.push(stream.subarray(0, cut), onFrame);
    reader.push(stream.subarray(cut), onFrame);
    t.equal(reader.bufferedBytes(), 0);
    if (JSON.stringify(plain(got)) !== JSON.stringify(expected)) t.fail(`split at ${cut} differs`);
    splits++;
  }
  // One byte at a time as well.
  const reader = new FrameReader();
  let n = 0;
  for (let i = 0; i < 2000; i++) reader.push(stream.subarray(i, i + 1), () => n++);
  t.ok(splits > 100 && n > 0);
});

t.test('bad lengths are typed errors, before any allocation', async (t) => {
  const reader = new FrameReader(1024);
  t.throws(() => reader.push(Buffer.from([0, 0, 4, 1, 2]), () => {}), TransportCodecError, 'over the limit');
  t.throws(() => new FrameReader().push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1]), () => {}), TransportCodecError, '4 GiB frame');
  t.throws(() => new FrameReader().push(Buffer.from([0, 0, 0, 0]), () => {}), TransportCodecError, 'empty frame');
  t.throws(() => decodeFrames(encodeFrame({ kind: 'snapEnd', stream: 1 }).subarray(0, 5)), TransportCodecError, 'truncated');
  t.throws(() => decodeFrame(Buffer.from([99])), TransportCodecError, 'unknown kind');
});

t.test('refuses to encode what it cannot round-trip', async (t) => {
  const base = { type: 'heartbeat', from: 'a', to: 'b', context: '' } as const;
  t.throws(() => encodeMessages([{ ...base, term: -1, commit: 0 }]), RangeError);
  t.throws(() => encodeMessages([{ ...base, term: 1, commit: 1.5 }]), RangeError);
  t.throws(() => encodeMessages([{ ...base, term: 2 ** 53, commit: 0 }]), RangeError);
  t.throws(() => encodeMessages([{ type: 'nope' } as unknown as Message]), RangeError);
});

t.test('fuzz: random and mutated input throws TransportCodecError or decodes, never anything else', async (t) => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  t.comment(`fuzz seed ${seed} (FUZZ_SEED=${seed} replays it)`);
  const rng = new Prng(seed);
  const valid = [
    ...smallMessages.map((m) => encodeMessages([m])),
    encodeFrame({ kind: 'hello', hello: { id: 'n1', advertise: 'a:1', meta: { k: 'v' } } }),
    encodeFrame({ kind: 'errorResponse', id: 9, message: 'x', code: 'y' }),
    encodeFrame({ kind: 'snapBegin', stream: 3, from: 'n1', to: 'n2', term: 4, meta: { index: 9, term: 4, confState: { voters: ['n1'], learners: ['n2'] } }, totalBytes: 50 }),
    encodeFrame({ kind: 'request', id: 1, method: 'm', body: bytes(20) }),
  ];
  let decoded = 0;
  let rejected = 0;
  const feed = (input: Buffer): void => {
    const reader = new FrameReader(1024 * 1024);
    try {
      reader.push(input, (payload) => {
        decodeFrame(payload);
        decoded++;
      });
    } catch (err) {
      if (!(err instanceof TransportCodecError)) {
        t.fail(`seed ${seed}: ${String(err)} for input ${input.subarray(0, 64).toString('hex')}`);
        throw err;
      }
      rejected++;
    }
  };
  for (let i = 0; i < 20_000; i++) {
    const mode = rng.int(4);
    if (mode === 0) {
      // Pure noise, with a plausible small length prefix half of the time.
      const body = Buffer.from(bytes(1 + rng.int(200), rng.int(1 << 30)));
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(rng.chance(0.5) ? body.length : rng.int(2 ** 31), 0);
      feed(Buffer.concat([prefix, body]));
      continue;
    }
    const frame = Buffer.from(valid[rng.int(valid.length)]!);
    const flips = 1 + rng.int(4);
    for (let f = 0; f < flips; f++) {
      const pos = mode === 1 ? 4 + rng.int(Math.min(frame.length - 4, 40)) : rng.int(frame.length);
      frame[pos] = mode === 3 ? rng.int(256) : frame[pos]! ^ (1 << rng.int(8));
    }
    // Keep the length prefix consistent for most body mutations so the body decoder gets the input.
    if (mode === 1) frame.writeUInt32BE(frame.length - 4, 0);
    const cut = rng.chance(0.2) ? 4 + rng.int(frame.length - 4) : frame.length;
    const input = frame.subarray(0, cut);
    if (cut < frame.length) input.writeUInt32BE(cut - 4, 0);
    feed(input);
  }
  t.ok(decoded > 100, `${decoded} mutated frames still decoded`);
  t.ok(rejected > 1000, `${rejected} rejected`);
});
