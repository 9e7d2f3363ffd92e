// The fault proxy, driven with plain sockets: clients bind their source IP (127.0.0.11, ...) as
// the servers do, and echo servers stand in for the servers' RPC listeners.
import t, { type Test } from 'tap';
import net from 'node:net';
import { ANY, FaultNetwork, type HostPort } from './fault-proxy.ts';

interface Echo {
  readonly address: HostPort;
  /** Connections accepted so far. */
  connections(): number;
  /** Sockets currently open on the server side. */
  readonly sockets: Set<net.Socket>;
  close(): Promise<void>;
}

async function echoServer(): Promise<Echo> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address() as net.AddressInfo;
  return {
    address: { host: '127.0.0.1', port: a.port },
    connections: () => connections,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Client {
  readonly socket: net.Socket;
  received(): Buffer;
  /** Resolves with how the socket ended: 'closed' (FIN, RST or close), or 'error:CODE' for other errors. */
  readonly ended: Promise<string>;
  /** Resolves true once at least `bytes` bytes arrived, false after `timeoutMs`. */
  waitBytes(bytes: number, timeoutMs: number): Promise<boolean>;
}

function connectFrom(sourceIp: string, to: HostPort): Client {
  const socket = net.connect({ host: to.host, port: to.port, localAddress: sourceIp });
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters = new Set<() => void>();
  socket.on('data', (d: Buffer) => {
    chunks.push(d);
    total += d.length;
    for (const w of waiters) w();
  });
  const ended = new Promise<string>((resolve) => {
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNRESET' ? 'closed' : `error:${err.code}`));
    socket.on('end', () => resolve('closed'));
    socket.on('close', () => resolve('closed'));
  });
  return {
    socket,
    received: () => Buffer.concat(chunks),
    ended,
    waitBytes: (bytes, timeoutMs) =>
      new Promise<boolean>((resolve) => {
        if (total >= bytes) return resolve(true);
        const check = (): void => {
          if (total < bytes) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(true);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          resolve(false);
        }, timeoutMs);
        waiters.add(check);
      }),
  };
}

async function settle<T>(p: Promise<T>, timeoutMs: number): Promise<T | 'pending'> {
  let timer!: NodeJS.Timeout;
  const timeout = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), timeoutMs)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const NODES = [
  { name: 's1', ip: '127.0.0.11' },
  { name: 's2', ip: '127.0.0.12' },
  { name: 's3', ip: '127.0.0.13' },
] as const;

/** Three nodes, each with a proxy in front of its own echo server. */
async function setup(t: Test): Promise<{ net: FaultNetwork; echo: Map<string, Echo>; proxy: (n: string) => HostPort }> {
  const network = new FaultNetwork();
  const echo = new Map<string, Echo>();
  const clients: net.Socket[] = [];
  t.teardown(async () => {
    for (const c of clients) c.destroy();
    await network.close();
    await Promise.all([...echo.values()].map((e) => e.close()));
  });
  for (const n of NODES) {
    const e = await echoServer();
    echo.set(n.name, e);
    const p = await network.addNode(n);
    p.setTarget(e.address);
  }
  return { net: network, echo, proxy: (n) => network.proxy(n).address };
}

t.test('forwards both ways and names the sender by its source IP', async (t) => {
  const { net: network, proxy } = await setup(t);
  t.equal(network.nodeForIp('127.0.0.12'), 's2');
  t.equal(network.nodeForIp('127.0.0.99'), '?127.0.0.99');
  const c = connectFrom('127.0.0.11', proxy('s2'));
  c.socket.write('hello');
  t.ok(await c.waitBytes(5, 2000), 'echo came back');
  t.equal(c.received().toString(), 'hello');
  t.equal(network.proxy('s2').stats().open, 1);
  c.socket.destroy();
});

t.test('a large transfer survives backpressure intact', async (t) => {
  const { proxy } = await setup(t);
  const c = connectFrom('127.0.0.11', proxy('s2'));
  const payload = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 12)) & 0xff;
  c.socket.write(payload);
  t.ok(await c.waitBytes(payload.length, 20000), 'all bytes echoed');
  t.ok(c.received().equals(payload), 'bytes unchanged and in order');
  c.socket.destroy();
});

