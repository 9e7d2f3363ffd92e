// The wire layer: query decoding with its strict checks (drop, FORMERR, NOTIMP), the encoder, and
// a seeded fuzz of the whole pure path (decode → resolve → encode) with random and mutated packets.
// A failure prints the seed and case number; DNS_FUZZ_SEED=<seed> replays it.
import t from 'tap';
import { encodeCommand } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { Prng } from '../raft/core/prng.ts';
import { catalogTableView } from './catalog-view.ts';
import { dnsSettings } from './config.ts';
import { encodeForTransport, resolve } from './resolve.ts';
import { clientQuery, parseWire } from './test-support.ts';
import { decodeQuery, encodeResponse, ipv6Bytes, MAX_QUERY_BYTES, QTYPE, RCODE, type DnsResponse } from './wire.ts';

t.test('decodeQuery: a well-formed query, with and without EDNS0', async (t) => {
  const plain = decodeQuery(clientQuery('web.service.consul', QTYPE.SRV));
  t.same(plain, { kind: 'query', query: { id: 0x1234, recursionDesired: true, checkingDisabled: false, question: { name: 'web.service.consul', type: QTYPE.SRV, class: 1 }, edns: null } });
  const edns = decodeQuery(clientQuery('Web.Service.Consul.', QTYPE.A, { edns: 4096 }));
  t.match(edns, { kind: 'query', query: { question: { name: 'Web.Service.Consul' }, edns: { udpSize: 4096 } } });
  const small = decodeQuery(clientQuery('x.consul', QTYPE.A, { edns: 100 }));
  t.match(small, { kind: 'query', query: { edns: { udpSize: 512 } } }, 'EDNS0 sizes below 512 count as 512');
});

t.test('decodeQuery: what is dropped, FORMERR and NOTIMP', async (t) => {
  t.match(decodeQuery(Buffer.alloc(0)), { kind: 'drop' });
  t.match(decodeQuery(Buffer.alloc(11)), { kind: 'drop' }, 'shorter than a header');
  const response = clientQuery('x.consul', QTYPE.A);
  response[2] = response[2]! | 0x80;
  t.match(decodeQuery(response), { kind: 'drop' }, 'a response is never answered');
  t.match(decodeQuery(clientQuery('x.consul', QTYPE.A, { opcode: 2 })), { kind: 'reject', rcode: RCODE.NOTIMP, opcode: 2, id: 0x1234 });
  t.match(decodeQuery(clientQuery('x.consul', QTYPE.A, { opcode: 5 })), { kind: 'reject', rcode: RCODE.NOTIMP }, 'UPDATE');
  const twoQuestions = clientQuery('x.consul', QTYPE.A);
  twoQuestions.writeUInt16BE(2, 4);
  t.match(decodeQuery(twoQuestions), { kind: 'reject', rcode: RCODE.FORMERR });
  const noQuestion = Buffer.from(clientQuery('x.consul', QTYPE.A).subarray(0, 12));
  noQuestion.writeUInt16BE(0, 4);
  t.match(decodeQuery(noQuestion), { kind: 'reject', rcode: RCODE.FORMERR });
  const cut = clientQuery('web.service.consul', QTYPE.A).subarray(0, 20);
  t.match(decodeQuery(cut), { kind: 'reject', rcode: RCODE.FORMERR, id: 0x1234 }, 'a question cut short');
  const claimsAdditional = clientQuery('x.consul', QTYPE.A);
  claimsAdditional.writeUInt16BE(1, 10);
  t.match(decodeQuery(claimsAdditional), { kind: 'reject', rcode: RCODE.FORMERR }, 'a record the header promises but the message lacks');
  const loop = Buffer.concat([clientQuery('x.consul', QTYPE.A).subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  t.match(decodeQuery(loop), { kind: 'reject', rcode: RCODE.FORMERR }, 'a compression pointer to itself');
  const trailing = Buffer.concat([clientQuery('x.consul', QTYPE.A), Buffer.from([0])]);
  t.match(decodeQuery(trailing), { kind: 'reject', rcode: RCODE.FORMERR, reason: /after the last record/ });
  const withOpt = clientQuery('x.consul', QTYPE.A, { edns: 1232 });
  const twoOpts = Buffer.concat([withOpt, withOpt.subarray(withOpt.length - 11)]);
  twoOpts.writeUInt16BE(2, 10);
  t.match(decodeQuery(twoOpts), { kind: 'reject', rcode: RCODE.FORMERR, reason: /OPT/ }, 'two OPT records');
  const optAsAnswer = Buffer.from(withOpt);
  optAsAnswer.writeUInt16BE(1, 6);
  optAsAnswer.writeUInt16BE(0, 10);
  t.match(decodeQuery(optAsAnswer), { kind: 'reject', rcode: RCODE.FORMERR, reason: /OPT/ }, 'an OPT record in the answer section');
  const forward = Buffer.concat([clientQuery('x.consul', QTYPE.A).subarray(0, 12), Buffer.from([0xc0, 14, 0, 1, 0, 1, 0])]);
  t.match(decodeQuery(forward), { kind: 'reject', rcode: RCODE.FORMERR, reason: /backwards/ }, 'a forward pointer');
  const dotted = Buffer.concat([clientQuery('x.consul', QTYPE.A).subarray(0, 12), Buffer.from([3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1])]);
  t.match(decodeQuery(dotted), { kind: 'reject', rcode: RCODE.FORMERR, reason: /dot/ }, 'a label holding a dot');
  const pointed = Buffer.concat([clientQuery('x.consul', QTYPE.A).subarray(0, 12), Buffer.from([1, 0x61, 0, 0, 1, 0, 1])]);
  pointed.writeUInt16BE(1, 10);
  const pointedWithOpt = Buffer.concat([pointed, Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0])]);
  t.match(decodeQuery(pointedWithOpt), { kind: 'query', query: { question: { name: 'a' }, edns: { udpSize: 1024 } } });
  const oversized = Buffer.concat([clientQuery('x.consul', QTYPE.A), Buffer.alloc(MAX_QUERY_BYTES)]);
  t.match(decodeQuery(oversized), { kind: 'reject', rcode: RCODE.FORMERR }, 'oversized');
});

