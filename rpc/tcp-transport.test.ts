// TcpTransport over real loopback sockets. Every test starts its own transports on ephemeral ports
// and stops them in teardown; waits are bounded.
import net from 'node:net';
import t, { type Test } from 'tap';
import type { Message, MsgSnap } from '../raft/core/types.ts';
import { encodeFrame } from '../raft/transport/codec.ts';
import { TcpTransport, TransportCodecError, TransportError } from './tcp-transport.ts';
import type { AddressBook, TestNode } from './test-helpers.ts';
import { app, heartbeat, startNode, waitUntil } from './test-helpers.ts';

function stopAll(t: Test, nodes: TestNode[]): void {
  t.teardown(() => Promise.all(nodes.map((n) => n.transport.stop())));
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function expectTransportError(t: Test, p: Promise<unknown>, codes: string[], what: string): Promise<TransportError | undefined> {
  try {
    await p;
    t.fail(`${what}: resolved, expected ${codes.join('/')}`);
  } catch (err) {
    if (err instanceof TransportError && codes.includes(err.code)) {
      t.pass(`${what}: ${err.code}`);
      return err;
    }
    t.fail(`${what}: expected TransportError ${codes.join('/')}, got ${String(err)}`);
  }
  return undefined;
}

t.test('three transports exchange every kind of message, in order, with hellos', async (t) => {
  const book: AddressBook = new Map();
  const nodes = [await startNode('n1', book), await startNode('n2', book), await startNode('n3', book)];
  stopAll(t, nodes);
  const sent = new Map<string, Message[]>();
  for (const from of nodes) {
    const batch: Message[] = [];
    for (const to of nodes) {
      if (to === from) continue;
      batch.push(
        app(from.id, to.id, 5, bytes(100, 1)),
        { type: 'app', from: from.id, to: to.id, term: 2, index: 6, logTerm: 1, commit: 5, entries: [] },
        { type: 'app', from: from.id, to: to.id, term: 2, index: 6, logTerm: 1, commit: 5, entries: [{ type: 'confChange', index: 7, term: 2, change: { type: 'addLearner', node: 'n9' } }] },
        { type: 'appResp', from: from.id, to: to.id, term: 2, index: 7, reject: true, rejectHint: 3, logTerm: 1 },
        { type: 'preVote', from: from.id, to: to.id, term: 3, index: 7, logTerm: 2, transfer: false },
        { type: 'vote', from: from.id, to: to.id, term: 3, index: 7, logTerm: 2, transfer: true },
        { type: 'voteResp', from: from.id, to: to.id, term: 3, reject: false },
        { type: 'preVoteResp', from: from.id, to: to.id, term: 3, reject: true },
        heartbeat(from.id, to.id, 7, 'ctx'),
        { type: 'heartbeatResp', from: from.id, to: to.id, term: 3, context: 'ctx' },
        { type: 'timeoutNow', from: from.id, to: to.id, term: 3 },
        { type: 'readIndex', from: from.id, to: to.id, term: 3, context: 'r1' },
        { type: 'readIndexResp', from: from.id, to: to.id, term: 3, context: 'r1', index: 7 },
      );
    }
    sent.set(from.id, batch);
    from.transport.send(batch);
  }
  const perReceiver = 2 * 13;
  await waitUntil(() => nodes.every((n) => n.received.length === perReceiver), 5000, 'all messages');
  for (const to of nodes) {
    for (const from of nodes) {
      if (from === to) continue;
      const expected = sent.get(from.id)!.filter((m) => m.to === to.id);
      const got = to.received.filter((m) => m.from === from.id);
      t.same(got, expected, `${from.id} → ${to.id} in order`);
    }
  }
  await waitUntil(() => nodes.every((n) => n.hellos.length >= 4), 2000, 'hellos');
  const n1Hellos = nodes[0]!.hellos;
  t.same(new Set(n1Hellos.map((h) => h.id)), new Set(['n2', 'n3']), 'n1 met n2 and n3 (both directions)');
  t.same(n1Hellos.find((h) => h.id === 'n2')?.meta, { name: 'n2' }, 'hello meta');
  t.equal(n1Hellos.find((h) => h.id === 'n2')?.advertise, nodes[1]!.address, 'advertise defaults to the bound address');
  t.same(nodes.flatMap((n) => n.errors), [], 'no errors');
  t.same(nodes.flatMap((n) => n.unreachable), [], 'nobody unreachable');
});

t.test('requests: answers, remote errors with code, timeouts, aborts, unknown peers', async (t) => {
  const book: AddressBook = new Map();
  const server = await startNode('srv', book, {
    onRequest: async (from, method, body) => {
      switch (method) {
        case 'echo':
          return body;
        case 'whoami':
          return Buffer.from(from.id);
        case 'fail':
          throw Object.assign(new Error('No cluster leader'), { code: 'noLeader' });
        case 'failPlain':
          throw new Error('plain failure');
        case 'failNumberCode':
          throw Object.assign(new Error('numeric'), { code: 42 });
        case 'throwSync':
          return (() => {
            throw new Error('sync throw');
          })();
        case 'never':
          return new Promise<Uint8Array>(() => {});
        default:
          throw new Error('unknown');
      }
    },
  });
  const client = await startNode('cli', book);
  stopAll(t, [server, client]);

  const body = bytes(10_000, 5);
  const res = await client.transport.request(server.address, 'echo', body);
  t.same(Buffer.from(res.body), Buffer.from(body), 'echo');
  t.equal(res.peer.id, 'srv', 'the responder\'s hello comes with the answer');
  t.same(res.peer.meta, { name: 'srv' });
  t.equal(Buffer.from(await client.transport.requestPeer('srv', 'whoami', new Uint8Array(0))).toString(), 'cli', 'the handler sees the caller\'s hello');
  t.equal((await client.transport.request(server.address, 'echo', new Uint8Array(0))).body.length, 0, 'empty body');

  // 64 in flight on one connection, answered out of order is fine, each matched by id.
  const many = await Promise.all(Array.from({ length: 64 }, (_, i) => client.transport.requestPeer('srv', 'echo', Buffer.from(`m${i}`))));
  t.same(many.map((b) => Buffer.from(b).toString()), Array.from({ length: 64 }, (_, i) => `m${i}`), 'pipelined requests matched');

  const remote = await expectTransportError(t, client.transport.request(server.address, 'fail', new Uint8Array(0)), ['remote'], 'remote error');
  t.equal(remote?.message, 'No cluster leader');
  t.equal(remote?.remoteCode, 'noLeader');
  const plain = await expectTransportError(t, client.transport.request(server.address, 'failPlain', new Uint8Array(0)), ['remote'], 'remote error without code');
  t.equal(plain?.message, 'plain failure');
  t.equal(plain?.remoteCode, undefined);
  t.equal((await expectTransportError(t, client.transport.request(server.address, 'failNumberCode', new Uint8Array(0)), ['remote'], 'numeric code'))?.remoteCode, undefined, 'only string codes travel');
  t.equal((await expectTransportError(t, client.transport.request(server.address, 'throwSync', new Uint8Array(0)), ['remote'], 'sync throw'))?.message, 'sync throw');

  const started = performance.now();
  await expectTransportError(t, client.transport.request(server.address, 'never', new Uint8Array(0), { timeoutMs: 100 }), ['timeout'], 'timeout');
  t.ok(performance.now() - started < 1000, 'timed out on time');

  const ac = new AbortController();
  const aborted = client.transport.request(server.address, 'never', new Uint8Array(0), { signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  await expectTransportError(t, aborted, ['aborted'], 'abort');
  await expectTransportError(t, client.transport.request(server.address, 'echo', new Uint8Array(0), { signal: AbortSignal.abort() }), ['aborted'], 'already aborted');

  await expectTransportError(t, client.transport.requestPeer('nobody', 'echo', new Uint8Array(0)), ['unreachable'], 'unknown id');
  await expectTransportError(t, client.transport.request('not an address', 'echo', new Uint8Array(0)), ['unreachable'], 'bad address');
  const dead = `127.0.0.1:${await closedPort()}`;
  const t0 = performance.now();
  await expectTransportError(t, client.transport.request(dead, 'echo', new Uint8Array(0)), ['unreachable'], 'closed port');
  await expectTransportError(t, client.transport.request(dead, 'echo', new Uint8Array(0)), ['unreachable'], 'closed port in backoff');
  t.ok(performance.now() - t0 < 1000, 'unreachable fails fast');
  // The connection still works after all that.
  t.equal((await client.transport.request(server.address, 'echo', Buffer.from('ok'))).body.length, 2);
  t.same(server.errors, [], 'server saw no protocol errors');
});

t.test('a request in flight when the server stops fails with connectionLost', async (t) => {
  const book: AddressBook = new Map();
  let serverNode: TestNode | null = null;
  const server = await startNode('srv', book, {
    onRequest: async () => {
      void serverNode!.transport.stop();
      return new Promise<Uint8Array>(() => {});
    },
  });
  serverNode = server;
  const client = await startNode('cli', book);
  stopAll(t, [server, client]);
  await expectTransportError(t, client.transport.requestPeer('srv', 'anything', new Uint8Array(0), { timeoutMs: 5000 }), ['connectionLost'], 'server stopped mid-request');
  await expectTransportError(t, server.transport.request(client.address, 'echo', new Uint8Array(0)), ['stopped'], 'a stopped transport refuses requests');
  server.transport.send([heartbeat('srv', 'cli')]); // no-op, no throw
});

/** Median and worst of delivery times; the machine running the tests may be busy, so one slow turn is tolerated. */
function checkLatencies(t: Test, latencies: number[], what: string): void {
  const sorted = [...latencies].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const worst = sorted.at(-1)!;
  t.ok(median < 100, `${what}: median delivery ${median.toFixed(1)} ms (< 100 ms)`);
  // A dead or stuck peer would cost a dial timeout (5 s) or a backoff step, not a few ms.
  t.ok(worst < 500, `${what}: worst delivery ${worst.toFixed(1)} ms (< 500 ms)`);
}

t.test('a dead peer does not delay delivery to a live one', async (t) => {
  const book: AddressBook = new Map();
  const leader = await startNode('L', book);
  const live = await startNode('B', book);
  stopAll(t, [leader, live]);
  book.set('D', `127.0.0.1:${await closedPort()}`);
  // H accepts connections and never answers: the dial hangs until its 5 s timeout.
  const held = new Set<net.Socket>();
  const hanging = net.createServer((socket) => held.add(socket.resume()));
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of held) s.destroy();
    return new Promise<void>((r) => hanging.close(() => r()));
  });
  book.set('H', `127.0.0.1:${(hanging.address() as net.AddressInfo).port}`);

  const t0 = performance.now();
  leader.transport.send([heartbeat('L', 'D'), heartbeat('L', 'H'), heartbeat('L', 'B')]);
  await waitUntil(() => live.received.length === 1, 1000, 'first heartbeat to the live peer');
  const latencies = [performance.now() - t0];
  await waitUntil(() => leader.unreachable.includes('D'), 1000, 'D reported unreachable');
  for (let i = 0; i < 20; i++) {
    const before = live.received.length;
    const t1 = performance.now();
    leader.transport.send([app('L', 'D', i, bytes(100, i)), app('L', 'H', i, bytes(100, i)), heartbeat('L', 'D', i), app('L', 'B', i, bytes(100, i))]);
    await waitUntil(() => live.received.length > before, 2000, `message ${i} to the live peer`);
    latencies.push(performance.now() - t1);
    await new Promise((r) => setTimeout(r, 10));
  }
  checkLatencies(t, latencies, 'live peer while D is down and H hangs');
  t.ok(leader.unreachable.filter((id) => id === 'D').length >= 2, 'D is reported again while it stays down (rate-limited)');
  t.notOk(leader.unreachable.includes('B'), 'B is never reported');
  const byAddress = new Map(leader.transport.peerStatus().map((p) => [p.address, p]));
  t.ok(byAddress.get(book.get('D')!)!.backoffMs > 25, `D's backoff grew (${byAddress.get(book.get('D')!)!.backoffMs} ms)`);
  t.match(byAddress.get(book.get('B')!), { state: 'connected', helloId: 'B', backoffMs: 0, ids: ['B'] });
});