t.test("'reset' kills the pair's connections at once and refuses new ones; other pairs flow", async (t) => {
  const { net: network, proxy } = await setup(t);
  const s1ToS2 = connectFrom('127.0.0.11', proxy('s2'));
  const s3ToS2 = connectFrom('127.0.0.13', proxy('s2'));
  const s2ToS1 = connectFrom('127.0.0.12', proxy('s1'));
  for (const c of [s1ToS2, s3ToS2, s2ToS1]) {
    c.socket.write('x');
    t.ok(await c.waitBytes(1, 2000));
  }
  network.block('s1', 's2', 'reset');
  t.equal(await settle(s1ToS2.ended, 2000), 'closed', 'existing s1→s2 connection closed');
  t.equal(await settle(s3ToS2.ended, 200), 'pending', 's3→s2 untouched');
  t.equal(await settle(s2ToS1.ended, 200), 'pending', 's2→s1 untouched (one-way rule)');

  const again = connectFrom('127.0.0.11', proxy('s2'));
  t.equal(await settle(again.ended, 2000), 'closed', 'a new s1→s2 connection is closed at once');
  t.equal(network.proxy('s2').stats().reset, 2);

  s3ToS2.socket.write('y');
  t.ok(await s3ToS2.waitBytes(2, 2000), 's3→s2 still forwards');

  network.heal('s1', 's2');
  const healed = connectFrom('127.0.0.11', proxy('s2'));
  healed.socket.write('back');
  t.ok(await healed.waitBytes(4, 2000), 'forwards again after heal');
  for (const c of [s3ToS2, s2ToS1, healed]) c.socket.destroy();
});

t.test("'blackhole' holds bytes without closing, and delivers them late after heal", async (t) => {
  const { net: network, echo, proxy } = await setup(t);
  const c = connectFrom('127.0.0.11', proxy('s2'));
  c.socket.write('a');
  t.ok(await c.waitBytes(1, 2000));

  network.block('s1', 's2', 'blackhole');
  c.socket.write('b');
  t.notOk(await c.waitBytes(2, 300), 'nothing forwarded while blackholed');
  t.equal(await settle(c.ended, 10), 'pending', 'the socket stays open');
  t.equal(network.proxy('s2').stats().held, 1);

  // A connection opened during the blackhole is accepted but not dialled through.
  const before = echo.get('s2')!.connections();
  const late = connectFrom('127.0.0.11', proxy('s2'));
  late.socket.write('late');
  t.notOk(await late.waitBytes(1, 300), 'new connection gets nothing');
  t.equal(echo.get('s2')!.connections(), before, 'the server never saw the held connection');
  t.equal(await settle(late.ended, 10), 'pending');

  network.heal();
  t.ok(await c.waitBytes(2, 2000), 'held byte delivered after heal');
  t.equal(c.received().toString(), 'ab');
  t.ok(await late.waitBytes(4, 2000), 'held connection dialled and flushed after heal');
  t.equal(late.received().toString(), 'late');
  t.equal(echo.get('s2')!.connections(), before + 1);
  c.socket.destroy();
  late.socket.destroy();
});

t.test('blackhole holds the reply direction too', async (t) => {
  const { net: network, echo, proxy } = await setup(t);
  const c = connectFrom('127.0.0.11', proxy('s2'));
  c.socket.write('ping');
  t.ok(await c.waitBytes(4, 2000));
  network.block('s1', 's2', 'blackhole');
  // The server pushes bytes on its own: they must not reach the client.
  for (const s of echo.get('s2')!.sockets) s.write('push');
  t.notOk(await c.waitBytes(5, 300), 'server-to-client bytes held');
  network.heal('s1');
  t.ok(await c.waitBytes(8, 2000), 'delivered after heal');
  t.equal(c.received().toString(), 'pingpush');
  c.socket.destroy();
});