t.test('encodeResponse: compression, flags, IPv6 forms', async (t) => {
  const response: DnsResponse = {
    id: 7,
    opcode: 0,
    rcode: RCODE.NXDOMAIN,
    authoritative: true,
    recursionDesired: true,
    recursionAvailable: true,
    truncated: true,
    question: { name: 'a.b.consul', type: QTYPE.A, class: 1 },
    answers: [{ type: 'A', name: 'a.b.consul', ttl: 5, address: '1.2.3.4' }],
    authorities: [],
    additionals: [{ type: 'AAAA', name: 'x.b.consul', ttl: 0, address: '::ffff:10.0.0.1' }],
    edns: { udpSize: 1232 },
  };
  const bytes = encodeResponse(response);
  const p = parseWire(bytes);
  t.match(p.header, { id: 7, qr: 1, aa: 1, tc: 1, rd: 1, ra: 1, rcode: RCODE.NXDOMAIN });
  t.match(p.answers[0], { name: 'a.b.consul', address: '1.2.3.4', ttl: 5 });
  t.match(p.additionals[0], { name: 'x.b.consul', address: '::ffff:a00:1' });
  t.match(p.additionals[1], { type: QTYPE.OPT, class: 1232 });
  t.ok(bytes.includes(Buffer.from([0xc0, 12])), 'the answer name points at the question');
  t.same([...ipv6Bytes('2001:db8::1')], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  t.same([...ipv6Bytes('::')], new Array(16).fill(0));
  t.throws(() => ipv6Bytes('1::2::3'));
  t.throws(() => encodeResponse({ ...response, answers: [{ type: 'A', name: `${'x'.repeat(64)}.consul`, ttl: 0, address: '1.2.3.4' }] }), /63/);
});

t.test('fuzz: random and mutated packets never throw; every answer is a valid message within limits', async (t) => {
  const seed = Number(process.env.DNS_FUZZ_SEED ?? Date.now() % 1_000_000);
  t.comment(`fuzz seed ${seed} (replay: DNS_FUZZ_SEED=${seed} npx tap dns/wire.test.ts)`);
  const prng = new Prng(seed);
  const fsm = new KonsulFsm();
  for (let i = 1; i <= 12; i++) {
    fsm.apply(
      i,
      encodeCommand({
        type: 'catalogRegister',
        node: { Node: `n${i}`, ID: '', Address: i % 3 ? `10.0.0.${i}` : `fd00::${i}`, Datacenter: 'dc1', TaggedAddresses: {}, Meta: { m: `${i}` } },
        skipNodeUpdate: false,
        service: { ID: 'web', Service: 'web', Tags: ['t'], Address: '', Port: 80, Meta: {}, EnableTagOverride: false, Weights: { Passing: 1, Warning: 1 }, TaggedAddresses: {}, Dependencies: [] },
        checks: [],
      }),
    );
  }
  const view = catalogTableView(fsm.catalog, 'dc1');
  const settings = dnsSettings({});
  const names = ['web.service.consul', '_web._t.service.consul', 'n1.node.consul', 'consul', 'example.com', 't.web.service.dc1.consul', '0a000001.addr.consul'];
  const types = [1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 251, 252, 255, 0, 65535];
  const seeds = names.flatMap((n) => types.map((ty) => clientQuery(n, ty, prng.chance(0.5) ? { edns: prng.int(5000) } : {})));
  let answered = 0;
  let rejected = 0;
  let dropped = 0;
  for (let i = 0; i < 20_000; i++) {
    let packet: Buffer;
    const mode = prng.int(4);
    if (mode === 0) {
      packet = Buffer.from(Array.from({ length: prng.int(80) }, () => prng.int(256)));
    } else {
      packet = Buffer.from(seeds[prng.int(seeds.length)]!);
      const flips = 1 + prng.int(mode === 3 ? 12 : 3);
      for (let f = 0; f < flips; f++) {
        const at = prng.int(packet.length);
        if (mode === 1) packet[at] = prng.int(256);
        else if (mode === 2) packet = Buffer.concat([packet.subarray(0, at), packet.subarray(at + 1 + prng.int(4))]);
        else packet[at] = packet[at]! ^ (1 << prng.int(8));
      }
      // Keep most mutants looking like queries so that they get past the header checks.
      if (packet.length > 3 && prng.chance(0.8)) packet[2] = packet[2]! & 0x07;
    }
    let outcome: string;
    try {
      const decoded = decodeQuery(packet);
      if (decoded.kind === 'drop') {
        dropped++;
        continue;
      }
      if (decoded.kind === 'reject') {
        rejected++;
        continue;
      }
      // Differential check: dns2's decoder (written by others) reads the same question.
      const reference = parseWire(packet).questions[0];
      if (reference?.name !== decoded.query.question.name || reference.type !== decoded.query.question.type || reference.class !== decoded.query.question.class) {
        throw new Error(`dns2 reads the question as ${JSON.stringify(reference)}, Konsul as ${JSON.stringify(decoded.query.question)}`);
      }
      const resolution = resolve(decoded.query, { view, settings, nowSeconds: 1, random: () => prng.float() });
      if (resolution.kind === 'forward') continue;
      for (const transport of ['udp', 'tcp'] as const) {
        let bytes: Buffer;
        try {
          bytes = encodeForTransport(resolution.response, transport, settings).message;
        } catch (err) {
          // The server answers SERVFAIL when a question cannot be echoed (dns2 accepts names we cannot write).
          if ((err as Error).name === 'DnsEncodeError') continue;
          throw err;
        }
        if (transport === 'udp' && bytes.length > Math.max(512, decoded.query.edns?.udpSize ?? 512)) throw new Error(`UDP answer of ${bytes.length} bytes`);
        const reparsed = parseWire(bytes);
        if (reparsed.header.id !== decoded.query.id || reparsed.header.qr !== 1) throw new Error('answer header does not match');
      }
      answered++;
      outcome = 'ok';
    } catch (err) {
      outcome = `${(err as Error).stack}`;
    }
    if (outcome !== 'ok') {
      t.fail(`seed ${seed} case ${i} packet ${packet.toString('hex')}: ${outcome}`);
      return;
    }
  }
  t.comment(`answered ${answered}, rejected ${rejected}, dropped ${dropped}`);
  t.ok(answered > 1000 && rejected > 1000 && dropped > 100, 'the fuzz reaches every outcome');
});