t.test('a peer that stops reading gets its messages dropped, the others do not notice', async (t) => {
  const book: AddressBook = new Map();
  const stalled = new Set<net.Socket>();
  const sink = net.createServer((socket) => {
    stalled.add(socket);
    socket.pause(); // accept, never read: the kernel buffers fill, then our queue
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of stalled) s.destroy();
    return new Promise<void>((r) => sink.close(() => r()));
  });
  book.set('S', `127.0.0.1:${(sink.address() as net.AddressInfo).port}`);
  const leader = await startNode('L', book, { maxQueueBytesPerPeer: 2 * 1024 * 1024 });
  const live = await startNode('B', book);
  stopAll(t, [leader, live]);
  const big = bytes(512 * 1024, 9);
  const latencies: number[] = [];
  for (let i = 0; i < 80; i++) {
    const before = live.received.length;
    const t0 = performance.now();
    leader.transport.send([app('L', 'S', i, big), app('L', 'B', i, bytes(100, i))]);
    await waitUntil(() => live.received.length > before, 2000, `message ${i} to the live peer`);
    latencies.push(performance.now() - t0);
    if (leader.unreachable.includes('S') && i > 40) break;
  }
  t.ok(leader.unreachable.includes('S'), 'the stalled peer is reported unreachable once its queue is full');
  const status = leader.transport.peerStatus().find((p) => p.ids.includes('S'))!;
  t.ok(status.bufferedBytes <= 2 * 1024 * 1024 + big.length, `its buffer stays bounded (${status.bufferedBytes} bytes)`);
  checkLatencies(t, latencies, 'live peer next to a stalled one');
  t.notOk(leader.unreachable.includes('B'));
});

