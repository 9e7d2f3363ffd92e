// Bad input against a real server process over raw sockets: each kind of malformed message gets
// its RCODE or is dropped, then thousands of random and mutated packets (seeded: DNS_FUZZ_SEED
// replays a run) over UDP and TCP, after which the process must still be up and answering.
import { connect } from 'node:net';
import t from 'tap';
import { Prng } from '../raft/core/prng.ts';
import { removeDir, startServer, type ServerProcess } from '../test/kit/server-process.ts';
import { clientQuery, dig, framed, parseWire, tcpExchange, udpExchange } from './test-support.ts';
import { QTYPE, RCODE } from './wire.ts';

let server: ServerProcess;
let port: number;

t.before(async () => {
  server = await startServer({ node: 'dns-fuzz' });
  port = server.dnsAddress!.port;
  const res = await fetch(`${server.url}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({ Node: 'f1', Address: '10.8.0.1', Service: { ID: 'web', Service: 'web', Port: 80 } }),
  });
  if (res.status !== 200) throw new Error(await res.text());
});

t.teardown(async () => {
  if (!server) return;
  const code = await server.stop();
  removeDir(server.dataDir);
  if (code !== 0) throw new Error(`konsul exited with ${code}:\n${server.output()}`);
});

const rcodeOf = (reply: Buffer) => reply[3]! & 0x0f;

t.test('UDP: dropped, FORMERR and NOTIMP, each echoing the ID', async (t) => {
  t.equal(await udpExchange(port, Buffer.from([1, 2, 3]), 500), null, 'shorter than a header: dropped');
  const response = clientQuery('web.service.consul', QTYPE.A, { id: 7 });
  response[2] = response[2]! | 0x80;
  t.equal(await udpExchange(port, response, 500), null, 'a response: dropped');
  const garbage = Buffer.concat([Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]), Buffer.from([0x3f, 0x41])]);
  const formerr = await udpExchange(port, garbage);
  t.ok(formerr, 'a cut question is answered');
  t.equal(formerr!.readUInt16BE(0), 0xabcd);
  t.equal(rcodeOf(formerr!), RCODE.FORMERR);
  t.equal(formerr![2]! & 0x80, 0x80, 'QR set');
  const notify = await udpExchange(port, clientQuery('consul', QTYPE.SOA, { id: 9, opcode: 4 }));
  t.equal(rcodeOf(notify!), RCODE.NOTIMP, 'NOTIFY');
  const twoQuestions = clientQuery('web.service.consul', QTYPE.A, { id: 10 });
  twoQuestions.writeUInt16BE(2, 4);
  t.equal(rcodeOf((await udpExchange(port, twoQuestions))!), RCODE.FORMERR);
  const oversized = Buffer.concat([clientQuery('web.service.consul', QTYPE.A, { id: 11 }), Buffer.alloc(6000, 0x41)]);
  t.equal(rcodeOf((await udpExchange(port, oversized))!), RCODE.FORMERR, 'an oversized query');
});

t.test('TCP: FORMERR, pipelined answers in order, zero length and truncated frames close the connection', async (t) => {
  const bad = await tcpExchange(port, framed(Buffer.from([0, 5, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff])));
  t.equal(bad.messages.length, 1);
  t.equal(rcodeOf(bad.messages[0]!), RCODE.FORMERR);
  const pipelined = await tcpExchange(
    port,
    Buffer.concat([framed(clientQuery('web.service.consul', QTYPE.A, { id: 1 })), framed(clientQuery('nope.service.consul', QTYPE.A, { id: 2 })), framed(clientQuery('f1.node.consul', QTYPE.A, { id: 3 }))]),
    { endAfterWrite: true },
  );
  t.same(
    pipelined.messages.map((m) => [m.readUInt16BE(0), rcodeOf(m)]),
    [
      [1, RCODE.NOERROR],
      [2, RCODE.NXDOMAIN],
      [3, RCODE.NOERROR],
    ],
  );
  t.same(parseWire(pipelined.messages[0]!).answers.map((a) => a.address), ['10.8.0.1']);
  t.ok(pipelined.closedByServer, 'the server closes after the client half-closes and every answer is out');
  const zero = await tcpExchange(port, Buffer.from([0, 0]), { waitMs: 2000 });
  t.ok(zero.closedByServer);
  const cut = await tcpExchange(port, Buffer.from([0, 40, 1, 2, 3]), { waitMs: 2000, endAfterWrite: true });
  t.ok(cut.closedByServer);
  t.equal(cut.messages.length, 0);
});

t.test('TCP: a message trickling in a byte at a time is cut off after the read timeout (2 s), not held while the idle timer resets', async (t) => {
  // Regression: each byte reset the 10 s idle timer, so a client sending one every few seconds held a connection slot forever.
  const started = Date.now();
  const closedAfterMs = await new Promise<number | null>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    // A 40-byte message announced, then one byte every 300 ms (complete only after 12 s).
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(Buffer.from([0x41]));
    }, 300);
    const giveUp = setTimeout(() => {
      clearInterval(drip);
      socket.destroy();
      resolve(null);
    }, 6000);
    socket.on('connect', () => socket.write(Buffer.from([0, 40])));
    socket.on('close', () => {
      clearInterval(drip);
      clearTimeout(giveUp);
      resolve(Date.now() - started);
    });
    socket.on('error', () => undefined);
  });
  t.not(closedAfterMs, null, 'the server closed the connection');
  t.ok(closedAfterMs! >= 1500 && closedAfterMs! < 4000, `closed after ${closedAfterMs} ms`);
  // A client that pipelines queries split across writes at arbitrary points is not cut off.
  const queries = Buffer.concat(Array.from({ length: 12 }, (_, i) => framed(clientQuery('web.service.consul', QTYPE.A, { id: 100 + i }))));
  const ids = await new Promise<number[]>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const got: number[] = [];
    let received = Buffer.alloc(0);
    let offset = 0;
    const step = Math.ceil(queries.length / 12) + 3; // never on a message boundary for long
    const drip = setInterval(() => {
      socket.write(queries.subarray(offset, offset + step));
      offset += step;
      if (offset >= queries.length) clearInterval(drip);
    }, 250);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        got.push(received.readUInt16BE(2));
        received = received.subarray(2 + received.readUInt16BE(0));
      }
      if (got.length === 12) socket.destroy();
    });
    socket.on('close', () => {
      clearInterval(drip);
      resolve(got);
    });
    socket.on('error', () => undefined);
  });
  t.same(ids, Array.from({ length: 12 }, (_, i) => 100 + i), 'all twelve answered over about 3 s');
});

t.test('fuzz over UDP and TCP: the server stays up and answers correctly afterwards', async (t) => {
  const seed = Number(process.env.DNS_FUZZ_SEED ?? Date.now() % 1_000_000);
  t.comment(`fuzz seed ${seed} (replay: DNS_FUZZ_SEED=${seed} npx tap dns/malformed.int.test.ts)`);
  const prng = new Prng(seed);
  const seeds = [
    clientQuery('web.service.consul', QTYPE.SRV),
    clientQuery('web.service.consul', QTYPE.A, { edns: 4096 }),
    clientQuery('f1.node.dc1.consul', QTYPE.ANY),
    clientQuery('consul', QTYPE.SOA),
    clientQuery('_web._tcp.service.consul', QTYPE.SRV, { edns: 512 }),
    clientQuery('www.example.com', QTYPE.A),
  ];
  const mutate = (): Buffer => {
    if (prng.chance(0.25)) return Buffer.from(Array.from({ length: prng.int(300) }, () => prng.int(256)));
    const packet = Buffer.from(seeds[prng.int(seeds.length)]!);
    for (let f = 1 + prng.int(6); f > 0; f--) packet[prng.int(packet.length)] = prng.int(256);
    if (prng.chance(0.7)) packet[2] = packet[2]! & 0x07;
    return prng.chance(0.2) ? packet.subarray(0, prng.int(packet.length)) : packet;
  };
  let replies = 0;
  const batch = 100;
  for (let i = 0; i < 3000; i += batch) {
    const results = await Promise.all(Array.from({ length: batch }, () => udpExchange(port, mutate(), 300)));
    for (const reply of results) {
      if (reply === null) continue;
      replies++;
      // Every reply is a response to the query's ID and never larger than plain UDP allows.
      if ((reply[2]! & 0x80) === 0 || reply.length > 4096) t.fail(`seed ${seed}: bad reply ${reply.toString('hex')}`);
    }
  }
  for (let i = 0; i < 40; i++) {
    const frames = Buffer.concat(Array.from({ length: 1 + prng.int(5) }, () => framed(mutate())));
    await tcpExchange(port, prng.chance(0.3) ? frames.subarray(0, prng.int(frames.length)) : frames, { waitMs: 200, endAfterWrite: prng.chance(0.5) });
  }
  t.ok(replies > 500, `${replies} UDP replies to 3000 packets`);
  t.equal(server.child.exitCode, null, 'the process is still running');
  const after = await dig(port, ['web.service.consul', 'SRV']);
  t.equal(after.status, 'NOERROR');
  t.same(after.answer, [['web.service.consul.', '0', 'IN', 'SRV', '1', '1', '80', 'f1.node.dc1.consul.']]);
  const health = await fetch(`${server.url}/v1/status/leader`);
  t.equal(health.status, 200, 'the HTTP API is unaffected');
});