t.test('isolate() cuts both directions between a node and everyone, including unknown senders', async (t) => {
  const { net: network, proxy } = await setup(t);
  network.isolate('s1', 'reset');
  const out = connectFrom('127.0.0.11', proxy('s3'));
  const into = connectFrom('127.0.0.13', proxy('s1'));
  const stranger = connectFrom('127.0.0.99', proxy('s1'));
  const bystander = connectFrom('127.0.0.12', proxy('s3'));
  t.equal(await settle(out.ended, 2000), 'closed', 's1→s3 refused');
  t.equal(await settle(into.ended, 2000), 'closed', 's3→s1 refused');
  t.equal(await settle(stranger.ended, 2000), 'closed', 'unknown sender → s1 refused');
  bystander.socket.write('ok');
  t.ok(await bystander.waitBytes(2, 2000), 's2→s3 flows');
  t.same(
    network.rules().map((r) => `${r.from}>${r.to}:${r.mode}`),
    [`s1>${ANY}:reset`, `${ANY}>s1:reset`],
  );
  network.heal('s1');
  t.same(network.rules(), []);
  const healed = connectFrom('127.0.0.11', proxy('s3'));
  healed.socket.write('z');
  t.ok(await healed.waitBytes(1, 2000));
  bystander.socket.destroy();
  healed.socket.destroy();
});

t.test('partition() blocks both directions between the groups only', async (t) => {
  const { net: network, proxy } = await setup(t);
  network.partition(['s1'], undefined, 'reset');
  t.equal(network.ruleFor('s1', 's2'), 'reset');
  t.equal(network.ruleFor('s3', 's1'), 'reset');
  t.equal(network.ruleFor('s2', 's3'), null);
  const inside = connectFrom('127.0.0.12', proxy('s3'));
  inside.socket.write('m');
  t.ok(await inside.waitBytes(1, 2000), 'majority side flows');
  const across = connectFrom('127.0.0.13', proxy('s1'));
  t.equal(await settle(across.ended, 2000), 'closed');
  t.throws(() => network.block('s1', 's9'), /unknown node s9/);
  inside.socket.destroy();
});

t.test('reset wins over blackhole when both rules apply', async (t) => {
  const { net: network } = await setup(t);
  network.block('s1', ANY, 'blackhole');
  t.equal(network.ruleFor('s1', 's2'), 'blackhole');
  network.block(ANY, 's2', 'reset');
  t.equal(network.ruleFor('s1', 's2'), 'reset');
  t.equal(network.ruleFor('s1', 's3'), 'blackhole');
});

t.test('no target: connections are refused until the target is set; server exit ends the stream', async (t) => {
  const network = new FaultNetwork();
  const e = await echoServer();
  t.teardown(async () => {
    await network.close();
    await e.close();
  });
  const p = await network.addNode({ name: 'n1', ip: '127.0.0.21' });
  const early = connectFrom('127.0.0.22', p.address);
  t.equal(await settle(early.ended, 2000), 'closed', 'refused without a target');

  p.setTarget(e.address);
  const c = connectFrom('127.0.0.22', p.address);
  c.socket.write('hi');
  t.ok(await c.waitBytes(2, 2000));
  // The server side closes cleanly: the client sees a clean end, as it would without the proxy.
  for (const s of e.sockets) s.end();
  t.equal(await settle(c.ended, 2000), 'closed');
  t.equal(p.stats().open, 0);
});

t.test('a dead upstream resets the sender', async (t) => {
  const network = new FaultNetwork();
  t.teardown(() => network.close());
  const p = await network.addNode({ name: 'n1', ip: '127.0.0.21' });
  // A port nobody listens on: grab one, then free it.
  const tmp = net.createServer();
  await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
  const port = (tmp.address() as net.AddressInfo).port;
  await new Promise<void>((r) => tmp.close(() => r()));
  p.setTarget({ host: '127.0.0.1', port });
  const c = connectFrom('127.0.0.22', p.address);
  c.socket.write('x');
  t.equal(await settle(c.ended, 2000), 'closed');
});

t.test('duplicate names and IPs are rejected', async (t) => {
  const network = new FaultNetwork();
  t.teardown(() => network.close());
  await network.addNode({ name: 'a', ip: '127.0.0.31' });
  await t.rejects(network.addNode({ name: 'a', ip: '127.0.0.32' }), /already has a proxy/);
  await t.rejects(network.addNode({ name: 'b', ip: '127.0.0.31' }), /already used by a/);
  t.throws(() => network.block('a', 'a'), /itself/);
});