t.test('reconnects after a peer restarts on the same port', async (t) => {
  const book: AddressBook = new Map();
  const leader = await startNode('L', book);
  const first = await startNode('B', book);
  const port = Number(first.address.split(':')[1]);
  leader.transport.send([heartbeat('L', 'B', 1)]);
  await waitUntil(() => first.received.length === 1, 2000, 'first delivery');
  await first.transport.stop();

  // While B is down: messages are dropped, B is reported unreachable, requests fail fast.
  for (let i = 0; i < 5; i++) {
    leader.transport.send([heartbeat('L', 'B', 2)]);
    await new Promise((r) => setTimeout(r, 20));
  }
  await waitUntil(() => leader.unreachable.includes('B'), 2000, 'B unreachable');
  await expectTransportError(t, leader.transport.requestPeer('B', 'echo', new Uint8Array(0)), ['unreachable', 'connectionLost'], 'request while down');

  const second = await startNode('B', book, { listen: { host: '127.0.0.1', port } });
  stopAll(t, [leader, second]);
  const t0 = performance.now();
  let commit = 3;
  while (second.received.length === 0 && performance.now() - t0 < 5000) {
    leader.transport.send([heartbeat('L', 'B', commit++)]);
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(second.received.length > 0, `delivered again ${(performance.now() - t0).toFixed(0)} ms after the restart`);
  t.notOk(second.received.some((m) => m.type === 'heartbeat' && m.commit === 2), 'messages sent while it was down were dropped, not queued');
  t.ok(performance.now() - t0 < 2500, 'within the backoff ceiling plus a dial');
  t.equal((await leader.transport.requestPeer('B', 'echo', Buffer.from('x'))).length, 1, 'requests work again');
});

t.test('a multi-MB snapshot arrives whole, in order with other messages, and is reported sent', async (t) => {
  const book: AddressBook = new Map();
  const leader = await startNode('L', book, { snapshotChunkBytes: 256 * 1024 });
  const follower = await startNode('F', book);
  stopAll(t, [leader, follower]);
  const data = bytes(6 * 1024 * 1024 + 5, 42);
  const snap: MsgSnap = { type: 'snap', from: 'L', to: 'F', term: 7, snapshot: { meta: { index: 1000, term: 7, confState: { voters: ['L', 'F'], learners: ['X'] } }, data } };
  leader.transport.send([heartbeat('L', 'F', 1), snap, heartbeat('L', 'F', 2)]);
  // Heartbeats keep flowing while the snapshot streams.
  for (let i = 3; i < 10; i++) {
    await new Promise((r) => setImmediate(r));
    leader.transport.send([heartbeat('L', 'F', i)]);
  }
  await waitUntil(() => follower.received.some((m) => m.type === 'snap'), 10_000, 'the snapshot');
  await waitUntil(() => leader.snapshotStatus.length > 0, 2000, 'snapshot status');
  const got = follower.received.find((m) => m.type === 'snap') as MsgSnap;
  t.same(got.snapshot.meta, snap.snapshot.meta);
  t.equal(got.snapshot.data.length, data.length);
  t.ok(Buffer.from(got.snapshot.data).equals(Buffer.from(data)), 'data identical');
  t.same(leader.snapshotStatus, [{ id: 'F', ok: true }]);
  await waitUntil(() => follower.received.filter((m) => m.type === 'heartbeat').length === 9, 2000, 'heartbeats');
  t.same(follower.received.filter((m) => m.type === 'heartbeat').map((m) => (m.type === 'heartbeat' ? m.commit : 0)), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'heartbeats in order');

  // A snapshot for a peer that cannot be reached fails.
  book.set('D', `127.0.0.1:${await closedPort()}`);
  leader.transport.send([{ ...snap, to: 'D' }]);
  await waitUntil(() => leader.snapshotStatus.length === 2, 2000, 'failed snapshot status');
  t.same(leader.snapshotStatus[1], { id: 'D', ok: false });
  // An empty snapshot is fine too.
  leader.transport.send([{ ...snap, snapshot: { ...snap.snapshot, data: new Uint8Array(0) } }]);
  await waitUntil(() => follower.received.filter((m) => m.type === 'snap').length === 2, 2000, 'empty snapshot');
});

t.test('outbound connections bind the listen IP as their source address', async (t) => {
  const book: AddressBook = new Map();
  const seen: string[] = [];
  const peer = net.createServer((socket) => {
    seen.push(socket.remoteAddress ?? '');
    socket.destroy();
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => peer.close(() => r())));
  book.set('P', `127.0.0.1:${(peer.address() as net.AddressInfo).port}`);
  const node = await startNode('A', book, { listen: { host: '127.0.0.2', port: 0 } });
  const other = await startNode('B', book, { listen: { host: '127.0.0.3', port: 0 } });
  stopAll(t, [node, other]);
  t.equal(node.address.split(':')[0], '127.0.0.2');
  node.transport.send([heartbeat('A', 'P')]);
  await waitUntil(() => seen.length > 0, 2000, 'a connection');
  t.equal(seen[0], '127.0.0.2', 'the peer sees the listen IP');

  // And between two transports on different loopback IPs, messages flow both ways.
  node.transport.send([heartbeat('A', 'B')]);
  other.transport.send([heartbeat('B', 'A')]);
  await waitUntil(() => node.received.length === 1 && other.received.length === 1, 2000, 'both directions');
  t.pass('127.0.0.2 ↔ 127.0.0.3');
});

t.test('garbage, a wrong first frame and oversize frames close that connection only', async (t) => {
  const book: AddressBook = new Map();
  const node = await startNode('A', book, { maxFrameBytes: 1024 * 1024 });
  const peer = await startNode('B', book);
  stopAll(t, [node, peer]);
  const { port } = node.transport.boundAddress();
  const hello = encodeFrame({ kind: 'hello', hello: { id: 'B', advertise: 'x:1', meta: {} } });
  const inputs: [string, Buffer][] = [
    ['HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['message before hello', encodeFrame({ kind: 'message', message: heartbeat('B', 'A') })],
    ['oversize frame', Buffer.concat([hello, Buffer.from([0x10, 0, 0, 0, 2])])],
    ['corrupt message', Buffer.concat([hello, Buffer.from([0, 0, 0, 3, 2, 77, 1])])],
    ['response on an inbound connection', Buffer.concat([hello, encodeFrame({ kind: 'response', id: 1, body: new Uint8Array(0) })])],
    ['chunk of an unknown snapshot', Buffer.concat([hello, encodeFrame({ kind: 'snapChunk', stream: 5, data: new Uint8Array(3) })])],
  ];
  for (const [what, input] of inputs) {
    const errorsBefore = node.errors.length;
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume();
    socket.write(input);
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    t.pass(`${what}: connection closed`);
    t.ok(node.errors.slice(errorsBefore).some((e) => e instanceof TransportCodecError), `${what}: reported as TransportCodecError`);
  }
  // Misrouted messages are dropped, not delivered.
  book.set('ghost', node.address);
  peer.transport.send([heartbeat('B', 'ghost')]);
  await waitUntil(() => node.errors.some((e) => /ghost/.test(e.message)), 2000, 'misrouted message reported');
  t.equal(node.received.length, 0, 'nothing reached Raft');
  peer.transport.send([heartbeat('B', 'A')]);
  await waitUntil(() => node.received.length === 1, 2000, 'a good message after all that');
});

t.test('silent peers: an accepting address that never says hello backs off; a silent client is dropped', async (t) => {
  const book: AddressBook = new Map();
  const held = new Set<net.Socket>();
  const blackHole = net.createServer((socket) => {
    held.add(socket);
    socket.resume();
  });
  await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    for (const s of held) s.destroy();
    return new Promise<void>((r) => blackHole.close(() => r()));
  });
  book.set('H', `127.0.0.1:${(blackHole.address() as net.AddressInfo).port}`);
  const node = await startNode('A', book, { dialTimeoutMs: 150 });
  stopAll(t, [node]);
  const t0 = performance.now();
  await expectTransportError(t, node.transport.requestPeer('H', 'echo', new Uint8Array(0), { timeoutMs: 5000 }), ['connectionLost'], 'request to a peer that never says hello');
  t.ok(performance.now() - t0 < 1000, 'given up after the dial timeout, not the request timeout');
  const status = node.transport.peerStatus().find((p) => p.address === book.get('H'));
  t.equal(status?.backoffMs, 25, 'the address entered backoff');
  t.equal(status?.helloId, '');
  await waitUntil(() => node.unreachable.includes('H'), 1000, 'H reported unreachable');

  const silent = net.connect(node.transport.boundAddress().port, '127.0.0.1');
  silent.on('error', () => {});
  silent.resume();
  await new Promise<void>((resolve) => silent.once('close', () => resolve()));
  t.ok(node.errors.some((e) => /no hello/.test(e.message)), 'a client that never says hello is disconnected');
});

t.test('stop() closes everything, fails pending requests and leaves no timers', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const baseline = timers();
  const book: AddressBook = new Map();
  const server = await startNode('S', book, { onRequest: () => new Promise<Uint8Array>(() => {}) });
  const client = await startNode('C', book);
  book.set('D', `127.0.0.1:${await closedPort()}`);
  client.transport.send([heartbeat('C', 'S'), heartbeat('C', 'D')]);
  const pending = client.transport.requestPeer('S', 'hang', new Uint8Array(0), { timeoutMs: 60_000 });
  await waitUntil(() => server.hellos.length > 0, 2000, 'connection up');
  const stopping = client.transport.stop();
  await expectTransportError(t, pending, ['stopped'], 'pending request');
  await stopping;
  await server.transport.stop();
  await client.transport.stop(); // idempotent
  await new Promise((r) => setImmediate(r));
  t.ok(timers() <= baseline, `timers: ${timers()} after, ${baseline} before`);
  t.throws(() => new TcpTransport({
    nodeId: 'x', listen: { host: '127.0.0.1', port: 0 }, resolve: () => undefined, onMessage: () => {}, onRequest: async () => new Uint8Array(0),
    snapshotChunkBytes: 0,
  }), RangeError, 'options are checked');
});
